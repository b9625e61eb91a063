-- CreateTable
CREATE TABLE "subject_revocation" (
    "id" UUID NOT NULL,
    "issuer" TEXT NOT NULL,
    "subject" TEXT,
    "sid" TEXT,
    "email" TEXT,
    "not_before" TIMESTAMPTZ(3) NOT NULL,
    "reason" TEXT NOT NULL,

    CONSTRAINT "subject_revocation_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "subject_revocation_issuer_subject_idx" ON "subject_revocation"("issuer", "subject");

-- CreateIndex
CREATE INDEX "subject_revocation_issuer_sid_idx" ON "subject_revocation"("issuer", "sid");

-- AlterTable
ALTER TABLE "lease" ADD COLUMN "subject_email" TEXT;

-- CreateIndex
CREATE INDEX "lease_subject_issuer_subject_email_idx" ON "lease"("subject_issuer", "subject_email");
