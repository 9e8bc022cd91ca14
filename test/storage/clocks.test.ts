// One clock for expiry: servers whose own clocks disagree still agree on which holds are live, a write on a
// cart re-holds any line that lost its hold, and the audit sees an open, unexpired cart with an unheld line.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/domain/clock.js';
import { StockError } from '../../src/domain/errors.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { CallContext, CartView } from '../../src/domain/types.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { SCARCE_CATALOG } from '../helpers/catalog.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { admin, bot, expectAuditOk, expectStockError, level, TTL, web } from './contract.js';

const MINUTE = 60_000;

/** Moves time on every server at once: added to each server's own clock and to the database's. */
interface Shift {
  ms: number;
}

/** A server's own clock, `skewMs` off, on a shared time line that the test moves with `shift`. */
function serverClock(shift: Shift, skewMs: number): Clock {
  return {
    now: () => Date.now() + skewMs + shift.ms,
    databaseTime: () => ({ fixedAt: null, offsetMs: shift.ms }),
  };
}

/** A server whose clock is off, and which (like every server before one clock) trusts it on PostgreSQL too. */
function skewedEverywhere(shift: Shift, skewMs: number): Clock {
  return {
    now: () => Date.now() + skewMs + shift.ms,
    databaseTime: () => ({ fixedAt: null, offsetMs: skewMs + shift.ms }),
  };
}

function options(clock: Clock): StoreOptions {
  return { clock, reservationTtlMs: TTL, limits: DEFAULT_LIMITS, lockTimeoutMs: 5_000, poolSize: 4 };
}

/** A small deterministic PRNG (mulberry32), so a failing interleaving can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a backing database offers the scenarios: stores on it, its time, and a screwdriver. */
interface Backend {
  name: string;
  /** A fresh, emptied database, then one store per clock on it. */
  open(clocks: Clock[]): Promise<InventoryStore[]>;
  /** The database's time on the shared time line (SQLite: the system clock). */
  time(shift: Shift): Promise<number>;
  /** Open carts, unexpired at `now`, with a tracked line that holds less than its quantity. */
  unheld(now: number): Promise<{ cart_id: string; sku: string }[]>;
  exec(sql: string): Promise<void>;
}

const UNHELD_SQL = (now: string, tracked: string) => `SELECT c.id AS cart_id, l.sku FROM carts c
  JOIN cart_lines l ON l.cart_id = c.id JOIN products p ON p.sku = l.sku
  WHERE c.status = 'open' AND c.expires_at > ${now} AND ${tracked} AND l.held < l.quantity ORDER BY 1, 2`;

function scenarios(backend: () => Backend): void {
  const opened: InventoryStore[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });

  async function servers(clocks: Clock[]): Promise<InventoryStore[]> {
    const stores = await backend().open(clocks);
    opened.push(...stores);
    await stores[0]?.importProducts(admin, SCARCE_CATALOG);
    return stores;
  }

  it('a write on a cart whose line another server released re-holds it, or refuses OUT_OF_STOCK naming it', async () => {
    // The servers disagree on purpose (each trusts its own clock): the re-hold is what keeps the cart honest.
    const shift: Shift = { ms: 0 };
    const [slow, fast] = await servers([skewedEverywhere(shift, 0), skewedEverywhere(shift, 10 * MINUTE)]);
    if (!slow || !fast) throw new Error('two stores expected');
    const cart = await slow.addToCart(web, { sku: 'A', quantity: 2 });
    shift.ms += 6 * MINUTE;
    // 16 minutes on the fast server's clock: it frees the slow server's live hold and sells the units.
    const other = await fast.addToCart(bot, { sku: 'A', quantity: 3 });
    expect(await backend().unheld(await backend().time(shift))).toEqual([
      { cart_id: cart.cart_id, sku: 'A' },
    ]);

    const before = await slow.stockLevels();
    const refusal = await expectStockError(
      slow.addToCart(web, { sku: 'B', quantity: 1, cartId: cart.cart_id }),
      'OUT_OF_STOCK',
      { sku: 'A' },
    );
    expect(refusal.message).toMatch(/\bA\b/);
    expect(await slow.stockLevels()).toEqual(before);
    await expectStockError(slow.checkout(web, { cartId: cart.cart_id }), 'OUT_OF_STOCK', { sku: 'A' });

    await fast.releaseCart(bot, { cartId: other.cart_id });
    const grown = await slow.addToCart(web, { sku: 'B', quantity: 1, cartId: cart.cart_id });
    expect(grown.lines.map((line) => [line.sku, line.quantity])).toEqual([
      ['A', 2],
      ['B', 1],
    ]);
    expect(await level(slow, 'A')).toMatchObject({ reserved: 2, available: 1 });
    expect(await backend().unheld(await backend().time(shift))).toEqual([]);
    const order = await slow.checkout(web, { cartId: cart.cart_id });
    expect(order.total_minor).toBe(2 * 100 + 200);
    await expectAuditOk(slow);
  });

  it('the audit reports an open, unexpired cart whose line holds less than its quantity', async () => {
    const shift: Shift = { ms: 0 };
    const [store] = await servers([serverClock(shift, 0)]);
    if (!store) throw new Error('a store expected');
    const cart = await store.addToCart(web, { sku: 'A', quantity: 2 });
    await store.addToCart(web, { sku: 'E', quantity: 1, cartId: cart.cart_id });
    shift.ms += TTL + MINUTE;
    // Another sale frees the expired hold properly (ledger, counters): every sum still balances.
    await store.addToCart(bot, { sku: 'A', quantity: 1 });
    await expectAuditOk(store);
    // Then the cart's expiry moves into the future without its line being held again.
    await backend().exec(
      `UPDATE carts SET expires_at = expires_at + ${2 * TTL} WHERE id = '${cart.cart_id}'`,
    );
    const report = await store.audit();
    expect(report.ok).toBe(false);
    expect(report.violations).toEqual([
      {
        invariant: 2,
        subject: cart.cart_id,
        message: expect.stringMatching(/open until .* but its line A holds 0 of 2/),
      },
    ]);
  });

  it('switching a product to tracked is refused while a live cart has a line of it', async () => {
    const shift: Shift = { ms: 0 };
    const [store] = await servers([serverClock(shift, 0)]);
    if (!store) throw new Error('a store expected');
    const { cart_id } = await store.addToCart(web, { sku: 'E', quantity: 2 });
    const ebook = { sku: 'E', name: 'E-book', price_minor: 50, currency: 'EUR', track_stock: true };
    const refusal = await expectStockError(store.upsertProduct(admin, ebook), 'INVALID_INPUT', {
      field: 'track_stock',
    });
    expect(refusal.message).toMatch(/1 open carts have "E"/);
    expect(await level(store, 'E')).toMatchObject({ track_stock: false });
    // Once the cart has expired, the switch is allowed: reviving the cart then holds the line or refuses.
    shift.ms += TTL + MINUTE;
    expect(await store.upsertProduct(admin, ebook)).toMatchObject({ available: 0 });
    await expectStockError(store.checkout(web, { cartId: cart_id }), 'OUT_OF_STOCK', { sku: 'E' });
    await store.restock(admin, { sku: 'E', quantity: 2 });
    expect((await store.checkout(web, { cartId: cart_id })).total_minor).toBe(100);
    await expectAuditOk(store);
  });
}

/** Two servers on one database whose own clocks differ by 10 minutes, in a seeded interleaving. */
async function interleave(backend: Backend, opened: InventoryStore[], seed: number): Promise<void> {
  const shift: Shift = { ms: 0 };
  const stores = await backend.open([serverClock(shift, 0), serverClock(shift, 10 * MINUTE)]);
  opened.push(...stores);
  await stores[0]?.importProducts(admin, SCARCE_CATALOG);
  const next = random(seed);
  const pick = <T>(list: T[]): T => list[Math.floor(next() * list.length)] as T;
  const carts = new Map<string, { ctx: CallContext; view: CartView }>();
  const skus = ['A', 'B', 'C', 'E'];
  let liveCheckouts = 0;

  for (let step = 0; step < 300; step++) {
    const store = pick(stores);
    const roll = next();
    const now = await backend.time(shift);
    const known = [...carts.entries()];
    try {
      if (roll < 0.35 || known.length === 0) {
        const ctx = pick([web, bot]);
        const view = await store.addToCart(ctx, { sku: pick(skus), quantity: 1 + Math.floor(next() * 2) });
        carts.set(view.cart_id, { ctx, view });
      } else if (roll < 0.65) {
        const [id, cart] = pick(known);
        cart.view = await store.addToCart(cart.ctx, { sku: pick(skus), quantity: 1, cartId: id });
      } else if (roll < 0.8) {
        const [id, cart] = pick(known);
        // Well inside its TTL by the database's clock: every server must agree it is live and sell it.
        const live = Date.parse(cart.view.expires_at) - now > MINUTE;
        try {
          await store.checkout(cart.ctx, { cartId: id });
          carts.delete(id);
          if (live) liveCheckouts++;
        } catch (error) {
          if (live) throw new Error(`step ${step}: checkout of live cart ${id} failed: ${error}`);
          if (!(error instanceof StockError) || error.code !== 'OUT_OF_STOCK') throw error;
        }
      } else if (roll < 0.85) {
        const [id, cart] = pick(known);
        await store.releaseCart(cart.ctx, { cartId: id });
        carts.delete(id);
      } else if (roll < 0.92) {
        await store.sweepExpired();
      } else {
        shift.ms += Math.ceil(next() * 3) * MINUTE;
      }
    } catch (error) {
      if (!(error instanceof StockError) || !['OUT_OF_STOCK', 'LIMIT_EXCEEDED'].includes(error.code)) {
        throw error;
      }
    }
    expect(await backend.unheld(await backend.time(shift)), `step ${step}`).toEqual([]);
    if (step % 25 === 0) await expectAuditOk(store);
  }
  expect(liveCheckouts).toBeGreaterThan(10);
  for (const store of stores) await expectAuditOk(store);
}

// ---------------------------------------------------------------- SQLite

describe('one clock: SQLite file', () => {
  const root = mkdtempSync(join(tmpdir(), 'stocklock-clocks-'));
  let file = '';
  let counter = 0;
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const sqlite: Backend = {
    name: 'sqlite',
    async open(clocks) {
      file = join(root, `${++counter}.db`);
      return clocks.map((clock) => openSqliteStore(file, options(clock)));
    },
    async time(shift) {
      return Date.now() + shift.ms;
    },
    async unheld(now) {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare(UNHELD_SQL('?', 'p.track_stock = 1')).all(now) as {
          cart_id: string;
          sku: string;
        }[];
      } finally {
        db.close();
      }
    },
    async exec(sql) {
      const db = new Database(file);
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
    },
  };

  scenarios(() => sqlite);
});

// ---------------------------------------------------------------- PostgreSQL

describePostgres('one clock: PostgreSQL', () => {
  let db: TestDatabase;
  /** One connection of the test's own, to read the database's time and look at the carts. */
  let inspector: pg.Client;
  const opened: InventoryStore[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    const store = await openPostgresStore(db.url, options(serverClock({ ms: 0 }, 0)));
    await store.close();
    inspector = await db.connect();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });
  afterAll(async () => {
    await inspector?.end();
    await db?.drop();
  });

  const postgres = (): Backend => ({
    name: 'postgres',
    async open(clocks) {
      await db.reset();
      return Promise.all(clocks.map((clock) => openPostgresStore(db.url, options(clock))));
    },
    async time(shift) {
      const { rows } = await inspector.query<{ now: string }>(
        'SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now',
      );
      return Number(rows[0]?.now) + shift.ms;
    },
    async unheld(now) {
      return (await inspector.query(UNHELD_SQL('$1', 'p.track_stock'), [now])).rows;
    },
    async exec(sql) {
      await db.query(sql);
    },
  });

  scenarios(postgres);

  it('two servers whose clocks differ by 10 minutes agree on expiry across add_to_cart, checkout and sweeps', async () => {
    for (const seed of [1, 2, 3]) await interleave(postgres(), opened, seed);
  });
});
