-- Workload entries under a node agent (`writ agent`), as SPIRE's: parent_id names the agent's
-- SPIFFE ID, and only that agent may obtain SVIDs for the entry (for the callers its
-- workload attestation matches to the entry's unix:/k8s: selectors). NULL: a node or connector
-- entry, attested by the broker itself.
ALTER TABLE "registration_entry" ADD COLUMN "parent_id" TEXT;
CREATE INDEX "registration_entry_parent_id_idx" ON "registration_entry" ("parent_id");
