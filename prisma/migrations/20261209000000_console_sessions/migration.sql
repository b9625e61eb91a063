-- The console's sign-ins (issue 19): an authorization code flow with PKCE under way ("login",
-- keyed by the SHA-256 of its state), and signed-in sessions ("session", keyed by the SHA-256 of
-- the cookie). In the database so that any replica can finish a login and serve a session;
-- only hashes are stored, so a database reader holds no usable cookie.
CREATE TABLE "console_session" (
    "id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "issuer" TEXT NOT NULL,
    "verifier" TEXT,
    "nonce" TEXT,
    "subject" TEXT,
    "groups" TEXT[] NOT NULL DEFAULT '{}',
    "csrf" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "console_session_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "console_session_kind_check" CHECK ("kind" IN ('login', 'session'))
);
CREATE INDEX "console_session_expires_at_idx" ON "console_session" ("expires_at");
