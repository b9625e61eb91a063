-- Revocation wins every race, enforced here rather than by timing.
--
-- 1. Revocations and lease commits exclude each other: a revocation holds the advisory lock
--    0x7772766b ("wrvk") exclusively for its whole transaction, taking it first; each batch of
--    lease commits holds it shared. So a lease either committed before a revocation read what
--    to revoke (and is revoked by it), or is checked after the revocation committed.
-- 2. A revocation leaves a durable marker: its selector and a sequence number that grows in
--    commit order (markers are written under the exclusive lock). Each replica knows the
--    latest marker it has heard of (its epoch); every request records the epoch it began
--    with, and its lease is refused if a marker it has not seen names it. A replica that has
--    not heard of a marker yet refuses more, never less.
-- 3. A lease is also refused when a lease it was issued on (the client SVID, the parent
--    token, the renewed SVID) is no longer live, or its task has ended.

CREATE TABLE "revocation" (
    "seq" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    -- The selector's kind: jti, task, user, session, email, connector, audience, user-connector, kill-switch.
    "kind" TEXT NOT NULL,
    -- The selector: a lease matches when it matches every column given (a connector ending in "/" is a prefix).
    "jti" UUID,
    "task_id" TEXT,
    "subject_issuer" TEXT,
    "subject" TEXT,
    "sid" TEXT,
    "email" TEXT,
    "spiffe_id" TEXT,
    "audience" TEXT,
    "reason" TEXT NOT NULL,

    CONSTRAINT "revocation_pkey" PRIMARY KEY ("seq"),
    CONSTRAINT "revocation_names_something" CHECK (num_nonnulls("jti", "task_id", "subject", "sid", "email", "spiffe_id", "audience") > 0)
);

CREATE INDEX "revocation_at_idx" ON "revocation"("at");

-- The epoch a lease's request began with (the latest marker its replica had heard of): a lease
-- live after a revocation that names it was asked for after that revocation was known.
ALTER TABLE "lease" ADD COLUMN "epoch" BIGINT;

-- Whether a lease (as writ_record_leases receives it) is named by a revocation marker.
CREATE FUNCTION "writ_marker_names"("m" "revocation", "l" jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT ("m"."jti" IS NULL OR ("l"->>'id')::uuid = "m"."jti" OR ("l"->>'parent_id')::uuid = "m"."jti")
     AND ("m"."task_id" IS NULL OR "l"->>'task_id' = "m"."task_id")
     AND ("m"."subject_issuer" IS NULL OR "l"->>'subject_issuer' = "m"."subject_issuer")
     AND ("m"."subject" IS NULL OR "l"->>'subject' = "m"."subject")
     AND ("m"."sid" IS NULL OR "l"->>'sid' = "m"."sid")
     AND ("m"."email" IS NULL OR "l"->>'subject_email' = "m"."email")
     AND ("m"."spiffe_id" IS NULL OR CASE WHEN right("m"."spiffe_id", 1) = '/' THEN starts_with("l"->>'spiffe_id', "m"."spiffe_id") ELSE "l"->>'spiffe_id' = "m"."spiffe_id" END)
     AND ("m"."audience" IS NULL OR coalesce("l"->'audience', '[]'::jsonb) ? "m"."audience")
$$;

-- Records leases, the tasks they begin and their audit events, in the caller's transaction (one
-- statement: its own), under the revocation lock held shared. Each lease carries `epoch` (the
-- latest marker its replica had heard of when the request began) and `requires` (leases that
-- must still be live). A refused lease is returned with its reason and leaves no row, no task
-- it would have begun and no audit event: "task-ended", "marker:<kind>" or "requires:<lease id>".
DROP FUNCTION "writ_record_leases"(jsonb, jsonb, jsonb);
CREATE FUNCTION "writ_record_leases"("tasks" jsonb, "leases" jsonb, "events" jsonb)
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
      SELECT 2, 'requires:' || d."id" FROM jsonb_array_elements_text(coalesce(l->'requires', '[]'::jsonb)) AS d("id")
        LEFT JOIN "lease" p ON p."id" = d."id"::uuid
        WHERE p."id" IS NULL OR p."revoked_at" IS NOT NULL
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
