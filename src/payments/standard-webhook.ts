// Standard Webhooks for the link provider: the package's signature, our clock's tolerance, and ids seen once.
import { timingSafeEqual } from 'node:crypto';
import type { Webhook } from 'standardwebhooks';

/** The scheme's own tolerance: a message more than 5 minutes off our clock, either way, is refused. */
export const TOLERANCE_SECONDS = 5 * 60;
/** Ids remembered at most; past it the oldest are forgotten (a replay of one is still idempotent). */
const MAX_REMEMBERED = 100_000;

export class WebhookRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface VerifiedMessage {
  id: string;
  timestampSeconds: number;
  payload: unknown;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Checks a Standard Webhooks message. The signature is computed by the `standardwebhooks` package (`sign`); the
 * timestamp is held against the injected clock rather than the package's Date.now(), so time in tests moves with
 * the store's clock.
 */
export function verifyStandardWebhook(
  webhook: Webhook,
  body: Buffer,
  headers: Record<string, string | string[] | undefined>,
  nowMs: number,
): VerifiedMessage {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw new WebhookRefusal(
      400,
      'invalid_signature',
      'webhook-id, webhook-timestamp and webhook-signature headers are required',
    );
  }
  const timestampSeconds = Number(timestamp);
  if (!/^\d{1,12}$/.test(timestamp) || !Number.isSafeInteger(timestampSeconds)) {
    throw new WebhookRefusal(400, 'invalid_signature', 'webhook-timestamp must be whole seconds since 1970');
  }
  const expected = Buffer.from(webhook.sign(id, new Date(timestampSeconds * 1000), body));
  const matches = signatures.split(' ').some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches)
    throw new WebhookRefusal(400, 'invalid_signature', 'no webhook-signature matches this message');
  if (Math.abs(Math.floor(nowMs / 1000) - timestampSeconds) > TOLERANCE_SECONDS) {
    throw new WebhookRefusal(
      400,
      'timestamp_out_of_tolerance',
      `webhook-timestamp is more than ${TOLERANCE_SECONDS} s from this server's clock`,
    );
  }
  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WebhookRefusal(400, 'invalid_payload', 'the body must be JSON');
  }
  return { id, timestampSeconds, payload };
}

/**
 * The message ids applied in this process, each kept until its timestamp leaves the tolerance window: after that
 * the timestamp check refuses the message anyway. Kept in memory, so servers of a pool each keep their own; a
 * replay that reaches another server is still harmless, because confirming a paid order changes nothing.
 */
export class SeenMessages {
  private readonly until = new Map<string, number>();

  has(id: string, nowMs: number): boolean {
    this.forgetExpired(nowMs);
    return this.until.has(id);
  }

  remember(id: string, timestampSeconds: number, nowMs: number): void {
    this.forgetExpired(nowMs);
    this.until.set(id, (timestampSeconds + TOLERANCE_SECONDS) * 1000);
    if (this.until.size > MAX_REMEMBERED) {
      const oldest = this.until.keys().next().value;
      if (oldest !== undefined) this.until.delete(oldest);
    }
  }

  get size(): number {
    return this.until.size;
  }

  private forgetExpired(nowMs: number): void {
    // Insertion order is nearly timestamp order; stopping at the first live id keeps this cheap.
    for (const [id, until] of this.until) {
      if (until >= nowMs) break;
      this.until.delete(id);
    }
  }
}
