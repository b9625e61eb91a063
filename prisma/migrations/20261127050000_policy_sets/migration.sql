-- CreateTable
CREATE TABLE "policy_set" (
    "version" SERIAL NOT NULL,
    "text" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,

    CONSTRAINT "policy_set_pkey" PRIMARY KEY ("version")
);
