/**
 * Signed webhooks for approval requests and decisions, so a chat or ticketing integration can be
 * built outside Writ. Signed as Standard Webhooks (standardwebhooks.com) sign them:
 * `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 of
 * HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`, so their libraries verify them.
 *
 * Written here rather than taken from the `standardwebhooks` package: signing is one HMAC, and
 * the delivery (outbox, retries) is what matters and is Writ's own.
 *
 * Delivery is an outbox: the webhook row commits with the change it announces, and any replica
 * sends it. A replica claims due rows by pushing their next attempt a minute out (FOR UPDATE
 * SKIP LOCKED, so replicas never claim the same row), posts them outside any transaction, and
 * records the outcome; a failure is retried with exponential backoff, at most 12 times.
 */
import { createHmac } from 'node:crypto';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import type { Prisma, PrismaClient } from '../db/generated/client';
import { approvalJson, type Approval } from './index';

export interface WebhookSettings {
  readonly url: string;
  /** `whsec_<base64>` (the key is the decoded bytes), or any text of 32+ characters (its UTF-8 bytes). */
  readonly secret: string;
}

/** The key a Standard Webhooks secret names. */
function keyOf(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
}

/** The three headers of a Standard Webhooks signed message. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): Record<string, string> {
  const signature = createHmac('sha256', keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` };
}

/** Writes webhooks into the outbox, in the caller's transaction. */
export class WebhookOutbox {
  constructor(
    private readonly deps: { clock: Clock; random: Random; approvalUrl: (id: string) => string },
  ) {}

  readonly announce = async (tx: Prisma.TransactionClient, event: 'approval.requested' | 'approval.decided', a: Approval): Promise<void> => {
    // The data is the API's view of the request (GET /v1/approvals/{id}), with the URL approvers open.
    const payload = { type: event, timestamp: this.deps.clock.now().toISOString(), data: approvalJson(a, this.deps.approvalUrl(a.id)) };
    await tx.webhookDelivery.create({ data: { id: this.deps.random.uuid(), event, payload: payload as object, nextAttemptAt: this.deps.clock.now() } });
  };
}

const MAX_ATTEMPTS = 12;
const CLAIM_MS = 60_000;
const BATCH = 20;

/** Sends the outbox's due webhooks; `runOnce` is one pass, `start` runs passes every `intervalMs`. */
export class WebhookDispatcher {
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<number> | undefined;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly settings: WebhookSettings,
    private readonly deps: { clock: Clock; fetch?: typeof fetch; log?: (message: string) => void },
  ) {}

  start(intervalMs = 1000): void {
    this.#timer ??= setInterval(() => void this.runOnce().catch((err: Error) => this.deps.log?.(`webhook delivery failed: ${err.message}`)), intervalMs);
    this.#timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /** Claims and sends what is due; resolves with how many were delivered. One pass at a time per process. */
  runOnce(): Promise<number> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #pass(): Promise<number> {
    const now = this.deps.clock.now();
    // Claimed: their next attempt moves a minute out, so no other replica sends them meanwhile.
    const claimed = await this.prisma.$queryRawUnsafe<{ id: string; payload: unknown; attempts: number }[]>(
      `UPDATE webhook_delivery SET next_attempt_at = $2::timestamptz
       WHERE id IN (SELECT id FROM webhook_delivery WHERE delivered_at IS NULL AND attempts < $3 AND next_attempt_at <= $1::timestamptz ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)
       RETURNING id::text AS id, payload, attempts`,
      now.toISOString(),
      new Date(now.getTime() + CLAIM_MS).toISOString(),
      MAX_ATTEMPTS,
      BATCH,
    );
    let delivered = 0;
    for (const row of claimed) {
      const body = JSON.stringify(row.payload);
      const timestamp = Math.floor(this.deps.clock.now().getTime() / 1000);
      let error: string | undefined;
      try {
        const res = await (this.deps.fetch ?? fetch)(this.settings.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...signWebhook(this.settings.secret, row.id, timestamp, body) },
          body,
          redirect: 'error',
          signal: AbortSignal.timeout(5000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status > 299) error = `the receiver answered ${res.status}`;
      } catch (err) {
        error = (err as Error).message;
      }
      const attempts = row.attempts + 1;
      if (error === undefined) {
        delivered++;
        await this.prisma.webhookDelivery.update({ where: { id: row.id }, data: { attempts, deliveredAt: this.deps.clock.now(), lastError: null } });
      } else {
        // Exponential backoff: 5 s, 10 s, 20 s … capped at an hour; after MAX_ATTEMPTS it stays undelivered, its last error kept.
        const wait = Math.min(3_600_000, 5000 * 2 ** (attempts - 1));
        await this.prisma.webhookDelivery.update({ where: { id: row.id }, data: { attempts, nextAttemptAt: new Date(this.deps.clock.now().getTime() + wait), lastError: error.slice(0, 500) } });
        this.deps.log?.(`webhook ${row.id} not delivered (attempt ${attempts}): ${error}`);
      }
    }
    return delivered;
  }
}
