-- Admin role bindings made through the admin API (issue 19); WRIT_ADMIN_ROLES holds the configured ones.
CREATE TABLE "role_binding" (
    "id" UUID NOT NULL,
    "role" TEXT NOT NULL,
    "issuer" TEXT NOT NULL,
    "group" TEXT,
    "subject" TEXT,
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "role_binding_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "role_binding_role_check" CHECK ("role" IN ('auditor', 'operator', 'admin')),
    CONSTRAINT "role_binding_one_target_check" CHECK (("group" IS NULL) <> ("subject" IS NULL))
);
