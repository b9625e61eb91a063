-- Human approval for high-risk tool actions (issue 18): a permit annotated @approval("required")
-- grants a call only once an approver approved it, for that task, server, tool and action, for
-- a bounded time. At most one request is open (pending or approved) per task, tool and action.
CREATE TABLE "approval" (
    "id" UUID NOT NULL,
    "task_id" UUID NOT NULL,
    "subject" TEXT NOT NULL,
    "subject_issuer" TEXT NOT NULL,
    "connector" TEXT NOT NULL,
    "server" TEXT NOT NULL,
    "tool" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "classification" TEXT NOT NULL,
    "reason" TEXT,
    "policies" TEXT[] NOT NULL,
    "approvers" TEXT[] NOT NULL,
    "self_approval" BOOLEAN NOT NULL DEFAULT false,
    "status" TEXT NOT NULL,
    "requested_at" TIMESTAMPTZ(3) NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "decided_at" TIMESTAMPTZ(3),
    "decided_by" TEXT,
    "decided_by_issuer" TEXT,
    "decision_reason" TEXT,
    "approved_until" TIMESTAMPTZ(3),

    CONSTRAINT "approval_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "approval_status_check" CHECK ("status" IN ('pending', 'approved', 'denied', 'expired', 'revoked')),
    CONSTRAINT "approval_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "task"("id") ON DELETE CASCADE
);

CREATE UNIQUE INDEX "approval_open_key" ON "approval" ("task_id", "server", "tool", "action") WHERE "status" IN ('pending', 'approved');
CREATE INDEX "approval_status_idx" ON "approval" ("status", "requested_at");

-- Webhook deliveries, written in the transaction of the change they announce (an outbox), sent
-- by any replica (FOR UPDATE SKIP LOCKED) and retried with backoff until delivered or given up.
CREATE TABLE "webhook_delivery" (
    "id" UUID NOT NULL,
    "event" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "delivered_at" TIMESTAMPTZ(3),
    "last_error" TEXT,

    CONSTRAINT "webhook_delivery_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "webhook_delivery_due_idx" ON "webhook_delivery" ("next_attempt_at") WHERE "delivered_at" IS NULL;
