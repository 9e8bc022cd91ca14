// The console's order reads (filters, keyset pages, paid-only sales) and their change feed, on SQLite and PostgreSQL.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { type ConsoleQueries, DAY_MS, orderListSql } from '../../src/storage/console-queries.js';
import { openStore } from '../../src/storage/open.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { SHOP_CATALOG } from '../helpers/catalog.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const WINDOW = 30 * 60_000;
const web = { channel: 'web' };
const bot = { channel: 'telegram' };
const admin = { channel: 'cli', admin: true };

function options(clock: ManualClock): StoreOptions {
  return { clock, reservationTtlMs: 15 * 60_000, limits: DEFAULT_LIMITS, lockTimeoutMs: 5_000, poolSize: 2 };
}

describe('console order reads on sqlite', () => {
  orderReads({ name: 'sqlite', database: async () => join(tempDir('stocklock-console-o-').dir, 'x.db') });

  it('answers each filter from an index', () => {
    const dir = tempDir('stocklock-console-plan-');
    return (async () => {
      const path = join(dir.dir, 'plan.db');
      const store = await openStore(path, options(new ManualClock()));
      await store.close();
      const db = new Database(path, { readonly: true });
      try {
        const plan = (filter: Parameters<typeof orderListSql>[0]) => {
          const { sql, params } = orderListSql(filter, 0, 'needs_refund = 1');
          return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[])
            .map((row) => row.detail)
            .join('; ');
        };
        expect(plan({ limit: 50 })).toMatch(/orders_listing/);
        expect(plan({ limit: 50, channel: 'web' })).toMatch(/orders_channel_listing/);
        expect(plan({ limit: 50, status: 'paid' })).toMatch(/orders_status_listing/);
        expect(plan({ limit: 50, needsRefund: true })).toMatch(/orders_needs_refund/);
        expect(plan({ limit: 50, after: { createdAt: 5, id: 'ord_x' } })).toMatch(/orders_listing/);
      } finally {
        db.close();
        dir.remove();
      }
    })();
  });
});

describePostgres('console order reads on postgres', () => {
  let pgDb: TestDatabase | undefined;
  beforeAll(async () => {
    pgDb = await createTestDatabase('stocklock_console_orders');
  });
  afterAll(async () => {
    await pgDb?.drop();
  });
  orderReads({
    name: 'postgres',
    database: async () => {
      if (!pgDb) throw new Error('the test database was not created');
      const probe = await openStore(pgDb.url, options(new ManualClock()));
      await probe.close();
      await pgDb.reset();
      return pgDb.url;
    },
  });
});

function orderReads({ name, database }: { name: string; database: () => Promise<string> }): void {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const done of cleanups.splice(0).reverse()) await done();
  });

  async function open(): Promise<{ store: InventoryStore; queries: ConsoleQueries; clock: ManualClock }> {
    const clock = new ManualClock(Date.UTC(2026, 0, 10, 12));
    const db = await database();
    const store = await openStore(db, options(clock));
    cleanups.push(() => store.close());
    await store.importProducts({ channel: 'cli' }, SHOP_CATALOG);
    await store.setCheckoutMode('telegram', 'payment');
    const queries = await openConsoleQueries(db, clock);
    cleanups.push(() => queries.close());
    return { store, queries, clock };
  }

  const buy = async (store: InventoryStore, ctx: { channel: string }, sku: string, quantity: number) => {
    const cart = await store.addToCart(ctx, { sku, quantity });
    return store.checkout(ctx, { cartId: cart.cart_id });
  };

  it('lists orders newest first by status (as read now), channel, refund and day, in keyset pages', async () => {
    const { store, queries, clock } = await open();
    clock.set(Date.UTC(2026, 0, 8, 9));
    const sold = await buy(store, web, 'MUG-WHT', 1); // direct: paid
    clock.set(Date.UTC(2026, 0, 9, 9));
    const late = await buy(store, bot, 'JACKET-LTD', 1); // awaits payment, then runs out of time
    clock.advance(WINDOW + 1);
    await store.sweepOverdueOrders();
    // Its unit goes to someone else before the payment arrives: the payment needs a refund.
    await buy(store, web, 'JACKET-LTD', 1);
    await store.confirmPayment(admin, { orderId: late.order_id, reference: 'pi_late' });
    clock.set(Date.UTC(2026, 0, 10, 9));
    const waiting = await buy(store, bot, 'TEE-BLK-M', 2);
    const overdue = await buy(store, bot, 'TEE-BLK-M', 1);
    clock.set(Date.UTC(2026, 0, 10, 9, 20));
    const fresh = await buy(store, bot, 'MUG-WHT', 1);
    clock.set(Date.UTC(2026, 0, 10, 9, 45)); // `overdue` and `waiting` are past pay_by, not yet swept

    const ids = async (filter: Partial<Parameters<ConsoleQueries['orders']>[0]>) =>
      (await queries.orders({ limit: 50, ...filter })).map((o) => o.order_id);
    const all = await queries.orders({ limit: 50 });
    expect(all.length).toBe(6);
    expect(all[0]?.order_id).toBe(fresh.order_id);
    expect(all.at(-1)?.order_id).toBe(sold.order_id);
    expect(await ids({ status: 'awaiting_payment' })).toEqual([fresh.order_id]);
    const cancelled = await ids({ status: 'cancelled' });
    expect(new Set(cancelled)).toEqual(new Set([waiting.order_id, overdue.order_id, late.order_id]));
    expect((await ids({ status: 'paid' })).length).toBe(2);
    expect(await ids({ needsRefund: true })).toEqual([late.order_id]);
    const refund = all.find((o) => o.order_id === late.order_id);
    expect(refund).toMatchObject({ needs_refund: true, status: 'cancelled', payment_reference: 'pi_late' });
    expect(refund?.lines).toEqual([expect.objectContaining({ sku: 'JACKET-LTD', quantity: 1 })]);
    expect((await ids({ channel: 'web' })).length).toBe(2);
    expect(await ids({ channel: 'web', status: 'awaiting_payment' })).toEqual([]);
    const jan9 = Date.UTC(2026, 0, 9);
    expect((await ids({ from: jan9, to: jan9 + DAY_MS })).length).toBe(2);
    expect(await ids({ to: jan9 })).toEqual([sold.order_id]);

    // Pages of two, each after the last of the one before, cover every order once, in order.
    const paged: string[] = [];
    let after: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await queries.orders({ limit: 2, after });
      paged.push(...page.map((o) => o.order_id));
      const last = page.at(-1);
      if (page.length < 2 || !last) break;
      after = { createdAt: Date.parse(last.created_at), id: last.order_id };
    }
    expect(paged).toEqual(all.map((o) => o.order_id));
  });

  it('counts only paid orders as sales and revenue', async () => {
    const { store, queries, clock } = await open();
    clock.set(Date.UTC(2026, 0, 10, 9));
    const paid = await buy(store, bot, 'MUG-WHT', 2);
    await buy(store, bot, 'TEE-BLK-M', 1); // stays awaiting payment
    const returned = await buy(store, web, 'TEE-BLK-M', 1);
    await buy(store, web, 'MUG-WHT', 1);
    const activity = async () => (await queries.channelActivity(7)).sales.map((s) => [s.channel, s.orders]);
    expect(await activity()).toEqual([['web', 2]]);
    // What the unpaid orders hold is held on their channel, as a cart's holds were.
    expect((await queries.channelActivity(7)).held).toEqual([{ channel: 'telegram', units: 3 }]);
    await store.confirmPayment(admin, { orderId: paid.order_id, reference: 'bank' });
    await store.cancelOrder(admin, { orderId: returned.order_id, restock: true });
    const sales = (await queries.channelActivity(7)).sales;
    expect(sales.map((s) => [s.channel, s.orders, s.revenue_minor])).toEqual([
      ['telegram', 1, 2900],
      ['web', 1, 1450],
    ]);
  });

  it(`reports a change that only touches an order (${name})`, async () => {
    const { store, queries } = await open();
    const order = await buy(store, web, 'MUG-WHT', 1);
    let count = 0;
    const stop = queries.watch(() => {
      count += 1;
    });
    cleanups.push(async () => stop());
    const until = async (done: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error('no change was reported within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    // PostgreSQL reports one change once it listens; SQLite starts from the current version.
    if (name === 'postgres') await until(() => count > 0);
    const seen = count;
    // A paid order cancelled without restock writes no movement: only the order row changes.
    await store.cancelOrder(admin, { orderId: order.order_id, restock: false });
    await until(() => count > seen);
  });
}
