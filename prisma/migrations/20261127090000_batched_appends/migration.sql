-- Group commit in one round trip. Writ batches what concurrent requests issue (leases, the
-- tasks they begin, their audit events) and commits each batch with one statement calling
-- these functions, so a batch holds the audit chain's lock only while PostgreSQL itself
-- appends to the chain and commits, never while waiting on the network.

-- Appends events to the hash chain, in the order given. Each event carries its canonical JSON
-- body (computed by Writ, which also verifies the chain): hash = SHA-256(prev_hash || "\n" || body).
CREATE FUNCTION "writ_append_audit"("events" jsonb) RETURNS TABLE ("event_seq" bigint, "event_hash" text, "event_prev_hash" text)
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
    INSERT INTO "audit_event" ("at", "type", "subject", "actor", "details", "prev_hash", "hash")
      VALUES (("e"->>'at')::timestamptz, "e"->>'type', "e"->>'subject', "e"->>'actor', coalesce("e"->'details', '{}'::jsonb), "prev", "event_hash")
      RETURNING "audit_event"."seq" INTO "event_seq";
    "prev" := "event_hash";
    RETURN NEXT;
  END LOOP;
END;
$$;

-- Records leases, the tasks they begin and their audit events, in the caller's transaction
-- (one statement: its own). A lease for a task that has ended is refused (returned in
-- refused_lease, with no audit event); the tasks of the others are held FOR SHARE until
-- commit, so a task ending meanwhile waits for them and then revokes them with the rest.
CREATE FUNCTION "writ_record_leases"("tasks" jsonb, "leases" jsonb, "events" jsonb)
RETURNS TABLE ("event_seq" bigint, "event_hash" text, "event_prev_hash" text, "refused_lease" uuid)
LANGUAGE plpgsql AS $$
DECLARE
  "begun" uuid[];
  "ended" uuid[] := '{}';
  "refused" uuid[] := '{}';
BEGIN
  INSERT INTO "task" ("id", "subject", "subject_issuer", "connector", "subject_groups", "subject_risk")
    SELECT x."id", x."subject", x."subject_issuer", x."connector", x."subject_groups", x."subject_risk"
    FROM jsonb_to_recordset(coalesce("tasks", '[]'::jsonb)) AS x("id" uuid, "subject" text, "subject_issuer" text, "connector" text, "subject_groups" text[], "subject_risk" text);
  SELECT coalesce(array_agg((n->>'id')::uuid), '{}') INTO "begun" FROM jsonb_array_elements(coalesce("tasks", '[]'::jsonb)) n;
  -- Only leases naming a task this batch did not begin can meet an ended one.
  IF EXISTS (SELECT 1 FROM jsonb_array_elements("leases") l WHERE l->>'task_id' IS NOT NULL AND NOT ((l->>'task_id')::uuid = ANY("begun"))) THEN
    SELECT coalesce(array_agg(t."id"), '{}') INTO "ended"
      FROM (SELECT k."id", k."ended_at" FROM "task" k
            WHERE k."id" IN (SELECT (l->>'task_id')::uuid FROM jsonb_array_elements("leases") l WHERE l->>'task_id' IS NOT NULL)
              AND NOT (k."id" = ANY("begun"))
            FOR SHARE) t
      WHERE t."ended_at" IS NOT NULL;
    SELECT coalesce(array_agg((l->>'id')::uuid), '{}') INTO "refused"
      FROM jsonb_array_elements("leases") l
      WHERE l->>'task_id' IS NOT NULL AND (l->>'task_id')::uuid = ANY("ended");
  END IF;
  INSERT INTO "lease" ("id", "kind", "spiffe_id", "subject", "task_id", "audience", "issued_at", "expires_at", "serial", "fingerprint", "entry_id", "sid", "subject_issuer", "subject_email", "authorization_details", "parent_id")
    SELECT x."id", x."kind", x."spiffe_id", x."subject", x."task_id", x."audience", x."issued_at", x."expires_at", x."serial", x."fingerprint", x."entry_id", x."sid", x."subject_issuer", x."subject_email", x."authorization_details", x."parent_id"
    FROM jsonb_to_recordset("leases") AS x("id" uuid, "kind" text, "spiffe_id" text, "subject" text, "task_id" text, "audience" text[], "issued_at" timestamptz, "expires_at" timestamptz, "serial" text, "fingerprint" text, "entry_id" uuid, "sid" text, "subject_issuer" text, "subject_email" text, "authorization_details" jsonb, "parent_id" uuid)
    WHERE NOT (x."id" = ANY("refused"));
  IF cardinality("refused") = 0 THEN
    RETURN QUERY SELECT a."event_seq", a."event_hash", a."event_prev_hash", NULL::uuid FROM writ_append_audit("events") a;
    RETURN;
  END IF;
  RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, r FROM unnest("refused") AS r;
  RETURN QUERY SELECT a."event_seq", a."event_hash", a."event_prev_hash", NULL::uuid
    FROM writ_append_audit((
      SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb)
      FROM jsonb_array_elements(coalesce("events", '[]'::jsonb)) WITH ORDINALITY AS y(e, n)
      WHERE e->>'lease_id' IS NULL OR NOT ((e->>'lease_id')::uuid = ANY("refused"))
    )) a;
END;
$$;
