-- AlterTable
ALTER TABLE "lease" ADD COLUMN "entry_id" UUID,
ADD COLUMN "fingerprint" TEXT;
