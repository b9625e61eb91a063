-- Authority private keys sealed under the key-encryption key (WRIT_KEK_FILE), shared by
-- every replica. A key goes with its authority: pruning the authority deletes the key.
CREATE TABLE "authority_key" (
    "authority_id" TEXT NOT NULL,
    "kek_id" TEXT NOT NULL,
    "nonce" BYTEA NOT NULL,
    "ciphertext" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "resealed_at" TIMESTAMPTZ(3),

    CONSTRAINT "authority_key_pkey" PRIMARY KEY ("authority_id")
);

ALTER TABLE "authority_key" ADD CONSTRAINT "authority_key_authority_id_fkey" FOREIGN KEY ("authority_id") REFERENCES "authority"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Replicas follow the bundle and the signing authorities as soon as another one changes
-- them (a rotation prepared or activated, an authority retired or pruned).
CREATE TRIGGER "authority_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "authority"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
CREATE TRIGGER "bundle_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "bundle"
  FOR EACH STATEMENT EXECUTE FUNCTION "writ_announce_change"();
