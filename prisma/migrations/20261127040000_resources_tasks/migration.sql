-- CreateTable
CREATE TABLE "resource" (
    "uri" TEXT NOT NULL,
    "spiffe_id" TEXT NOT NULL,
    "tools" JSONB NOT NULL DEFAULT '[]',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "resource_pkey" PRIMARY KEY ("uri")
);

-- CreateTable
CREATE TABLE "task" (
    "id" UUID NOT NULL,
    "subject" TEXT NOT NULL,
    "subject_issuer" TEXT NOT NULL,
    "connector" TEXT NOT NULL,
    "subject_groups" TEXT[],
    "subject_risk" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "ended_at" TIMESTAMPTZ(3),
    "end_reason" TEXT,

    CONSTRAINT "task_pkey" PRIMARY KEY ("id")
);

-- AlterTable
ALTER TABLE "lease" ADD COLUMN "authorization_details" JSONB,
ADD COLUMN "parent_id" UUID,
ADD COLUMN "sid" TEXT,
ADD COLUMN "subject_issuer" TEXT;

-- CreateIndex
CREATE INDEX "resource_spiffe_id_idx" ON "resource"("spiffe_id");

-- CreateIndex
CREATE INDEX "task_connector_idx" ON "task"("connector");

-- CreateIndex
CREATE INDEX "lease_parent_id_idx" ON "lease"("parent_id");
