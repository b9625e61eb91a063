-- A revocation ends approvals (issue 18): when a token of a task is revoked (by its connector,
-- an admin, a signal, the kill switch or the task's end), the task's open approval requests and
-- approvals are revoked in the same statement's transaction, by the database, whatever revoked it.
CREATE FUNCTION writ_revoke_task_approvals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE approval a
     SET status = 'revoked', decided_at = COALESCE(a.decided_at, now()), decision_reason = COALESCE(a.decision_reason, 'a token of the task was revoked')
   WHERE a.status IN ('pending', 'approved')
     AND a.task_id IN (
       SELECT n.task_id::uuid FROM revoked_new n JOIN revoked_old o ON o.id = n.id
        WHERE n.task_id IS NOT NULL AND n.revoked_at IS NOT NULL AND o.revoked_at IS NULL);
  RETURN NULL;
END $$;

CREATE TRIGGER lease_revoked_ends_approvals
  AFTER UPDATE ON lease
  REFERENCING OLD TABLE AS revoked_old NEW TABLE AS revoked_new
  FOR EACH STATEMENT EXECUTE FUNCTION writ_revoke_task_approvals();
