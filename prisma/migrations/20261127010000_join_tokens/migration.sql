-- CreateTable
CREATE TABLE "join_token" (
    "id" TEXT NOT NULL,
    "entry_id" UUID NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "used_at" TIMESTAMPTZ(3),

    CONSTRAINT "join_token_pkey" PRIMARY KEY ("id")
);

-- AlterTable
ALTER TABLE "lease" ADD COLUMN "serial" TEXT;

-- CreateIndex
CREATE INDEX "join_token_entry_id_idx" ON "join_token"("entry_id");

-- CreateIndex
CREATE UNIQUE INDEX "lease_serial_key" ON "lease"("serial");

-- AddForeignKey
ALTER TABLE "join_token" ADD CONSTRAINT "join_token_entry_id_fkey" FOREIGN KEY ("entry_id") REFERENCES "registration_entry"("id") ON DELETE CASCADE ON UPDATE CASCADE;
