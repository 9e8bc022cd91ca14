// Runs the store contract against PostgreSQL, plus what only real concurrent connections can show:
// races for the last units, deadlock retries, lock timeouts, concurrent sweepers and concurrent migrations.
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { StockError } from '../../src/domain/errors.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { AuditReport, CallContext, ImportRow } from '../../src/domain/types.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { CONTRACT_CATALOG } from '../helpers/catalog.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import {
  admin,
  describeStoreContract,
  expectAuditOk,
  expectStockError,
  level,
  T0,
  TTL,
  web,
} from './contract.js';
import { describeOrdersContract } from './orders-contract.js';

describePostgres('PostgreSQL store', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    // Migrate once; each test then starts from emptied tables.
    const store = await openPostgresStore(db.url, baseOptions());
    await store.close();
  });
  afterAll(async () => {
    await db?.drop();
  });

  // Both copies of the hot paths' rules: the one-statement functions (drizzle/postgres/0004, one-statement.ts)
  // and the general transaction (workflow/operations.ts), each held to the whole contract.
  describeStoreContract('postgres, hot paths in one statement (migration 0004)', async (options) => {
    await db.reset();
    return openPostgresStore(db.url, { ...options, poolSize: 4 });
  });
  describeStoreContract('postgres, general transaction only (workflow/operations.ts)', async (options) => {
    await db.reset();
    return openPostgresStore(db.url, { ...options, poolSize: 4, oneStatement: false });
  });

  describeOrdersContract('postgres', async (options) => {
    await db.reset();
    return openPostgresStore(db.url, { ...options, poolSize: 4 });
  });

  describe('PostgreSQL store', () => {
    const cleanup: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const done of cleanup.splice(0).reverse()) await done();
    });

    /** Several store instances on one emptied database, sharing one clock: several servers, one pool of stock. */
    async function servers(
      count: number,
      overrides: Partial<StoreOptions> = {},
      catalog: ImportRow[] = CONTRACT_CATALOG,
    ): Promise<{ stores: InventoryStore[]; clock: ManualClock }> {
      await db.reset();
      const clock = new ManualClock(T0);
      const stores = await Promise.all(
        Array.from({ length: count }, () =>
          openPostgresStore(db.url, { ...baseOptions(), clock, ...overrides }),
        ),
      );
      for (const store of stores) cleanup.push(() => store.close());
      if (catalog.length > 0) await stores[0]?.importProducts(admin, catalog);
      return { stores, clock };
    }

    /** A connection outside the store, e.g. to hold a lock; rolled back and closed after the test. */
    async function outsider(): Promise<pg.Client> {
      const client = await db.connect();
      cleanup.push(() => client.query('ROLLBACK').finally(() => client.end()));
      return client;
    }

    /** Returns once a store connection waits for a row lock (pg_stat_activity), failing if none does within 10 s. */
    async function waitingForLock(watcher: pg.Client): Promise<void> {
      const deadline = performance.now() + 10_000;
      for (;;) {
        const { rows } = await watcher.query<{ waiting: number }>(
          `SELECT count(*)::int AS waiting FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'stocklock' AND wait_event_type = 'Lock'`,
        );
        if ((rows[0]?.waiting ?? 0) > 0) return;
        if (performance.now() > deadline) throw new Error('no store connection began to wait for the lock');
        await new Promise((done) => setTimeout(done, 5));
      }
    }

    function at<T>(list: T[], index: number): T {
      const item = list[index % list.length];
      if (item === undefined) throw new Error('empty list');
      return item;
    }

    describe('racing buyers on separate connections', () => {
      const UNITS = 5;
      const BUYERS = 48;
      const HOT: ImportRow = {
        sku: 'HOT',
        name: 'Last few',
        price_minor: 1000,
        currency: 'EUR',
        stock: UNITS,
      };

      type Outcome = 'sold' | string;

      /** Starts every buyer at once and tallies what each got. */
      async function race(
        buy: (buyer: number) => Promise<'sold' | 'OUT_OF_STOCK'>,
      ): Promise<Map<Outcome, number>> {
        let start!: () => void;
        const gate = new Promise<void>((open) => {
          start = open;
        });
        const runs = Array.from({ length: BUYERS }, async (_, buyer) => {
          await gate;
          try {
            return await buy(buyer);
          } catch (error) {
            return error instanceof StockError ? error.code : `error: ${(error as Error).message}`;
          }
        });
        start();
        const tally = new Map<Outcome, number>();
        for (const outcome of await Promise.all(runs)) tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
        return tally;
      }

      /** What went wrong in a race for UNITS units; empty when nothing did. Shared by the real and the naive buyer. */
      function problems(tally: Map<Outcome, number>, audit: AuditReport): string[] {
        const found: string[] = [];
        const sold = tally.get('sold') ?? 0;
        if (sold > UNITS) found.push(`oversold: ${sold} buyers got one of ${UNITS} units`);
        if (sold < UNITS) found.push(`undersold: only ${sold} of ${UNITS} units sold`);
        const others = [...tally.keys()].filter((k) => k !== 'sold' && k !== 'OUT_OF_STOCK');
        if (others.length > 0) found.push(`unexpected outcomes: ${others.join(', ')}`);
        for (const v of audit.violations)
          found.push(`audit: invariant ${v.invariant} ${v.subject}: ${v.message}`);
        return found;
      }

      it(`${BUYERS} buyers on 4 servers' connections race for the last ${UNITS} units: exactly ${UNITS} sold`, async () => {
        const { stores } = await servers(4, { poolSize: 12 }, [HOT]);
        // Open every pool's connections first, so the buyers really run side by side.
        await Promise.all(
          stores.flatMap((store) => Array.from({ length: 12 }, () => store.checkStock(['HOT']))),
        );
        const { connections } = one(
          await db.query<{ connections: number }>(
            "SELECT count(*)::int AS connections FROM pg_stat_activity WHERE datname = $1 AND application_name = 'stocklock'",
            [db.name],
          ),
        );
        expect(connections).toBeGreaterThanOrEqual(BUYERS);

        const tally = await race(async (buyer) => {
          const store = at(stores, buyer);
          const ctx: CallContext = { channel: `channel-${buyer % 6}` };
          const cart = await store.addToCart(ctx, { sku: 'HOT', quantity: 1 });
          await store.checkout(ctx, { cartId: cart.cart_id });
          return 'sold';
        });
        const store = at(stores, 0);
        expect(problems(tally, await store.audit())).toEqual([]);
        expect(tally.get('OUT_OF_STOCK')).toBe(BUYERS - UNITS);
        expect(await level(store, 'HOT')).toMatchObject({ on_hand: 0, reserved: 0, available: 0 });
        const { orders } = one(
          await db.query<{ orders: number }>('SELECT count(*)::int AS orders FROM orders'),
        );
        expect(orders).toBe(UNITS);
      });

      it('the same race catches a naive "read, decide in JS, write" buyer: it oversells', async () => {
        const { stores } = await servers(1, {}, [HOT]);
        const clients = await Promise.all(Array.from({ length: BUYERS }, () => outsider()));
        // READ COMMITTED, no row lock: the stock read may be stale by the time the write lands.
        const tally = await race(async (buyer) => {
          const client = at(clients, buyer);
          await client.query('BEGIN');
          const { rows } = await client.query<{ on_hand: number; reserved: number }>(
            'SELECT on_hand, reserved FROM products WHERE sku = $1',
            ['HOT'],
          );
          const row = rows[0];
          if (!row || row.on_hand - row.reserved < 1) {
            await client.query('ROLLBACK');
            return 'OUT_OF_STOCK';
          }
          await client.query('UPDATE products SET on_hand = $1 WHERE sku = $2', [row.on_hand - 1, 'HOT']);
          await client.query(
            `INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, channel)
             VALUES ($1, 'HOT', 'sale', 1, -1, 0, $2)`,
            [T0, `channel-${buyer % 6}`],
          );
          await client.query('COMMIT');
          return 'sold';
        });
        const found = problems(tally, await at(stores, 0).audit());
        expect(
          found.some((p) => p.startsWith('oversold')),
          found.join('\n'),
        ).toBe(true);
        expect(found.some((p) => p.startsWith('audit: invariant 3 HOT'))).toBe(true);
      });
    });

    it('a deadlock with another connection is retried, not reported', async () => {
      const { stores } = await servers(1, { lockTimeoutMs: 8_000 });
      const store = at(stores, 0);
      const cart = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
      await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, cartId: cart.cart_id });

      // The outsider takes TSHIRT-M; checkout locks MUG, then waits for TSHIRT-M (SKU order)…
      const other = await outsider();
      await other.query('BEGIN');
      await other.query("SELECT 1 FROM products WHERE sku = 'TSHIRT-M' FOR UPDATE");
      const checkout = store.checkout(web, { cartId: cart.cart_id });
      checkout.catch(() => undefined); // awaited below; this only keeps a failure from being "unhandled" meanwhile
      await waitingForLock(await outsider());
      // …and the outsider now wants MUG: a cycle. PostgreSQL aborts the checkout, which started waiting first.
      await other.query("SELECT 1 FROM products WHERE sku = 'MUG' FOR UPDATE");
      await other.query('COMMIT');

      const order = await checkout;
      expect(order.lines.map((l) => l.sku)).toEqual(['MUG', 'TSHIRT-M']);
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 4, reserved: 0 });
      await expectAuditOk(store);
    });

    it('a lock held past lockTimeoutMs is STORE_BUSY; reads go on; the write succeeds once the lock is free', async () => {
      const { stores } = await servers(1, { lockTimeoutMs: 150 });
      const store = at(stores, 0);
      const other = await outsider();
      await other.query('BEGIN');
      await other.query("SELECT 1 FROM products WHERE sku = 'MUG' FOR UPDATE");

      // Refused while the lock is still held, once its budget is spent.
      const error = await expectStockError(store.addToCart(web, { sku: 'MUG', quantity: 1 }), 'STORE_BUSY');
      expect(error.details.waited_ms as number).toBeGreaterThanOrEqual(140);
      await expectStockError(store.restock(admin, { sku: 'MUG', quantity: 1 }), 'STORE_BUSY');
      // Other SKUs and reads do not wait for that row.
      expect(await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1 })).toMatchObject({ status: 'open' });
      expect((await store.checkStock(['MUG'])).products[0]).toMatchObject({ available: 5 });

      await other.query('COMMIT');
      expect(await store.addToCart(web, { sku: 'MUG', quantity: 1 })).toMatchObject({ item_count: 1 });
      await expectAuditOk(store);
    });

    it("one OAuth holder's adds racing on 4 servers' connections never pass its cap", async () => {
      // One SKU per racer, so no product row lock puts them in line either: only the holder's own turn can.
      const skus: ImportRow[] = Array.from({ length: 20 }, (_, i) => ({
        sku: `R-${i}`,
        name: `Racer ${i}`,
        price_minor: 100,
        currency: 'EUR',
        stock: 5,
      }));
      const limits = { ...DEFAULT_LIMITS, maxHolderReserved: 5 };
      const { stores } = await servers(4, { poolSize: 6, limits }, skus);
      const shopper: CallContext = { channel: 'claude', holder: 'grant_racer' };
      let start!: () => void;
      const gate = new Promise<void>((open) => {
        start = open;
      });
      // Each add opens its own cart, so no cart lock puts them in line.
      const runs = Array.from({ length: 20 }, async (_, i) => {
        await gate;
        try {
          await at(stores, i).addToCart(shopper, { sku: `R-${i}`, quantity: 1 });
          return 'held';
        } catch (error) {
          return error instanceof StockError ? error.code : `error: ${(error as Error).message}`;
        }
      });
      start();
      const outcomes = await Promise.all(runs);
      expect(
        outcomes.filter((o) => o === 'held'),
        outcomes.join(),
      ).toHaveLength(5);
      expect(outcomes.filter((o) => o !== 'held').every((o) => o === 'LIMIT_EXCEEDED')).toBe(true);
      const levels = await at(stores, 0).stockLevels();
      expect(levels.reduce((sum, l) => sum + l.reserved, 0)).toBe(5);
      await expectAuditOk(at(stores, 0));
    });

    it('concurrent checkouts of one cart from several servers make exactly one order', async () => {
      const { stores } = await servers(3);
      const cart = await at(stores, 0).addToCart(web, { sku: 'MUG', quantity: 2 });
      await at(stores, 1).addToCart(web, { sku: 'LAST-ONE', quantity: 1, cartId: cart.cart_id });
      const orders = await Promise.all(
        Array.from({ length: 12 }, (_, i) => at(stores, i).checkout(web, { cartId: cart.cart_id })),
      );
      expect(new Set(orders.map((o) => o.order_id)).size).toBe(1);
      const store = at(stores, 0);
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0 });
      expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 0, reserved: 0 });
      await expectAuditOk(store);
    });

    it('concurrent calls with one idempotency key replay one result or conflict, never a duplicate key error', async () => {
      const { stores } = await servers(3);
      const same = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          at(stores, i).addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: 'same-key' }),
        ),
      );
      expect(new Set(same.map((c) => c.cart_id)).size).toBe(1);
      expect(await level(at(stores, 0), 'MUG')).toMatchObject({ reserved: 2 });

      const mixed = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) =>
          at(stores, i).addToCart(web, {
            sku: 'TSHIRT-M',
            quantity: 1 + (i % 2),
            idempotencyKey: 'mixed-key',
          }),
        ),
      );
      const won = mixed.filter((r) => r.status === 'fulfilled');
      expect(
        new Set(won.map((r) => (r as PromiseFulfilledResult<{ cart_id: string }>).value.cart_id)).size,
      ).toBe(1);
      for (const r of mixed) {
        if (r.status === 'rejected') expect((r.reason as StockError).code).toBe('IDEMPOTENCY_CONFLICT');
      }
      const reserved = (await level(at(stores, 0), 'TSHIRT-M')).reserved;
      expect([1, 2]).toContain(reserved);
      await expectAuditOk(at(stores, 0));
    });

    it('several servers sweeping at once, while buyers free expired holds themselves, release each hold once', async () => {
      const catalog: ImportRow[] = ['A', 'B', 'C', 'D'].map((sku) => ({
        sku,
        name: `Product ${sku}`,
        price_minor: 100,
        currency: 'EUR',
        stock: 1_000,
      }));
      const { stores, clock } = await servers(3, {}, catalog);
      let heldUnits = 0;
      for (let i = 0; i < 60; i++) {
        const ctx: CallContext = { channel: `channel-${i % 4}` };
        const store = at(stores, i);
        const cart = await store.addToCart(ctx, { sku: at(catalog, i).sku, quantity: 1 + (i % 3) });
        await store.addToCart(ctx, { sku: at(catalog, i + 1).sku, quantity: 2, cartId: cart.cart_id });
        heldUnits += 1 + (i % 3) + 2;
      }
      clock.advance(TTL + 1);

      const [sweeps] = await Promise.all([
        Promise.all(stores.map((store) => store.sweepExpired(5))),
        Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            at(stores, i).addToCart({ channel: 'buyer' }, { sku: at(catalog, i).sku, quantity: 1 }),
          ),
        ),
      ]);
      const swept = sweeps.reduce((sum, s) => sum + s.units, 0);
      expect(swept).toBeLessThanOrEqual(heldUnits);
      const { expired } = one(
        await db.query<{ expired: number }>(
          "SELECT COALESCE(SUM(quantity), 0)::int AS expired FROM stock_movements WHERE kind = 'expire'",
        ),
      );
      expect(expired).toBe(heldUnits);
      // A sweep stops at a short batch: carts a buyer had locked while freeing their holds (SKIP LOCKED) wait for
      // the next sweep, which closes what is left; between them every cart is closed exactly once.
      const followUp = await at(stores, 1).sweepExpired();
      expect(followUp.units).toBe(0);
      expect(sweeps.reduce((sum, s) => sum + s.carts, 0) + followUp.carts).toBe(60);
      expect((await at(stores, 0).sweepExpired()).carts).toBe(0);
      for (const product of catalog) expect((await level(at(stores, 0), product.sku)).reserved).toBe(3);
      await expectAuditOk(at(stores, 0));
    });

    it('a mixed workload on 4 servers (multi-line carts in any order, expiry, sweeps) keeps every invariant', async () => {
      const catalog: ImportRow[] = ['P1', 'P2', 'P3', 'P4', 'P5'].map((sku) => ({
        sku,
        name: `Product ${sku}`,
        price_minor: 250,
        currency: 'EUR',
        stock: 40,
      }));
      const { stores, clock } = await servers(4, { poolSize: 8, lockTimeoutMs: 10_000 }, catalog);
      let seed = 42;
      const random = (n: number) => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed % n;
      };
      const unexpected: string[] = [];
      const allowed = new Set(['OUT_OF_STOCK', 'LIMIT_EXCEEDED', 'CART_CLOSED']);
      // --lock-timeout bounds a whole call, so on a loaded machine a call can be refused STORE_BUSY (nothing
      // changed); the worker retries it as a client would, a bounded number of times.
      const retryBusy = async <T>(operation: () => Promise<T>): Promise<T> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await operation();
          } catch (error) {
            if (!(error instanceof StockError) || error.code !== 'STORE_BUSY' || attempt >= 5) throw error;
          }
        }
      };
      const worker = async (id: number) => {
        const store = at(stores, id);
        const ctx: CallContext = { channel: `channel-${id % 5}` };
        for (let round = 0; round < 6; round++) {
          try {
            const lines = 1 + random(3);
            let cartId: string | undefined;
            for (let l = 0; l < lines; l++) {
              const sku = at(catalog, random(catalog.length)).sku;
              try {
                const quantity = 1 + random(3);
                const cart = await retryBusy(() => store.addToCart(ctx, { sku, quantity, cartId }));
                cartId = cart.cart_id;
              } catch (error) {
                if (!(error instanceof StockError) || !allowed.has(error.code)) throw error;
              }
            }
            if (cartId === undefined) continue;
            const action = random(10);
            if (action < 6) await retryBusy(() => store.checkout(ctx, { cartId }));
            else if (action < 8) await retryBusy(() => store.releaseCart(ctx, { cartId }));
            else if (action < 9) {
              const sku = at(catalog, random(5)).sku;
              await retryBusy(() => store.releaseCart(ctx, { cartId, sku }));
            }
            // else: abandoned, left to expire.
            if (random(8) === 0) clock.advance(TTL / 2);
            if (random(6) === 0) await retryBusy(() => store.sweepExpired(3));
            if (random(10) === 0) {
              const sku = at(catalog, random(5)).sku;
              await retryBusy(() => store.restock(admin, { sku, quantity: 2 }));
            }
          } catch (error) {
            if (!(error instanceof StockError) || !allowed.has(error.code)) {
              unexpected.push(
                error instanceof StockError ? `${error.code}: ${error.message}` : String(error),
              );
            }
          }
        }
      };
      await Promise.all(Array.from({ length: 32 }, (_, id) => worker(id)));
      expect(unexpected).toEqual([]);
      const store = at(stores, 0);
      await expectAuditOk(store);
      clock.advance(TTL + 1);
      await store.sweepExpired();
      await expectAuditOk(store);
      const { sold } = one(
        await db.query<{ sold: number }>('SELECT COALESCE(SUM(quantity), 0)::int AS sold FROM order_lines'),
      );
      const { restocked } = one(
        await db.query<{ restocked: number }>(
          "SELECT COALESCE(SUM(quantity), 0)::int AS restocked FROM stock_movements WHERE kind = 'restock'",
        ),
      );
      const levels = await store.stockLevels();
      expect(levels.reduce((sum, l) => sum + l.on_hand, 0)).toBe(40 * catalog.length + restocked - sold);
      expect(levels.every((l) => l.reserved === 0)).toBe(true);
    });

    it('several servers starting at once on a new database migrate it exactly once', async () => {
      const fresh = await createTestDatabase('stocklock_migrate');
      cleanup.push(() => fresh.drop());
      const stores = await Promise.all(
        Array.from({ length: 6 }, () => openPostgresStore(fresh.url, { ...baseOptions(), poolSize: 2 })),
      );
      for (const store of stores) cleanup.push(() => store.close());
      const { migrations } = one(
        await fresh.query<{ migrations: number }>(
          'SELECT count(*)::int AS migrations FROM drizzle.__drizzle_migrations',
        ),
      );
      // Each migration in drizzle/postgres applied once, however many servers raced to apply it.
      const journal = JSON.parse(
        readFileSync(new URL('../../drizzle/postgres/meta/_journal.json', import.meta.url), 'utf8'),
      ) as { entries: unknown[] };
      expect(journal.entries.length).toBeGreaterThan(1);
      expect(migrations).toBe(journal.entries.length);
      expect(await at(stores, 5).isEmpty()).toBe(true);
      await at(stores, 0).importProducts(admin, CONTRACT_CATALOG);
      expect(await at(stores, 3).isEmpty()).toBe(false);
    });

    describe('the database guards and the audit sees tampering', () => {
      it('a CHECK constraint refuses reserved above on_hand, even outside the store', async () => {
        const { stores } = await servers(1);
        await expect(
          db.query("UPDATE products SET reserved = on_hand + 1 WHERE sku = 'MUG'"),
        ).rejects.toThrow(/products_stock_bounds/);
        await expectAuditOk(at(stores, 0));
      });

      it('invariants 2, 3 and 4: a ledger row deleted, a closed cart still holding, an order total changed', async () => {
        const { stores } = await servers(1);
        const store = at(stores, 0);
        await store.restock(admin, { sku: 'TSHIRT-M', quantity: 3 });
        const held = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const sold = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        const order = await store.checkout(web, { cartId: sold.cart_id });
        await expectAuditOk(store);

        await db.query("DELETE FROM stock_movements WHERE sku = 'TSHIRT-M' AND kind = 'restock'");
        await db.query("UPDATE carts SET status = 'released' WHERE id = $1", [held.cart_id]);
        await db.query('UPDATE orders SET total_minor = 1 WHERE id = $1', [order.order_id]);
        const report = await store.audit();
        expect(report.ok).toBe(false);
        const seen = report.violations.map((v) => `${v.invariant} ${v.subject}`);
        expect(seen).toEqual(expect.arrayContaining(['3 TSHIRT-M', '2 MUG', `4 ${order.order_id}`]));
      });
    });

    it('close() may be called twice', async () => {
      const { stores } = await servers(1, {}, []);
      await at(stores, 0).close();
      await at(stores, 0).close();
    });
  });
});

function one<T>(rows: T[]): T {
  const [row] = rows;
  if (row === undefined) throw new Error('expected a row');
  return row;
}

function baseOptions(): StoreOptions {
  return {
    clock: new ManualClock(T0),
    reservationTtlMs: TTL,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 10_000,
  };
}
