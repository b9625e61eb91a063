-- The console's views (issue 19).
--
-- A lease's page shows the events of its task and of its token: the audit trail gains two
-- columns computed by PostgreSQL from the hashed details (so the hash chain is unchanged and no
-- writer can set them apart from the details), each indexed. Adding a stored generated column
-- rewrites the table once, under its lock; row triggers (append-only) do not fire for it.
ALTER TABLE "audit_event" ADD COLUMN "task_id" TEXT GENERATED ALWAYS AS ("details"->>'taskId') STORED;
ALTER TABLE "audit_event" ADD COLUMN "jti" TEXT GENERATED ALWAYS AS ("details"->>'jti') STORED;
CREATE INDEX "audit_event_task_id_idx" ON "audit_event" ("task_id", "seq") WHERE "task_id" IS NOT NULL;
CREATE INDEX "audit_event_jti_idx" ON "audit_event" ("jti") WHERE "jti" IS NOT NULL;

-- Why a policy version was made, as its author said (the console asks for it).
ALTER TABLE "policy_set" ADD COLUMN "reason" TEXT;

-- A console session ends after it has been idle this long, as well as at its expiry.
ALTER TABLE "console_session" ADD COLUMN "last_seen_at" TIMESTAMPTZ(3);
