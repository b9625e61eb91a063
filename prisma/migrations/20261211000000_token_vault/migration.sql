-- The token vault (issue 20): SaaS authorization servers Writ is a client of, the users' grants
-- there (refresh tokens, sealed), linkings under way, and each release of an access token to a
-- task. Secrets are stored only sealed (src/ca/secrets.ts): key id, nonce, ciphertext.

CREATE TABLE "downstream_provider" (
    "id" TEXT NOT NULL,
    "issuer" TEXT NOT NULL,
    "client_id" TEXT NOT NULL,
    "client_auth" TEXT NOT NULL,
    -- The client secret (client_secret_basic, client_secret_post) or private key (private_key_jwt, PKCS#8 PEM), sealed.
    "secret_kek_id" TEXT NOT NULL,
    "secret_nonce" BYTEA NOT NULL,
    "secret_ciphertext" BYTEA NOT NULL,
    "scopes" TEXT[] NOT NULL,
    -- The classification of what it holds, as policy sees it (resource.classification of use_grant).
    "classification" TEXT NOT NULL,
    -- The RFC 8707 resource to ask tokens for, when the provider wants one.
    "resource" TEXT,
    -- Which events also revoke a stored grant at the provider (RFC 7009): user, session, account, connector.
    "revoke_on" TEXT[] NOT NULL DEFAULT '{}',
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "downstream_provider_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "downstream_provider_client_auth_check" CHECK ("client_auth" IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt'))
);

CREATE TABLE "downstream_grant" (
    "id" UUID NOT NULL,
    "provider_id" TEXT NOT NULL,
    "subject_issuer" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "scopes" TEXT[] NOT NULL,
    "token_kek_id" TEXT NOT NULL,
    "token_nonce" BYTEA NOT NULL,
    "token_ciphertext" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "refreshed_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    "revocation_reason" TEXT,
    -- Revoked here and to be revoked at the provider too (RFC 7009): done once provider_result is set.
    "revoke_at_provider" BOOLEAN NOT NULL DEFAULT false,
    "provider_result" TEXT,

    CONSTRAINT "downstream_grant_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "downstream_grant_provider_id_fkey" FOREIGN KEY ("provider_id") REFERENCES "downstream_provider"("id") ON DELETE CASCADE
);
-- One live grant per user and provider: linking again replaces it.
CREATE UNIQUE INDEX "downstream_grant_live_key" ON "downstream_grant" ("provider_id", "subject_issuer", "subject") WHERE "revoked_at" IS NULL;
CREATE INDEX "downstream_grant_subject_idx" ON "downstream_grant" ("subject_issuer", "subject");

-- A linking under way: the link Writ handed out (by the SHA-256 of its secret), bound to one user
-- at their identity provider; then the authorization request at the SaaS (by its state's SHA-256).
CREATE TABLE "grant_link" (
    "id" TEXT NOT NULL,
    "provider_id" TEXT NOT NULL,
    "subject_issuer" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "scopes" TEXT[] NOT NULL,
    "task_id" UUID,
    "state" TEXT,
    "verifier" TEXT,
    -- The SHA-256 of a cookie set in the browser that went to the provider: the callback must come back to that browser.
    "browser" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "used_at" TIMESTAMPTZ(3),

    CONSTRAINT "grant_link_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "grant_link_provider_id_fkey" FOREIGN KEY ("provider_id") REFERENCES "downstream_provider"("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "grant_link_state_key" ON "grant_link" ("state");
CREATE INDEX "grant_link_expires_at_idx" ON "grant_link" ("expires_at");

-- Each access token released to a task. The token itself is kept sealed until it expires, so that
-- ending the task can revoke it at the provider (RFC 7009) rather than wait for its expiry.
CREATE TABLE "grant_release" (
    "id" UUID NOT NULL,
    "grant_id" UUID NOT NULL,
    "task_id" UUID NOT NULL,
    -- The task token it was released for: revoking that token ends the release too.
    "jti" UUID NOT NULL,
    "connector" TEXT NOT NULL,
    "scopes" TEXT[] NOT NULL,
    "token_kek_id" TEXT NOT NULL,
    "token_nonce" BYTEA NOT NULL,
    "token_ciphertext" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    -- When its task token was revoked or its task ended, and it was revoked at the provider (or the provider cannot).
    "revoked_at" TIMESTAMPTZ(3),
    "revocation_result" TEXT,

    CONSTRAINT "grant_release_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "grant_release_grant_id_fkey" FOREIGN KEY ("grant_id") REFERENCES "downstream_grant"("id") ON DELETE CASCADE
);
CREATE INDEX "grant_release_task_id_idx" ON "grant_release" ("task_id");
CREATE INDEX "grant_release_live_idx" ON "grant_release" ("expires_at") WHERE "revoked_at" IS NULL;

-- A console sign-in may return to where it began (an account link) instead of the console.
ALTER TABLE "console_session" ADD COLUMN "return_to" TEXT;
