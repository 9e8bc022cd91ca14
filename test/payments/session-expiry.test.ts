// A Stripe Checkout Session ends with its order: when stocklock cancels an order awaiting payment (the merchant's
// cancel_order, the payment timeout at pay_by), the session is expired at Stripe after the commit, outside every
// stock transaction, against the local stand-in. A failed expiry is retried, then reported; the cancellation
// stands, and a payment made on the session that stayed open is a late payment (sold if the stock is there, else
// needs_refund), through the real webhook. On SQLite and PostgreSQL.
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { silentLogger } from '../../src/logger.js';
import { checkoutWithPayment } from '../../src/payments/checkout.js';
import { createSessionCloser, type SessionCloser } from '../../src/payments/session-closer.js';
import { createStripeProvider, type StripeProvider } from '../../src/payments/stripe.js';
import { paymentRoutes } from '../../src/payments/webhooks.js';
import { openStore } from '../../src/storage/open.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { type HttpServerHandle, serveHttp } from '../../src/transports/http.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';
import {
  STANDIN_SECRET_KEY,
  STANDIN_WEBHOOK_SECRET,
  type StripeStandIn,
  startStripeStandIn,
} from '../helpers/stripe-standin.js';
import { tempDir } from '../helpers/temp.js';

const shopper = { channel: 'claude', holder: 'grant-1' };
const rival = { channel: 'web' };
const merchant = { channel: 'cli', admin: true };
const WINDOW = 30 * 60_000;

function options(clock: ManualClock): StoreOptions {
  return {
    clock,
    reservationTtlMs: 15 * 60_000,
    paymentWindowMs: WINDOW,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 2_000,
    poolSize: 4,
  };
}

const unavailable = await postgresUnavailable();
let pgDb: TestDatabase | undefined;
beforeAll(async () => {
  if (unavailable === undefined) pgDb = await createTestDatabase('stocklock_session_expiry');
});
afterAll(async () => {
  await pgDb?.drop();
});

const dialects: { name: string; database: () => Promise<string> }[] = [
  { name: 'sqlite', database: async () => join(tempDir('stocklock-expiry-').dir, 'stocklock.db') },
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
  console.warn(`Skipping the PostgreSQL session expiry tests: ${unavailable}`);
}

describe.each(dialects)('Checkout Sessions end with their orders on $name', ({ database }) => {
  let clock: ManualClock;
  let store: InventoryStore;
  let standIn: StripeStandIn;
  let stripe: StripeProvider;
  let closer: SessionCloser;
  let logLines: string[];
  let server: HttpServerHandle;
  let base: string;

  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    standIn = await startStripeStandIn(() => clock.now());
    stripe = createStripeProvider({
      secretKey: STANDIN_SECRET_KEY,
      successUrl: 'https://shop.example/thanks?order={order_id}',
      cancelUrl: 'https://shop.example/cart?order={order_id}',
      api: standIn.api,
      maxNetworkRetries: 0,
    });
    logLines = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(line) });
    // Short retry waits: the test waits for the stand-in's requests, never for a time.
    closer = createSessionCloser(stripe, { logger, attempts: 3, retryDelayMs: 5 });
    store = await openStore(await database(), {
      ...options(clock),
      onOrdersCancelled: closer.onOrdersCancelled,
    });
    await store.importProducts({ channel: 'cli' }, [
      { sku: 'LAST-3', name: 'Last three', price_minor: 1500, currency: 'EUR', stock: 3 },
    ]);
    await store.setCheckoutMode('claude', 'payment');
    const router = paymentRoutes({
      store,
      clock,
      logger: silentLogger,
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
    await closer.settled();
    await server.close();
    await standIn.close();
    await store.close();
  });

  async function checkedOut(quantity = 2) {
    const cart = await store.addToCart(shopper, { sku: 'LAST-3', quantity });
    const order = await checkoutWithPayment({ store, provider: stripe }, shopper, {
      cartId: cart.cart_id,
    });
    const session = standIn.sessions.get(order.payment_reference ?? '');
    if (!session) throw new Error('no session was made');
    return { order, session };
  }

  const expireRequests = (sessionId: string) =>
    standIn.requests.filter((r) => r.path === `/v1/checkout/sessions/${sessionId}/expire`);

  async function available(): Promise<number | null> {
    const [level] = await store.stockLevels(['LAST-3']);
    return level?.available ?? null;
  }

  async function paidAtStripe(sessionId: string) {
    const paid = standIn.complete(sessionId, 'pi_test_late');
    const { body, signature } = standIn.signedEvent(
      'checkout.session.completed',
      paid,
      Math.floor(clock.now() / 1000),
    );
    const response = await fetch(`${base}/payments/stripe`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function audited() {
    const report = await store.audit();
    expect(report.violations).toEqual([]);
  }

  it("a 30-minute window is shorter than Stripe lets a session be: the session outlives pay_by by Stripe's margin", async () => {
    const made = clock.now();
    const { order, session } = await checkedOut();
    expect(order.pay_by).toBe(new Date(made + WINDOW).toISOString());
    // 30 min is Stripe's minimum, measured from when Stripe makes the session: the expiry keeps 5 min for that.
    expect(session.expires_at * 1000).toBe(made + 35 * 60_000);
  });

  it("cancel_order expires the order's session at Stripe after the commit; a shopper can no longer pay there", async () => {
    const { order, session } = await checkedOut();
    const cancelled = await store.cancelOrder(merchant, { orderId: order.order_id, restock: false });
    expect(cancelled).toMatchObject({ status: 'cancelled', cancel_reason: 'merchant' });
    await closer.settled();
    expect(expireRequests(session.id)).toMatchObject([{ method: 'POST', status: 200 }]);
    expect(standIn.sessions.get(session.id)?.status).toBe('expired');
    expect(() => standIn.complete(session.id)).toThrow(/expired/);
    expect(await available()).toBe(3);
    // Cancelling again changes nothing and asks Stripe nothing.
    await store.cancelOrder(merchant, { orderId: order.order_id, restock: false });
    await closer.settled();
    expect(expireRequests(session.id)).toHaveLength(1);
    await audited();
  });

  it('the payment timeout expires the session: the clock past pay_by, the sweep cancels, then Stripe is told', async () => {
    const { order, session } = await checkedOut();
    clock.advance(WINDOW - 1);
    expect(await store.sweepOverdueOrders()).toEqual({ orders: 0, units: 0 });
    await closer.settled();
    expect(expireRequests(session.id)).toHaveLength(0);
    clock.advance(1);
    expect(await store.sweepOverdueOrders()).toEqual({ orders: 1, units: 2 });
    await closer.settled();
    expect(standIn.sessions.get(session.id)?.status).toBe('expired');
    expect(await store.getOrder(shopper, order.order_id)).toMatchObject({
      status: 'cancelled',
      cancel_reason: 'payment_timeout',
    });
    await audited();
  });

  it('a failed expiry is retried until Stripe answers', async () => {
    const { order, session } = await checkedOut();
    standIn.failNext(2);
    await store.cancelOrder(merchant, { orderId: order.order_id, restock: false });
    await closer.settled();
    expect(expireRequests(session.id).map((r) => r.status)).toEqual([500, 500, 200]);
    expect(standIn.sessions.get(session.id)?.status).toBe('expired');
  });

  it('an expiry Stripe never takes is reported; the cancel stands, and a payment there is a late payment: sold while the stock lasts', async () => {
    const { order, session } = await checkedOut();
    standIn.failNext(3);
    clock.advance(WINDOW);
    expect(await store.sweepOverdueOrders()).toEqual({ orders: 1, units: 2 });
    await closer.settled();
    expect(expireRequests(session.id).map((r) => r.status)).toEqual([500, 500, 500]);
    const reported = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(reported).toContainEqual(
      expect.objectContaining({ level: 50, orderId: order.order_id, reference: session.id, attempts: 3 }),
    );
    expect(await available()).toBe(3);
    // The session stayed open; the shopper pays after pay_by, and the units are still there.
    expect((await paidAtStripe(session.id)).body).toMatchObject({ order_id: order.order_id, status: 'paid' });
    expect(await store.getOrder(shopper, order.order_id)).toMatchObject({
      status: 'paid',
      needs_refund: false,
      payment_reference: 'pi_test_late',
    });
    expect(await available()).toBe(1);
    await audited();
  });

  it('a late payment for units sold since is flagged needs_refund and oversells nothing', async () => {
    const { order, session } = await checkedOut(2);
    standIn.failNext(3);
    clock.advance(WINDOW);
    await store.sweepOverdueOrders();
    await closer.settled();
    // Another buyer takes the units back on sale.
    const cart = await store.addToCart(rival, { sku: 'LAST-3', quantity: 3 });
    await store.checkout(rival, { cartId: cart.cart_id });
    expect((await paidAtStripe(session.id)).body).toMatchObject({ order_id: order.order_id });
    expect(await store.getOrder(shopper, order.order_id)).toMatchObject({
      status: 'cancelled',
      needs_refund: true,
      payment_reference: 'pi_test_late',
    });
    const [level] = await store.stockLevels(['LAST-3']);
    expect(level).toMatchObject({ on_hand: 0, reserved: 0 });
    await audited();
  });

  it("nothing waits on Stripe's expiry inside a stock transaction: the units sell while Stripe holds its answer", async () => {
    const { order, session } = await checkedOut(2);
    const release = standIn.hold();
    await store.cancelOrder(merchant, { orderId: order.order_id, restock: false });
    await standIn.waiting(1);
    // The expiry is waiting at Stripe; the same SKU sells meanwhile.
    const cart = await store.addToCart(rival, { sku: 'LAST-3', quantity: 3 });
    expect(await store.checkout(rival, { cartId: cart.cart_id })).toMatchObject({ status: 'paid' });
    release();
    await closer.settled();
    expect(standIn.sessions.get(session.id)?.status).toBe('expired');
    await audited();
  });
});
