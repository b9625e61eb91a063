-- writ_record_leases (migration 20261202000000) looked up the leases a lease requires with a
-- join that the planner could answer with a sequential scan of "lease" for every batch: on a
-- fresh or not yet analyzed table, each token exchange read every lease (quadratic in the leases
-- recorded until autovacuum analyzed the table). The lookup is now a primary-key probe whatever
-- the statistics; what the function refuses and records is unchanged.

CREATE OR REPLACE FUNCTION "writ_record_leases"("tasks" jsonb, "leases" jsonb, "events" jsonb)
RETURNS TABLE ("event_seq" bigint, "event_hash" text, "event_prev_hash" text, "refused_lease" uuid, "refused_reason" text)
LANGUAGE plpgsql AS $$
DECLARE
  "refusals" jsonb;
  "oldest" bigint;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(2003990123); -- 0x7772766b, "wrvk": waits for revocations in progress
  -- Statements after the lock see every revocation committed before it (a fresh snapshot each).
  SELECT min(coalesce((l->>'epoch')::bigint, 0)) INTO "oldest" FROM jsonb_array_elements("leases") l WHERE l ? 'epoch';
  SELECT coalesce(jsonb_object_agg(x."id", x."reason"), '{}'::jsonb) INTO "refusals"
  FROM (
    SELECT DISTINCT ON (l->>'id') (l->>'id')::uuid::text AS "id", r."reason"
    FROM jsonb_array_elements("leases") l
    CROSS JOIN LATERAL (
      SELECT 1 AS "o", 'task-ended' AS "reason" FROM "task" k
        WHERE l->>'task_id' IS NOT NULL AND k."id" = (l->>'task_id')::uuid AND k."ended_at" IS NOT NULL
      UNION ALL
      -- One primary-key probe per required lease (a correlated subquery): a join here let the
      -- planner hash the whole lease table, a sequential scan per batch on a table that is not analyzed yet.
      SELECT 2, 'requires:' || d."id" FROM jsonb_array_elements_text(coalesce(l->'requires', '[]'::jsonb)) AS d("id")
        WHERE NOT coalesce((SELECT p."revoked_at" IS NULL FROM "lease" p WHERE p."id" = d."id"::uuid), false)
      UNION ALL
      -- Leases the broker issues itself (no request, no epoch) are not checked against markers.
      SELECT 3, 'marker:' || m."kind" FROM "revocation" m
        WHERE l ? 'epoch' AND m."seq" > "oldest" AND m."seq" > (l->>'epoch')::bigint AND writ_marker_names(m, l)
    ) r
    ORDER BY l->>'id', r."o"
  ) x;

  -- A task is begun only by a lease that is recorded: a refusal leaves no task behind.
  INSERT INTO "task" ("id", "subject", "subject_issuer", "connector", "subject_groups", "subject_risk")
    SELECT x."id", x."subject", x."subject_issuer", x."connector", x."subject_groups", x."subject_risk"
    FROM jsonb_to_recordset(coalesce("tasks", '[]'::jsonb)) AS x("id" uuid, "subject" text, "subject_issuer" text, "connector" text, "subject_groups" text[], "subject_risk" text)
    WHERE x."id" IN (SELECT (l->>'task_id')::uuid FROM jsonb_array_elements("leases") l
                     WHERE l->>'task_id' IS NOT NULL AND NOT "refusals" ? ((l->>'id')::uuid::text));
  INSERT INTO "lease" ("id", "kind", "spiffe_id", "subject", "task_id", "audience", "issued_at", "expires_at", "serial", "fingerprint", "entry_id", "sid", "subject_issuer", "subject_email", "authorization_details", "parent_id", "epoch")
    SELECT x."id", x."kind", x."spiffe_id", x."subject", x."task_id", x."audience", x."issued_at", x."expires_at", x."serial", x."fingerprint", x."entry_id", x."sid", x."subject_issuer", x."subject_email", x."authorization_details", x."parent_id", x."epoch"
    FROM jsonb_to_recordset("leases") AS x("id" uuid, "kind" text, "spiffe_id" text, "subject" text, "task_id" text, "audience" text[], "issued_at" timestamptz, "expires_at" timestamptz, "serial" text, "fingerprint" text, "entry_id" uuid, "sid" text, "subject_issuer" text, "subject_email" text, "authorization_details" jsonb, "parent_id" uuid, "epoch" bigint)
    WHERE NOT "refusals" ? (x."id"::text);
  RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, r."key"::uuid, r."value" FROM jsonb_each_text("refusals") r;
  RETURN QUERY SELECT a."event_seq", a."event_hash", a."event_prev_hash", NULL::uuid, NULL::text
    FROM writ_append_audit((
      SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb)
      FROM jsonb_array_elements(coalesce("events", '[]'::jsonb)) WITH ORDINALITY AS y(e, n)
      WHERE e->>'lease_id' IS NULL OR NOT "refusals" ? ((e->>'lease_id')::uuid::text)
    )) a;
END;
$$;
