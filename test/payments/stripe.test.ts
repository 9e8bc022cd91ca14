// The Stripe provider against a local stand-in that answers like Stripe: one Checkout Session per order, the
// order id as idempotency key, expires_at kept in Stripe's range, and an unreachable Stripe as PAYMENT_UNAVAILABLE.
import Stripe from 'stripe';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStockError, type StockError } from '../../src/domain/errors.js';
import type { PayableOrder } from '../../src/payments/provider.js';
import {
  createStripeProvider,
  FIRST_ATTEMPT_SLACK_MS,
  STRIPE_MIN_EXPIRY_MS,
  type StripeProviderOptions,
  sessionExpiresAt,
  sessionParams,
} from '../../src/payments/stripe.js';
import { order } from '../helpers/payments.js';
import { STANDIN_SECRET_KEY, type StripeStandIn, startStripeStandIn } from '../helpers/stripe-standin.js';

const CREATED = Date.parse(order().created_at);
let now = CREATED + 1_000;
let standIn: StripeStandIn;

beforeEach(async () => {
  now = CREATED + 1_000;
  standIn = await startStripeStandIn(() => now);
});
afterEach(async () => {
  await standIn.close();
});

function provider(overrides: Partial<StripeProviderOptions> = {}) {
  return createStripeProvider({
    secretKey: STANDIN_SECRET_KEY,
    successUrl: 'https://shop.example/thanks?order={order_id}',
    cancelUrl: 'https://shop.example/cart?order={order_id}',
    api: standIn.api,
    maxNetworkRetries: 0,
    ...overrides,
  });
}

async function refusalOf(promise: Promise<unknown>): Promise<StockError> {
  try {
    await promise;
  } catch (error) {
    if (isStockError(error)) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('Stripe provider', () => {
  it("makes a Checkout Session from the order's lines, keyed by the order id", async () => {
    const twoLines = order({
      lines: [
        { sku: 'TEE-BLK-M', name: 'Organic cotton T-shirt, black, M', quantity: 2, unit_price_minor: 2400 },
        { sku: 'MUG-WHT', name: 'Enamel camp mug, white', quantity: 1, unit_price_minor: 1450 },
      ],
      total_minor: 6250,
    });
    const start = await provider().start(twoLines);
    const session = standIn.sessions.get(start.reference ?? '');
    expect(session).toBeDefined();
    expect(start.payment_url).toBe(session?.url);
    expect(session).toMatchObject({
      mode: 'payment',
      currency: 'eur',
      amount_total: 6250,
      client_reference_id: 'ord_7Hq2',
      metadata: { order_id: 'ord_7Hq2' },
      success_url: 'https://shop.example/thanks?order=ord_7Hq2',
      cancel_url: 'https://shop.example/cart?order=ord_7Hq2',
      status: 'open',
      payment_status: 'unpaid',
    });
    expect(standIn.requests).toEqual([
      { method: 'POST', path: '/v1/checkout/sessions', idempotencyKey: 'ord_7Hq2', status: 200 },
    ]);
  });

  it('a second start of the same order is the same session (Stripe replays the idempotency key)', async () => {
    const first = await provider().start(order());
    const again = await provider().start(order());
    expect(again).toEqual(first);
    expect(standIn.sessions.size).toBe(1);
  });

  it('the same order id with other parameters is refused by Stripe, and the shopper hears PAYMENT_UNAVAILABLE', async () => {
    await provider().start(order());
    const changed = order({ lines: [{ ...order().lines[0], quantity: 3 } as PayableOrder['lines'][number]] });
    const refused = await refusalOf(provider().start(changed));
    expect(refused.code).toBe('PAYMENT_UNAVAILABLE');
    expect(refused.details).toMatchObject({ order_id: 'ord_7Hq2', provider: 'stripe', retriable: true });
    expect(standIn.requests.at(-1)?.status).toBe(400);
    // What the stand-in answered, through the package itself:
    const stripe = new Stripe(STANDIN_SECRET_KEY, { ...standIn.api, maxNetworkRetries: 0 });
    await expect(
      stripe.checkout.sessions.create(
        sessionParams(changed, { successUrl: 'https://a/', cancelUrl: 'https://a/' }),
        {
          idempotencyKey: 'ord_7Hq2',
        },
      ),
    ).rejects.toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
  });

  it('the stand-in refuses a missing required field and an expires_at outside 30 min to 24 h, like Stripe', async () => {
    const stripe = new Stripe(STANDIN_SECRET_KEY, { ...standIn.api, maxNetworkRetries: 0 });
    const params = sessionParams(order(), { successUrl: 'https://a/', cancelUrl: 'https://a/' });
    const { line_items: _, ...withoutLines } = params;
    await expect(stripe.checkout.sessions.create(withoutLines)).rejects.toMatchObject({
      type: 'StripeInvalidRequestError',
      code: 'parameter_missing',
      param: 'line_items',
    });
    const created = Math.floor(now / 1000);
    for (const expiresAt of [created + 29 * 60, created + 24 * 3600 + 60]) {
      await expect(
        stripe.checkout.sessions.create({ ...params, expires_at: expiresAt }),
      ).rejects.toMatchObject({
        type: 'StripeInvalidRequestError',
        param: 'expires_at',
      });
    }
    // A refused request is not saved under its key: the corrected one goes through.
    await expect(
      stripe.checkout.sessions.create({ ...params, expires_at: created + 20 * 60 }, { idempotencyKey: 'k1' }),
    ).rejects.toMatchObject({ param: 'expires_at' });
    await expect(
      stripe.checkout.sessions.create({ ...params, expires_at: created + 40 * 60 }, { idempotencyKey: 'k1' }),
    ).resolves.toMatchObject({ object: 'checkout.session' });
  });

  it('clamps the session expiry into Stripe range: a short window gets 35 min, a long one just under 24 h', () => {
    expect(sessionExpiresAt(order()) * 1000).toBe(CREATED + STRIPE_MIN_EXPIRY_MS + FIRST_ATTEMPT_SLACK_MS);
    const hourWindow = order({ pay_by: new Date(CREATED + 3_600_000).toISOString() });
    expect(sessionExpiresAt(hourWindow) * 1000).toBe(CREATED + 3_600_000);
    const twoDays = order({ pay_by: new Date(CREATED + 48 * 3_600_000).toISOString() });
    expect(sessionExpiresAt(twoDays) * 1000).toBe(CREATED + 24 * 3_600_000 - 60_000);
  });

  it('a 30-minute window is accepted by Stripe because the session outlives pay_by; stocklock ends the order itself', async () => {
    const start = await provider().start(order());
    const session = standIn.sessions.get(start.reference ?? '');
    expect((session?.expires_at ?? 0) * 1000).toBeGreaterThan(Date.parse(order().pay_by ?? ''));
  });

  it('a first attempt later than the slack cannot get a short session: PAYMENT_UNAVAILABLE, nothing made', async () => {
    now = CREATED + FIRST_ATTEMPT_SLACK_MS + 60_000;
    const refused = await refusalOf(provider().start(order()));
    expect(refused.code).toBe('PAYMENT_UNAVAILABLE');
    expect(standIn.sessions.size).toBe(0);
  });

  it('Stripe not answering in time is PAYMENT_UNAVAILABLE; the retry gets the session Stripe made meanwhile', async () => {
    const release = standIn.hold();
    const refused = await refusalOf(provider({ timeoutMs: 300 }).start(order()));
    expect(refused.code).toBe('PAYMENT_UNAVAILABLE');
    expect(refused.message).toMatch(
      /Stripe could not be reached.*Call checkout again with the same idempotency_key/,
    );
    release();
    await standIn.answered(1);
    expect(standIn.sessions.size).toBe(1);
    const retried = await provider().start(order());
    expect(standIn.sessions.size).toBe(1);
    expect(retried.reference).toBe([...standIn.sessions.keys()][0]);
  });

  it('close expires an open session; a session no longer open, or a reference not a session, has nothing to close', async () => {
    const p = provider();
    const open = await p.start(order());
    const paidOrder = await p.start(order({ order_id: 'ord_paid' }));
    standIn.complete(paidOrder.reference ?? '');
    expect(await p.close?.(open.reference ?? '')).toBe('closed');
    expect(standIn.sessions.get(open.reference ?? '')?.status).toBe('expired');
    expect(await p.close?.(open.reference ?? '')).toBe('not_open');
    expect(await p.close?.(paidOrder.reference ?? '')).toBe('not_open');
    expect(standIn.sessions.get(paidOrder.reference ?? '')?.status).toBe('complete');
    expect(await p.close?.('cs_test_unknown')).toBe('not_open');
    const asked = standIn.requests.length;
    expect(await p.close?.('bank-transfer-42')).toBe('not_open');
    expect(standIn.requests).toHaveLength(asked);
    // An outage is thrown, for the caller to retry.
    const again = await p.start(order({ order_id: 'ord_again' }));
    standIn.failNext(1);
    await expect(p.close?.(again.reference ?? '')).rejects.toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(standIn.sessions.get(again.reference ?? '')?.status).toBe('open');
  });

  it('a wrong secret key is PAYMENT_UNAVAILABLE that names the Stripe settings, and never the key', async () => {
    const refused = await refusalOf(provider({ secretKey: 'sk_test_wrong' }).start(order()));
    expect(refused.code).toBe('PAYMENT_UNAVAILABLE');
    expect(refused.message).toMatch(/check its Stripe settings/);
    expect(JSON.stringify(refused.details)).not.toContain('sk_test');
  });
});

describe('Stripe webhook signatures', () => {
  it('an event signed by the package test helper verifies; a changed body or an old one does not', async () => {
    const stripe = new Stripe(STANDIN_SECRET_KEY, standIn.api);
    const start = await provider().start(order());
    const paid = standIn.complete(start.reference ?? '');
    const stamp = Math.floor(now / 1000);
    const { body, signature } = standIn.signedEvent('checkout.session.completed', paid, stamp);
    const secret = 'whsec_standin_webhook_secret';
    const event = stripe.webhooks.constructEvent(body, signature, secret, 300, undefined, now);
    expect(event).toMatchObject({
      type: 'checkout.session.completed',
      data: { object: { payment_status: 'paid' } },
    });
    expect(() =>
      stripe.webhooks.constructEvent(body.replace('paid', 'unpaid'), signature, secret, 300, undefined, now),
    ).toThrow(Stripe.errors.StripeSignatureVerificationError);
    expect(() =>
      stripe.webhooks.constructEvent(body, signature, secret, 300, undefined, now + 301_000),
    ).toThrow(/tolerance/);
  });
});
