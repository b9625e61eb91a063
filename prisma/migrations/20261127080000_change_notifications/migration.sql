-- Every replica caches what the hot paths read (registration entries, resources, the policy
-- set, user risk, subject revocation markers) and drops its cache when one of these tables
-- changes: each committed change is announced on "writ_changes" with the table's name.
CREATE FUNCTION "writ_announce_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('writ_changes', TG_TABLE_NAME);
  RETURN NULL;
END;
$$;

CREATE TRIGGER "registration_entry_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "registration_entry"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
CREATE TRIGGER "resource_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "resource"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
CREATE TRIGGER "policy_set_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "policy_set"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
CREATE TRIGGER "user_risk_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "user_risk"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
CREATE TRIGGER "subject_revocation_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "subject_revocation"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
-- Leases are cached too (revocation state comes from the revocation view); a lease revoked
-- other than through Writ (by hand, in SQL) drops every replica's cached leases.
CREATE TRIGGER "lease_revoked" AFTER UPDATE OF "revoked_at" ON "lease"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
