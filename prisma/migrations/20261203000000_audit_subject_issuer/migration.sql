-- The audit trail names a person as their identity provider names them: the subject and its
-- issuer (OpenID Connect Core 1.0 §5.7: only the pair is a stable identifier). Events written
-- before this column hold NULL, and their hashed bodies leave it out, so they verify unchanged.
ALTER TABLE "audit_event" ADD COLUMN "subject_issuer" TEXT;

-- As in 20261127090000, with subject_issuer stored from each event.
CREATE OR REPLACE FUNCTION "writ_append_audit"("events" jsonb) RETURNS TABLE ("event_seq" bigint, "event_hash" text, "event_prev_hash" text)
LANGUAGE plpgsql AS $$
DECLARE
  "prev" text;
  "e" jsonb;
BEGIN
  IF "events" IS NULL OR jsonb_array_length("events") = 0 THEN
    RETURN;
  END IF;
  -- Appends from every replica are serialized; a statement after the lock sees the latest head.
  PERFORM pg_advisory_xact_lock(1635083380); -- 0x61756474, "audt"
  SELECT a."hash" INTO "prev" FROM "audit_event" a ORDER BY a."seq" DESC LIMIT 1;
  "prev" := coalesce("prev", repeat('0', 64));
  FOR "e" IN SELECT x."value" FROM jsonb_array_elements("events") WITH ORDINALITY AS x("value", "n") ORDER BY x."n" LOOP
    "event_prev_hash" := "prev";
    "event_hash" := encode(sha256(convert_to("prev" || E'\n' || ("e"->>'body'), 'UTF8')), 'hex');
    INSERT INTO "audit_event" ("at", "type", "subject", "subject_issuer", "actor", "details", "prev_hash", "hash")
      VALUES (("e"->>'at')::timestamptz, "e"->>'type', "e"->>'subject', "e"->>'subject_issuer', "e"->>'actor', coalesce("e"->'details', '{}'::jsonb), "prev", "event_hash")
      RETURNING "audit_event"."seq" INTO "event_seq";
    "prev" := "event_hash";
    RETURN NEXT;
  END LOOP;
END;
$$;
