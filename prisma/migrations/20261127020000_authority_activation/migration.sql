-- AlterTable
ALTER TABLE "authority" ADD COLUMN "activates_at" TIMESTAMPTZ(3);
