-- CreateTable
CREATE TABLE "bundle" (
    "trust_domain" TEXT NOT NULL,
    "sequence" BIGINT NOT NULL DEFAULT 1,
    "refresh_hint" INTEGER NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "bundle_pkey" PRIMARY KEY ("trust_domain")
);

-- CreateTable
CREATE TABLE "authority" (
    "id" TEXT NOT NULL,
    "trust_domain" TEXT NOT NULL,
    "use" TEXT NOT NULL,
    "material" BYTEA NOT NULL,
    "not_before" TIMESTAMPTZ(3) NOT NULL,
    "not_after" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "retired_at" TIMESTAMPTZ(3),

    CONSTRAINT "authority_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "registration_entry" (
    "id" UUID NOT NULL,
    "spiffe_id" TEXT NOT NULL,
    "selectors" TEXT[],
    "x509_svid_ttl" INTEGER NOT NULL DEFAULT 3600,
    "jwt_svid_ttl" INTEGER NOT NULL DEFAULT 300,
    "dns_names" TEXT[],
    "admin" BOOLEAN NOT NULL DEFAULT false,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "registration_entry_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "lease" (
    "id" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "spiffe_id" TEXT NOT NULL,
    "subject" TEXT,
    "task_id" TEXT,
    "audience" TEXT[],
    "issued_at" TIMESTAMPTZ(3) NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "revoked_at" TIMESTAMPTZ(3),
    "revocation_reason" TEXT,

    CONSTRAINT "lease_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_event" (
    "seq" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "type" TEXT NOT NULL,
    "subject" TEXT,
    "actor" TEXT,
    "details" JSONB NOT NULL DEFAULT '{}',
    "prev_hash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "audit_event_pkey" PRIMARY KEY ("seq")
);

-- CreateTable
CREATE TABLE "admin_credential" (
    "id" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "admin_credential_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "authority_trust_domain_use_idx" ON "authority"("trust_domain", "use");

-- CreateIndex
CREATE INDEX "registration_entry_spiffe_id_idx" ON "registration_entry"("spiffe_id");

-- CreateIndex
CREATE INDEX "lease_expires_at_idx" ON "lease"("expires_at");

-- CreateIndex
CREATE INDEX "lease_spiffe_id_idx" ON "lease"("spiffe_id");

-- CreateIndex
CREATE INDEX "lease_subject_idx" ON "lease"("subject");

-- CreateIndex
CREATE INDEX "lease_task_id_idx" ON "lease"("task_id");

-- CreateIndex
CREATE UNIQUE INDEX "audit_event_hash_key" ON "audit_event"("hash");

-- CreateIndex
CREATE INDEX "audit_event_at_idx" ON "audit_event"("at");

-- AddForeignKey
ALTER TABLE "authority" ADD CONSTRAINT "authority_trust_domain_fkey" FOREIGN KEY ("trust_domain") REFERENCES "bundle"("trust_domain") ON DELETE CASCADE ON UPDATE CASCADE;

-- The audit trail is append-only: refuse UPDATE, DELETE and TRUNCATE (not expressible in the Prisma schema).
CREATE FUNCTION "audit_event_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER "audit_event_no_update_delete" BEFORE UPDATE OR DELETE ON "audit_event"
    FOR EACH ROW EXECUTE FUNCTION "audit_event_append_only"();

CREATE TRIGGER "audit_event_no_truncate" BEFORE TRUNCATE ON "audit_event"
    FOR EACH STATEMENT EXECUTE FUNCTION "audit_event_append_only"();
