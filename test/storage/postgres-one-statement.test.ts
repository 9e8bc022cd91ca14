// The one-statement reserve and checkout (stocklock_reserve_new_cart, stocklock_checkout_cart, drizzle/postgres/0004
// and 0008) write the rules decideAddToCart and decideOrderCheckout decide a second time, in SQL. These tests prove
// the two agree: the same random workloads run once with the one-statement paths and once with every call a general
// transaction, on the same real database, and every answer and every row must come out the same, orders in both
// checkout modes included (and what confirming, cancelling and the payment timeout later do with them). And each is
// one round trip.
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { StockError } from '../../src/domain/errors.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { CallContext } from '../../src/domain/types.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { ONE_STATEMENT_CATALOG } from '../helpers/catalog.js';
import { startPgProxy } from '../helpers/pg-proxy.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { admin, expectAuditOk, level, T0, TTL } from './contract.js';

const LIMITS = { ...DEFAULT_LIMITS, maxLineQuantity: 4, maxCartQuantity: 6, maxChannelReserved: 7 };
// web and pos sell direct; app is set to payment; claude is in payment mode by default (a preset OAuth host's
// channel) and its carts belong to a grant.
const CHANNELS: CallContext[] = [
  { channel: 'web' },
  { channel: 'app' },
  { channel: 'pos' },
  { channel: 'claude', holder: 'grant_1' },
];
const ADMIN: CallContext = { channel: 'admin', admin: true };
const PAYMENT_WINDOW = 10 * 60_000;
const SKUS = ['A', 'A', 'B', 'B', 'C', 'D', 'E', 'U', 'NOPE'];

/** A small seeded generator, so a failing seed can be run again. */
function random(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

type Op =
  | { kind: 'add'; ctx: number; sku: string; quantity: number; cart?: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'checkout' | 'release'; ctx: number; cart: number; own?: boolean }
  | { kind: 'restock'; sku: string; quantity: number }
  | { kind: 'confirm'; order: number }
  | { kind: 'cancel'; order: number; restock: boolean }
  | { kind: 'sweep' };

/** A workload mostly of new carts (the one-statement reserve's calls), with expiry, sales, releases and restocks. */
function workload(seed: number, length: number): Op[] {
  const pick = random(seed);
  const ops: Op[] = [];
  for (let i = 0; i < length; i++) {
    const roll = pick(100);
    const ctx = pick(CHANNELS.length);
    const sku = SKUS[pick(SKUS.length)] as string;
    if (roll < 55) ops.push({ kind: 'add', ctx, sku, quantity: 1 + pick(5) });
    else if (roll < 65) ops.push({ kind: 'add', ctx, sku, quantity: 1 + pick(2), cart: pick(1_000) });
    else if (roll < 78) ops.push({ kind: 'advance', ms: [60_000, TTL / 2, TTL + 1_000][pick(3)] as number });
    else if (roll < 85) ops.push({ kind: 'checkout', ctx, cart: pick(1_000), own: pick(5) > 0 });
    else if (roll < 88) ops.push({ kind: 'release', ctx, cart: pick(1_000) });
    else if (roll < 91) ops.push({ kind: 'confirm', order: pick(1_000) });
    else if (roll < 93) ops.push({ kind: 'cancel', order: pick(1_000), restock: pick(2) === 0 });
    else if (roll < 97)
      ops.push({ kind: 'restock', sku: ['A', 'B', 'E'][pick(3)] as string, quantity: 1 + pick(3) });
    else ops.push({ kind: 'sweep' });
  }
  return ops;
}

describePostgres('PostgreSQL one-statement reserve', () => {
  let db: TestDatabase;
  /** What kinds of order the workloads made (mode, status, holder), across all of them. */
  const made = new Set<string>();

  beforeAll(async () => {
    db = await createTestDatabase();
    await (await openPostgresStore(db.url, options(new ManualClock(T0)))).close();
  });
  afterAll(async () => {
    await db?.drop();
  });

  function options(clock: ManualClock): StoreOptions {
    return {
      clock,
      reservationTtlMs: TTL,
      limits: LIMITS,
      lockTimeoutMs: 10_000,
      poolSize: 2,
      paymentWindowMs: PAYMENT_WINDOW,
    };
  }

  /** Runs the workload on a fresh copy of the catalog; returns every answer and every row, cart ids normalised. */
  async function run(ops: Op[], oneStatement: boolean) {
    await db.reset();
    const clock = new ManualClock(T0);
    const store: InventoryStore = await openPostgresStore(db.url, { ...options(clock), oneStatement });
    try {
      await store.importProducts(admin, ONE_STATEMENT_CATALOG);
      await store.setCheckoutMode('app', 'payment');
      const carts: string[] = [];
      const cartCtx = new Map<string, CallContext>();
      const orders: string[] = [];
      const answers: unknown[] = [];
      const cartOf = (n: number) => (carts.length === 0 ? 'cart_none' : (carts[n % carts.length] as string));
      const orderOf = (n: number) =>
        orders.length === 0 ? 'ord_none' : (orders[n % orders.length] as string);
      for (const op of ops) {
        try {
          if (op.kind === 'add') {
            const ctx = CHANNELS[op.ctx] as CallContext;
            const cartId = op.cart === undefined ? undefined : cartOf(op.cart);
            const view = await store.addToCart(ctx, { sku: op.sku, quantity: op.quantity, cartId });
            if (!carts.includes(view.cart_id)) carts.push(view.cart_id);
            cartCtx.set(view.cart_id, ctx);
            answers.push(view);
          } else if (op.kind === 'advance') clock.advance(op.ms);
          else if (op.kind === 'checkout') {
            // Mostly by the cart's own caller, so that many checkouts sell or await payment.
            const cartId = cartOf(op.cart);
            const ctx = (op.own && cartCtx.get(cartId)) || (CHANNELS[op.ctx] as CallContext);
            const order = await store.checkout(ctx, { cartId });
            if (!orders.includes(order.order_id)) orders.push(order.order_id);
            answers.push(order);
          } else if (op.kind === 'confirm')
            answers.push(
              await store.confirmPayment(ADMIN, {
                orderId: orderOf(op.order),
                reference: `pay-${answers.length}`,
              }),
            );
          else if (op.kind === 'cancel')
            answers.push(await store.cancelOrder(ADMIN, { orderId: orderOf(op.order), restock: op.restock }));
          else if (op.kind === 'release')
            answers.push(
              await store.releaseCart(CHANNELS[op.ctx] as CallContext, { cartId: cartOf(op.cart) }),
            );
          else if (op.kind === 'restock') answers.push(await store.restock(admin, op));
          else answers.push([await store.sweepExpired(), await store.sweepOverdueOrders()]);
        } catch (error) {
          if (!(error instanceof StockError)) throw error;
          answers.push({ refused: error.code, message: error.message, details: error.details });
        }
      }
      await expectAuditOk(store);
      const rows = {
        products: await db.query('SELECT sku, on_hand, reserved, updated_at FROM products ORDER BY sku'),
        carts: await db.query(
          'SELECT id, channel, holder, status, currency, created_at, updated_at, expires_at FROM carts',
        ),
        lines: await db.query('SELECT cart_id, sku, quantity, held FROM cart_lines'),
        channels: await db.query('SELECT channel, held FROM channel_holds ORDER BY channel'),
        // Every column: the one-statement checkout writes the order the general one writes, holder to paid_at.
        orders: await db.query('SELECT * FROM orders'),
        orderLines: await db.query('SELECT * FROM order_lines ORDER BY order_id, sku'),
        ledger: await db.query(
          `SELECT at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note
             FROM stock_movements ORDER BY id`,
        ),
      };
      // Cart ids are random: number them in the order the calls made them (order ids alike).
      let text = JSON.stringify({ answers, rows });
      for (const [n, id] of carts.entries()) text = text.replaceAll(id, `cart#${n}`);
      for (const [n, id] of orders.entries()) text = text.replaceAll(id, `ord#${n}`);
      const parsed = JSON.parse(text) as { answers: unknown[]; rows: Record<string, unknown[]> };
      const byText = (a: unknown, b: unknown) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
      parsed.rows.carts?.sort(byText);
      parsed.rows.lines?.sort(byText);
      parsed.rows.orders?.sort(byText);
      parsed.rows.orderLines?.sort(byText);
      // Holds that expired at the same instant are freed in cart id order, and the ids differ from run to run.
      const at = (row: unknown) => Number((row as { at: string }).at);
      parsed.rows.ledger?.sort((a, b) => at(a) - at(b) || byText(a, b));
      return parsed;
    } finally {
      await store.close();
    }
  }

  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'workload %i: every answer and every row the same with the one-statement paths as with the general ones',
    async (seed) => {
      const ops = workload(seed, 120);
      const sent = await countingCalls(() => run(ops, true));
      const general = await run(ops, false);
      expect(sent.result).toEqual(general);
      // The reserve did run, and its refusals too: not everything fell back to the general path.
      expect(sent.reserves).toBeGreaterThan(10);
      expect(sent.checkouts).toBeGreaterThan(0);
      for (const order of general.rows.orders as { status: string; pay_by: unknown; holder: string }[]) {
        made.add(`${order.pay_by === null ? 'direct' : 'payment'} ${order.status} ${order.holder || '-'}`);
      }
      const refused = general.answers.filter(
        (a) => (a as { refused?: string }).refused === 'OUT_OF_STOCK',
      ).length;
      expect(refused).toBeGreaterThan(0);
    },
    60_000,
  );

  it('the workloads made orders in both modes, and paid, cancelled and unpaid ones', () => {
    expect([...made].sort()).toEqual(
      expect.arrayContaining([
        'direct paid -',
        'direct cancelled -',
        'payment awaiting_payment grant_1',
        'payment paid -',
        'payment cancelled -',
        'payment cancelled grant_1',
      ]),
    );
  });

  it("a new cart's add_to_cart is one statement in autocommit: no BEGIN, no COMMIT", async () => {
    await db.reset();
    const store = await openPostgresStore(db.url, options(new ManualClock(T0)));
    try {
      await store.importProducts(admin, ONE_STATEMENT_CATALOG);
      const seen: string[] = [];
      const cart = await recording(seen, () =>
        store.addToCart({ channel: 'web' }, { sku: 'A', quantity: 2 }),
      );
      expect(seen).toEqual(['stocklock_reserveNewCart']);
      expect(cart).toMatchObject({ status: 'open', item_count: 2, lines: [{ sku: 'A', quantity: 2 }] });
      const refusedSeen: string[] = [];
      const refusal = await recording(refusedSeen, () =>
        store.addToCart({ channel: 'web' }, { sku: 'A', quantity: 3 }).catch((error: unknown) => error),
      );
      expect(refusedSeen).toEqual(['stocklock_reserveNewCart']);
      const sold: string[] = [];
      const order = await recording(sold, () => store.checkout({ channel: 'web' }, { cartId: cart.cart_id }));
      // The statement reads the channel's checkout mode itself: one statement, no BEGIN, no COMMIT.
      expect(sold).toEqual(['stocklock_checkoutCart']);
      expect(order).toMatchObject({
        cart_id: cart.cart_id,
        status: 'paid',
        paid_at: new Date(T0).toISOString(),
        lines: [{ sku: 'A', quantity: 2 }],
        total_minor: 2000,
      });
      // A payment channel's checkout (a grant's, on a preset host's channel) is one statement too: the order
      // awaits payment and holds the units.
      const shopper = { channel: 'claude', holder: 'grant_9' };
      const held = await store.addToCart(shopper, { sku: 'B', quantity: 3 });
      const awaiting: string[] = [];
      const pending = await recording(awaiting, () => store.checkout(shopper, { cartId: held.cart_id }));
      expect(awaiting).toEqual(['stocklock_checkoutCart']);
      expect(pending).toMatchObject({ status: 'awaiting_payment', total_minor: 750, paid_at: null });
      expect(await db.query('SELECT holder, status FROM orders WHERE id = $1', [pending.order_id])).toEqual([
        { holder: 'grant_9', status: 'awaiting_payment' },
      ]);
      expect(await level(store, 'B')).toMatchObject({ on_hand: 8, reserved: 3 });
      expect(refusal).toMatchObject({
        code: 'OUT_OF_STOCK',
        details: { sku: 'A', requested: 3, available: 1 },
      });
      await expectAuditOk(store);
    } finally {
      await store.close();
    }
  });

  it('an answer lost after the statement committed: the store finds the cart it made and returns it', async () => {
    await db.reset();
    const seeding = await openPostgresStore(db.url, options(new ManualClock(T0)));
    await seeding.importProducts(admin, ONE_STATEMENT_CATALOG);
    await seeding.close();
    const proxy = await startPgProxy(db.url);
    const viaProxy = await openPostgresStore(proxy.url, options(new ManualClock(T0)));
    try {
      // The channel's name is in the statement's parameters: only that call trips the fault.
      const ctx = { channel: 'lost-answer' };
      const tripped = proxy.failAfterStatement(ctx.channel);
      const cart = await viaProxy.addToCart(ctx, { sku: 'A', quantity: 2 });
      await tripped;
      expect(cart).toMatchObject({ status: 'open', item_count: 2, lines: [{ sku: 'A', quantity: 2 }] });
      expect(await db.query('SELECT id FROM carts')).toEqual([{ id: cart.cart_id }]);
      expect(await level(viaProxy, 'A')).toMatchObject({ on_hand: 3, reserved: 2 });
      await expectAuditOk(viaProxy);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('a checkout whose answer was lost after it committed returns the order it made, once', async () => {
    await db.reset();
    const direct = await openPostgresStore(db.url, options(new ManualClock(T0)));
    const proxy = await startPgProxy(db.url);
    const viaProxy = await openPostgresStore(proxy.url, options(new ManualClock(T0)));
    try {
      await direct.importProducts(admin, ONE_STATEMENT_CATALOG);
      const cart = await direct.addToCart({ channel: 'web' }, { sku: 'B', quantity: 3 });
      // The cart's id is in the checkout's parameters only.
      const tripped = proxy.failAfterStatement(cart.cart_id);
      const order = await viaProxy.checkout({ channel: 'web' }, { cartId: cart.cart_id });
      await tripped;
      expect(order).toMatchObject({
        cart_id: cart.cart_id,
        lines: [{ sku: 'B', quantity: 3 }],
        total_minor: 750,
      });
      expect(await db.query('SELECT id FROM orders')).toEqual([{ id: order.order_id }]);
      expect(await level(direct, 'B')).toMatchObject({ on_hand: 5, reserved: 0 });
      await expectAuditOk(direct);
    } finally {
      await viaProxy.close();
      await proxy.close();
      await direct.close();
    }
  });
});

/** Every statement pg clients send while `fn` runs, by name (or text). */
async function recording<T>(seen: string[], fn: () => Promise<T>): Promise<T> {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const [first] = args;
    seen.push(typeof first === 'string' ? first : ((first as { name?: string; text: string }).name ?? ''));
    return original.apply(this, args);
  };
  try {
    return await fn();
  } finally {
    proto.query = original;
  }
}

async function countingCalls<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; reserves: number; checkouts: number }> {
  const seen: string[] = [];
  const result = await recording(seen, fn);
  const count = (statement: string) => seen.filter((name) => name === statement).length;
  return { result, reserves: count('stocklock_reserveNewCart'), checkouts: count('stocklock_checkoutCart') };
}
