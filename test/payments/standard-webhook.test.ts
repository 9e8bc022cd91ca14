// Standard Webhooks for the link provider: messages signed by the package's own Webhook.sign, the tolerance held
// against the injected clock, and message ids remembered until their timestamp leaves it.
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { paymentSecretKey } from '../../src/payments/secret.js';
import {
  SeenMessages,
  TOLERANCE_SECONDS,
  verifyStandardWebhook,
  WebhookRefusal,
} from '../../src/payments/standard-webhook.js';
import { SECRET } from '../helpers/payments.js';

const NOW = Date.UTC(2026, 0, 1, 12);
const BODY = JSON.stringify({ type: 'payment.succeeded', data: { order_id: 'ord_1', reference: 'pay_1' } });

/** A message as a Standard Webhooks sender makes it, with the secret as the merchant was given it. */
function signed(id: string, atMs: number, body = BODY, secret = SECRET) {
  const signature = new Webhook(secret).sign(id, new Date(atMs), body);
  return {
    body: Buffer.from(body),
    headers: {
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(atMs / 1000)),
      'webhook-signature': signature,
    },
  };
}

const verifier = () => new Webhook(paymentSecretKey(SECRET), { format: 'raw' });

function refusal(run: () => unknown): WebhookRefusal {
  try {
    run();
  } catch (error) {
    if (error instanceof WebhookRefusal) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('verifyStandardWebhook', () => {
  it('accepts a message signed with the secret by the standardwebhooks package', () => {
    const message = signed('msg_1', NOW);
    expect(verifyStandardWebhook(verifier(), message.body, message.headers, NOW)).toEqual({
      id: 'msg_1',
      timestampSeconds: NOW / 1000,
      payload: JSON.parse(BODY),
    });
  });

  it('accepts one good signature among several (a sender rotating its secret sends both)', () => {
    const message = signed('msg_2', NOW);
    const other = new Webhook(SECRET.replace('a', 'b')).sign('msg_2', new Date(NOW), BODY);
    const headers = {
      ...message.headers,
      'webhook-signature': `${other} ${message.headers['webhook-signature']}`,
    };
    expect(verifyStandardWebhook(verifier(), message.body, headers, NOW).id).toBe('msg_2');
  });

  it('refuses a changed body, another id, another secret and missing headers', () => {
    const message = signed('msg_3', NOW);
    const cases = [
      () =>
        verifyStandardWebhook(verifier(), Buffer.from(BODY.replace('pay_1', 'pay_2')), message.headers, NOW),
      () =>
        verifyStandardWebhook(verifier(), message.body, { ...message.headers, 'webhook-id': 'msg_4' }, NOW),
      () => {
        const forged = signed('msg_3', NOW, BODY, `whsec_${Buffer.alloc(32, 7).toString('base64')}`);
        return verifyStandardWebhook(verifier(), forged.body, forged.headers, NOW);
      },
      () => verifyStandardWebhook(verifier(), message.body, { 'webhook-id': 'msg_3' }, NOW),
    ];
    for (const run of cases) {
      const error = refusal(run);
      expect(error.status).toBe(400);
      expect(error.code).toBe('invalid_signature');
    }
  });

  it('holds the timestamp against the given clock, five minutes either way', () => {
    const edge = TOLERANCE_SECONDS * 1000;
    const old = signed('msg_5', NOW - edge);
    expect(verifyStandardWebhook(verifier(), old.body, old.headers, NOW).id).toBe('msg_5');
    expect(refusal(() => verifyStandardWebhook(verifier(), old.body, old.headers, NOW + 1000)).code).toBe(
      'timestamp_out_of_tolerance',
    );
    const early = signed('msg_6', NOW + edge + 1000);
    expect(refusal(() => verifyStandardWebhook(verifier(), early.body, early.headers, NOW)).code).toBe(
      'timestamp_out_of_tolerance',
    );
  });

  it('refuses a signed body that is not JSON', () => {
    const message = signed('msg_7', NOW, 'not json');
    expect(refusal(() => verifyStandardWebhook(verifier(), message.body, message.headers, NOW)).code).toBe(
      'invalid_payload',
    );
  });
});

describe('SeenMessages', () => {
  it('remembers an id while its timestamp is within tolerance, then forgets it', () => {
    const seen = new SeenMessages();
    const stamp = NOW / 1000;
    seen.remember('msg_1', stamp, NOW);
    expect(seen.has('msg_1', NOW)).toBe(true);
    expect(seen.has('msg_1', NOW + TOLERANCE_SECONDS * 1000)).toBe(true);
    // From here a replay is refused by its timestamp, so the id need not be kept.
    expect(seen.has('msg_1', NOW + TOLERANCE_SECONDS * 1000 + 1)).toBe(false);
    expect(seen.size).toBe(0);
  });
});
