-- Task history (issue 18): each tools/call a resource server let through in a task, as the
-- server reported it or as Writ's AuthZEN decision permitted it, so that policy can decide on
-- what the task did before ("no egress after a restricted read"), across servers and chain
-- hops. (task_id, server, call_id) is unique: a report retried, or the report of a call a
-- per-call decision already recorded, updates the one row (its outcome) and adds none.
CREATE TABLE "task_event" (
    "id" UUID NOT NULL,
    "task_id" UUID NOT NULL,
    "server" TEXT NOT NULL,
    "reporter" TEXT NOT NULL,
    "call_id" TEXT NOT NULL,
    "tool" TEXT NOT NULL,
    "actions" TEXT[] NOT NULL,
    "classification" TEXT NOT NULL,
    "egress" BOOLEAN NOT NULL DEFAULT false,
    "resource_ref" TEXT,
    "outcome" TEXT NOT NULL,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_event_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "task_event_outcome_check" CHECK ("outcome" IN ('permitted', 'ok', 'error', 'unknown')),
    CONSTRAINT "task_event_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "task"("id") ON DELETE CASCADE
);

CREATE UNIQUE INDEX "task_event_task_id_server_call_id_key" ON "task_event"("task_id", "server", "call_id");
