// The payment routes over real HTTP, on SQLite and PostgreSQL: a checkout in a payment channel gets its pay page
// after the order commits; signed webhooks confirm it (Standard Webhooks for the link, Stripe's for Checkout),
// replays and forgeries change nothing, Stripe's expiry cancels, and a late payment oversells nothing.
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { isStockError } from '../../src/domain/errors.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { silentLogger } from '../../src/logger.js';
import { checkoutWithPayment } from '../../src/payments/checkout.js';
import { createLinkProvider } from '../../src/payments/link.js';
import type { PaymentProvider } from '../../src/payments/provider.js';
import { paymentSecretKey } from '../../src/payments/secret.js';
import { createStripeProvider, type StripeProvider } from '../../src/payments/stripe.js';
import { paymentRoutes } from '../../src/payments/webhooks.js';
import { openStore } from '../../src/storage/open.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { type HttpServerHandle, serveHttp } from '../../src/transports/http.js';
import { SHOP_CATALOG as CATALOG } from '../helpers/catalog.js';
import { SECRET } from '../helpers/payments.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import {
  STANDIN_SECRET_KEY,
  STANDIN_WEBHOOK_SECRET,
  type StripeStandIn,
  startStripeStandIn,
} from '../helpers/stripe-standin.js';
import { tempDir } from '../helpers/temp.js';

const TEMPLATE =
  'https://shop.example/pay?order={order_id}&total={total_minor}&currency={currency}&sig={signature}';
const shopper = { channel: 'claude', holder: 'grant-1' };
const other = { channel: 'claude', holder: 'grant-2' };

function options(clock: ManualClock): StoreOptions {
  return {
    clock,
    reservationTtlMs: 15 * 60_000,
    paymentWindowMs: 30 * 60_000,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 2_000,
    poolSize: 4,
  };
}

const unavailable = await postgresUnavailable();
let pgDb: TestDatabase | undefined;
beforeAll(async () => {
  if (unavailable === undefined) pgDb = await createTestDatabase('stocklock_payments');
});
afterAll(async () => {
  await pgDb?.drop();
});

const dialects: { name: string; database: () => Promise<string> }[] = [
  { name: 'sqlite', database: async () => join(tempDir('stocklock-payments-').dir, 'stocklock.db') },
];
if (unavailable === undefined || process.env.CI === 'true') {
  dialects.push({
    name: 'postgres',
    database: async () => {
      if (!pgDb) throw new Error(unavailable);
      const probe = await openStore(pgDb.url, options(new ManualClock()));
      await probe.close();
      await pgDb.reset();
      return pgDb.url;
    },
  });
} else {
  console.warn(`Skipping the PostgreSQL payment tests: ${unavailable}`);
}

describe.each(dialects)('payments on $name', ({ database }) => {
  let clock: ManualClock;
  let store: InventoryStore;
  let standIn: StripeStandIn;
  let stripe: StripeProvider;
  let link: PaymentProvider;
  let server: HttpServerHandle;
  let base: string;

  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    store = await openStore(await database(), options(clock));
    await store.importProducts({ channel: 'cli' }, [
      ...CATALOG,
      { sku: 'FLASH-1', name: 'Flash sale tee', price_minor: 1000, currency: 'EUR', stock: 10_000 },
    ]);
    await store.setCheckoutMode('claude', 'payment');
    standIn = await startStripeStandIn(() => clock.now());
    stripe = createStripeProvider({
      secretKey: STANDIN_SECRET_KEY,
      successUrl: 'https://shop.example/thanks?order={order_id}',
      cancelUrl: 'https://shop.example/cart?order={order_id}',
      api: standIn.api,
      maxNetworkRetries: 0,
    });
    link = createLinkProvider({ template: TEMPLATE, key: paymentSecretKey(SECRET) });
    const router = paymentRoutes({
      store,
      clock,
      logger: silentLogger,
      link: { key: paymentSecretKey(SECRET) },
      stripe: { client: stripe.stripe, webhookSecret: STANDIN_WEBHOOK_SECRET },
    });
    server = await serveHttp(
      store,
      {
        host: '127.0.0.1',
        port: 0,
        allowedHosts: [],
        auth: true,
        channel: 'default',
        sessionIdleMs: 60_000,
        maxSessions: 10,
        version: 'test',
        payments: { router },
      },
      silentLogger,
    );
    base = new URL(server.url).origin;
  });
  afterEach(async () => {
    await server.close();
    await standIn.close();
    await store.close();
  });

  async function checkedOut(provider: PaymentProvider, ctx = shopper, sku = 'TEE-BLK-M', quantity = 2) {
    const cart = await store.addToCart(ctx, { sku, quantity });
    return checkoutWithPayment({ store, provider }, ctx, {
      cartId: cart.cart_id,
      idempotencyKey: `co-${cart.cart_id}`,
    });
  }

  async function available(sku: string): Promise<number | null> {
    const [level] = await store.stockLevels([sku]);
    return level?.available ?? null;
  }

  function linkMessage(orderId: string, id: string, data: Record<string, unknown> = {}, at = clock.now()) {
    const body = JSON.stringify({
      type: 'payment.succeeded',
      timestamp: new Date(at).toISOString(),
      data: { order_id: orderId, reference: 'pay_123', total_minor: 4800, currency: 'EUR', ...data },
    });
    const signature = new Webhook(SECRET).sign(id, new Date(at), body);
    return {
      body,
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(at / 1000)),
        'webhook-signature': signature,
      },
    };
  }

  async function post(path: string, message: { body: string; headers: Record<string, string> }) {
    const response = await fetch(`${base}${path}`, {
      method: 'POST',
      body: message.body,
      headers: message.headers,
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  function stripeEvent(type: string, session: Parameters<StripeStandIn['signedEvent']>[1]) {
    const { body, signature } = standIn.signedEvent(type, session, Math.floor(clock.now() / 1000));
    return { body, headers: { 'content-type': 'application/json', 'stripe-signature': signature } };
  }

  async function audited() {
    const report = await store.audit();
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
  }

  describe('link provider, Standard Webhooks at /payments/webhook', () => {
    it('a signed payment.succeeded pays the order; a replay of its id is not applied again', async () => {
      const order = await checkedOut(link);
      expect(order).toMatchObject({
        status: 'awaiting_payment',
        payment_url: expect.stringContaining('sig='),
      });
      const held = await available('TEE-BLK-M');
      const message = linkMessage(order.order_id, 'msg_1');
      expect(await post('/payments/webhook', message)).toEqual({
        status: 200,
        body: { received: true, order_id: order.order_id, status: 'paid' },
      });
      expect(await store.getOrder(shopper, order.order_id)).toMatchObject({
        status: 'paid',
        payment_reference: 'pay_123',
      });
      expect(await available('TEE-BLK-M')).toBe(held);
      expect(await post('/payments/webhook', message)).toEqual({
        status: 200,
        body: { received: true, duplicate: true },
      });
      // Another delivery of the same payment under a new id: confirming a paid order changes nothing.
      expect((await post('/payments/webhook', linkMessage(order.order_id, 'msg_2'))).body.status).toBe(
        'paid',
      );
      await audited();
    });

    it('refuses a forged, a stale and a wrong-amount message, and changes nothing', async () => {
      const order = await checkedOut(link);
      const forged = linkMessage(order.order_id, 'msg_f');
      forged.body = forged.body.replace('pay_123', 'pay_999');
      expect(await post('/payments/webhook', forged)).toMatchObject({
        status: 400,
        body: { error: 'invalid_signature' },
      });
      const stale = linkMessage(order.order_id, 'msg_s', {}, clock.now() - 6 * 60_000);
      expect(await post('/payments/webhook', stale)).toMatchObject({
        status: 400,
        body: { error: 'timestamp_out_of_tolerance' },
      });
      const cheap = linkMessage(order.order_id, 'msg_c', { total_minor: 100 });
      expect(await post('/payments/webhook', cheap)).toMatchObject({
        status: 422,
        body: { error: 'amount_mismatch' },
      });
      const unknown = linkMessage('ord_nope', 'msg_u');
      expect((await post('/payments/webhook', unknown)).status).toBe(404);
      expect((await store.getOrder(shopper, order.order_id)).status).toBe('awaiting_payment');
      // A refused message is not remembered: the right one under a refused id still pays.
      expect((await post('/payments/webhook', linkMessage(order.order_id, 'msg_c'))).body.status).toBe(
        'paid',
      );
      await audited();
    });

    it('a payment after pay_by takes the stock again if it is there, else flags needs_refund', async () => {
      const onTime = await checkedOut(link, shopper, 'JACKET-LTD', 1);
      clock.advance(31 * 60_000);
      await store.sweepOverdueOrders();
      expect(await store.getOrder(shopper, onTime.order_id)).toMatchObject({
        status: 'cancelled',
        cancel_reason: 'payment_timeout',
      });
      expect(await available('JACKET-LTD')).toBe(1);
      // Someone else buys the last jacket meanwhile (a direct channel), then the late payment arrives.
      const cart = await store.addToCart({ channel: 'web' }, { sku: 'JACKET-LTD', quantity: 1 });
      await store.checkout({ channel: 'web' }, { cartId: cart.cart_id });
      const late = await post(
        '/payments/webhook',
        linkMessage(onTime.order_id, 'msg_late', { total_minor: 14900, reference: 'pay_late' }),
      );
      expect(late.status).toBe(200);
      expect(await store.getOrder(shopper, onTime.order_id)).toMatchObject({
        needs_refund: true,
        payment_reference: 'pay_late',
      });
      expect(await available('JACKET-LTD')).toBe(0);
      await audited();
    });

    it('takes no body over 64 KB', async () => {
      const message = linkMessage('ord_x', 'msg_big');
      message.body = JSON.stringify({ type: 'payment.succeeded', pad: 'x'.repeat(70_000) });
      expect((await post('/payments/webhook', message)).status).toBe(413);
    });
  });

  describe('Stripe Checkout at /payments/stripe', () => {
    it("completed and paid confirms the order the session's client_reference_id names", async () => {
      const order = await checkedOut(stripe);
      expect(order.payment_url).toMatch(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_test_/);
      const [sessionId] = [...standIn.sessions.keys()];
      const paid = standIn.complete(sessionId ?? '', 'pi_test_1');
      expect(await post('/payments/stripe', stripeEvent('checkout.session.completed', paid))).toEqual({
        status: 200,
        body: { received: true, order_id: order.order_id, status: 'paid' },
      });
      expect(await store.getOrder(shopper, order.order_id)).toMatchObject({
        status: 'paid',
        payment_reference: 'pi_test_1',
      });
      await audited();
    });

    it('completed but unpaid waits; async_payment_succeeded then confirms', async () => {
      const order = await checkedOut(stripe);
      const session = standIn.sessions.get([...standIn.sessions.keys()][0] ?? '');
      if (!session) throw new Error('no session');
      const pending = { ...session, status: 'complete', payment_status: 'unpaid' } as typeof session;
      expect(
        (await post('/payments/stripe', stripeEvent('checkout.session.completed', pending))).body,
      ).toEqual({
        received: true,
        ignored: 'checkout.session.completed',
      });
      expect((await store.getOrder(shopper, order.order_id)).status).toBe('awaiting_payment');
      const succeeded = standIn.complete(session.id);
      expect(
        (await post('/payments/stripe', stripeEvent('checkout.session.async_payment_succeeded', succeeded)))
          .body,
      ).toMatchObject({ status: 'paid' });
    });

    it('expired cancels an order awaiting payment (units back) and leaves a paid one alone', async () => {
      const before = await available('TEE-BLK-M');
      const order = await checkedOut(stripe);
      const session = standIn.sessions.get([...standIn.sessions.keys()][0] ?? '');
      if (!session) throw new Error('no session');
      const expired = { ...session, status: 'expired' } as typeof session;
      expect(
        (await post('/payments/stripe', stripeEvent('checkout.session.expired', expired))).body,
      ).toMatchObject({
        status: 'cancelled',
      });
      expect(await store.getOrder(shopper, order.order_id)).toMatchObject({
        cancel_reason: 'payment_expired',
      });
      expect(await available('TEE-BLK-M')).toBe(before);

      const second = await checkedOut(stripe, other);
      await store.confirmPayment(
        { channel: 'cli', admin: true },
        { orderId: second.order_id, reference: 'manual' },
      );
      const secondSession = [...standIn.sessions.values()].find(
        (s) => s.client_reference_id === second.order_id,
      );
      if (!secondSession) throw new Error('no session');
      await post(
        '/payments/stripe',
        stripeEvent('checkout.session.expired', {
          ...secondSession,
          status: 'expired',
        } as typeof secondSession),
      );
      expect((await store.getOrder(other, second.order_id)).status).toBe('paid');
      await audited();
    });

    it('ignores other events and unknown orders with 200; a bad signature is 400 and changes nothing', async () => {
      const order = await checkedOut(stripe);
      const session = standIn.sessions.get([...standIn.sessions.keys()][0] ?? '');
      if (!session) throw new Error('no session');
      expect((await post('/payments/stripe', stripeEvent('customer.created', session))).body).toEqual({
        received: true,
        ignored: 'customer.created',
      });
      const stranger = { ...standIn.complete(session.id), client_reference_id: 'ord_elsewhere' };
      expect(
        (await post('/payments/stripe', stripeEvent('checkout.session.completed', stranger))).body,
      ).toMatchObject({
        ignored: 'ORDER_NOT_FOUND',
      });
      const paid = standIn.complete(session.id);
      const forged = stripeEvent('checkout.session.completed', paid);
      const { signature } = standIn.signedEvent(
        'checkout.session.completed',
        paid,
        Math.floor(clock.now() / 1000),
        'whsec_other',
      );
      expect(
        (
          await post('/payments/stripe', {
            ...forged,
            headers: { ...forged.headers, 'stripe-signature': signature },
          })
        ).status,
      ).toBe(400);
      const old = standIn.signedEvent(
        'checkout.session.completed',
        paid,
        Math.floor(clock.now() / 1000) - 600,
      );
      expect(
        (await post('/payments/stripe', { body: old.body, headers: { 'stripe-signature': old.signature } }))
          .status,
      ).toBe(400);
      expect((await store.getOrder(shopper, order.order_id)).status).toBe('awaiting_payment');
    });
  });

  describe('checkoutWithPayment: nothing waits on the provider inside a stock transaction', () => {
    it('Stripe not answering is PAYMENT_UNAVAILABLE with the order saved; the same checkout then gets the same session', async () => {
      const slow = createStripeProvider({
        secretKey: STANDIN_SECRET_KEY,
        successUrl: 'https://a.example/',
        cancelUrl: 'https://a.example/',
        api: standIn.api,
        maxNetworkRetries: 0,
        timeoutMs: 200,
      });
      const cart = await store.addToCart(shopper, { sku: 'MUG-WHT', quantity: 1 });
      const release = standIn.hold();
      const input = { cartId: cart.cart_id, idempotencyKey: 'checkout-1' };
      const refused = await checkoutWithPayment({ store, provider: slow }, shopper, input).catch(
        (error) => error,
      );
      expect(isStockError(refused) && refused.code).toBe('PAYMENT_UNAVAILABLE');
      const orderId = (refused as { details: { order_id: string } }).details.order_id;
      expect(await store.getOrder(shopper, orderId)).toMatchObject({
        status: 'awaiting_payment',
        payment_url: null,
      });
      release();
      await standIn.answered(1);
      const retried = await checkoutWithPayment({ store, provider: slow }, shopper, input);
      expect(retried).toMatchObject({ order_id: orderId, status: 'awaiting_payment' });
      expect(retried.payment_url).toBe([...standIn.sessions.values()][0]?.url);
      expect(standIn.sessions.size).toBe(1);
      await audited();
    });

    it('while Stripe holds one order for seconds, other checkouts of the same SKU go through', async () => {
      const first = await store.addToCart(shopper, { sku: 'FLASH-1', quantity: 1 });
      const release = standIn.hold();
      const held = checkoutWithPayment({ store, provider: stripe }, shopper, { cartId: first.cart_id });
      await standIn.waiting(1);
      let heldSettled = false;
      void held.then(() => {
        heldSettled = true;
      });
      // Other shoppers buy the same SKU for 2 s of real time while the first checkout waits on Stripe: each takes
      // the write lock and commits (a lock held across the call would make them STORE_BUSY after 2 s).
      const started = Date.now();
      const statuses: string[] = [];
      for (let i = 0; Date.now() - started < 2_000 || i < 8; i++) {
        const direct = i % 2 === 1;
        const ctx = direct ? { channel: 'web' } : { channel: 'claude', holder: `grant-other-${i}` };
        const cart = await store.addToCart(ctx, { sku: 'FLASH-1', quantity: 1 });
        const order = direct
          ? await store.checkout(ctx, { cartId: cart.cart_id })
          : await checkoutWithPayment({ store, provider: link }, ctx, { cartId: cart.cart_id });
        statuses.push(order.status);
      }
      expect(heldSettled).toBe(false);
      expect(statuses.length).toBeGreaterThanOrEqual(8);
      expect(new Set(statuses)).toEqual(new Set(['paid', 'awaiting_payment']));
      release();
      const order = await held;
      expect(order.payment_url).toMatch(/checkout\.stripe\.com/);
      expect(await available('FLASH-1')).toBe(10_000 - 1 - statuses.length);
      await audited();
    });
  });
});
