// PostgreSQL under faults, on real connections: a connection killed at COMMIT (OUTCOME_UNKNOWN, then a keyed retry),
// one lock budget for a whole call however many locks and pool waits it meets, token touches that never wait.
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { CONTRACT_CATALOG } from '../helpers/catalog.js';
import { stdioClient } from '../helpers/cli.js';
import { call, details, refusalCode, text } from '../helpers/mcp.js';
import { type CommitFault, type PgProxy, startPgProxy } from '../helpers/pg-proxy.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { admin, expectAuditOk, expectStockError, level, T0, TTL, web } from './contract.js';

function baseOptions(overrides: Partial<StoreOptions> = {}): StoreOptions {
  return {
    clock: new ManualClock(T0),
    reservationTtlMs: TTL,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 10_000,
    poolSize: 4,
    ...overrides,
  };
}

/** Resolves when `check` holds, polling; fails after `timeoutMs` with `what`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Whether a promise has settled, without waiting for it. */
function settledFlag(promise: Promise<unknown>): () => boolean {
  let settled = false;
  promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  return () => settled;
}

describePostgres('PostgreSQL under faults', () => {
  let db: TestDatabase;
  const cleanup: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    const store = await openPostgresStore(db.url, baseOptions());
    await store.close();
  });
  afterEach(async () => {
    for (const done of cleanup.splice(0).reverse()) await done();
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function store(url: string, overrides: Partial<StoreOptions> = {}): Promise<InventoryStore> {
    const opened = await openPostgresStore(url, baseOptions(overrides));
    cleanup.push(() => opened.close());
    return opened;
  }

  async function seeded(overrides: Partial<StoreOptions> = {}): Promise<InventoryStore> {
    await db.reset();
    const opened = await store(db.url, overrides);
    await opened.importProducts(admin, CONTRACT_CATALOG);
    return opened;
  }

  async function proxy(): Promise<PgProxy> {
    const started = await startPgProxy(db.url);
    cleanup.push(() => started.close());
    return started;
  }

  /** A connection outside the store that holds locks; rolled back and closed after the test. */
  async function holder(): Promise<pg.Client> {
    const client = await db.connect();
    cleanup.push(async () => {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
    });
    return client;
  }

  async function count(table: string): Promise<number> {
    const [row] = await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${table}`);
    return Number(row?.n);
  }

  describe('a connection lost during COMMIT', () => {
    it.each<[CommitFault, string]>([
      ['after_commit', 'the cart was made: the keyed retry replays it'],
      ['before_commit', 'nothing was made: the keyed retry makes the cart once'],
    ])('%s: add_to_cart is OUTCOME_UNKNOWN, not "nothing changed"; %s', async (fault) => {
      await seeded();
      const faulty = await proxy();
      const viaProxy = await store(faulty.url);
      const reader = await store(db.url);
      const key = `key-${fault}`;

      const tripped = faulty.failNextCommit(fault, key);
      await expectStockError(
        viaProxy.addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: key }),
        'OUTCOME_UNKNOWN',
      );
      await tripped;
      const committed = fault === 'after_commit';
      expect(await count('carts')).toBe(committed ? 1 : 0);
      expect(await level(reader, 'MUG')).toMatchObject({ reserved: committed ? 2 : 0 });

      // The caller does what the refusal says: the same call, the same key.
      const cart = await viaProxy.addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: key });
      expect(cart.lines).toMatchObject([{ sku: 'MUG', quantity: 2 }]);
      expect(await count('carts')).toBe(1);
      const [row] = await db.query<{ id: string }>('SELECT id FROM carts');
      expect(row?.id).toBe(cart.cart_id);
      expect(await level(reader, 'MUG')).toMatchObject({ on_hand: 5, reserved: 2 });
      await expectAuditOk(reader);
    });

    it('checkout: OUTCOME_UNKNOWN after the order committed; the keyed retry returns that one order', async () => {
      const store0 = await seeded();
      const faulty = await proxy();
      const viaProxy = await store(faulty.url);
      const cart = await store0.addToCart(web, { sku: 'MUG', quantity: 3 });

      const tripped = faulty.failNextCommit('after_commit', 'pay-1');
      await expectStockError(
        viaProxy.checkout(web, { cartId: cart.cart_id, idempotencyKey: 'pay-1' }),
        'OUTCOME_UNKNOWN',
      );
      await tripped;
      const order = await viaProxy.checkout(web, { cartId: cart.cart_id, idempotencyKey: 'pay-1' });
      expect(order.lines).toMatchObject([{ sku: 'MUG', quantity: 3 }]);
      expect(await count('orders')).toBe(1);
      expect(await level(store0, 'MUG')).toMatchObject({ on_hand: 2, reserved: 0 });
      await expectAuditOk(store0);
    });

    it('through a real MCP client over stdio: the refusal names the tool and asks for the same key', async () => {
      const reader = await seeded();
      const faulty = await proxy();
      const client = await stdioClient(['--db', faulty.url, '--channel', 'web', '--pool-size', '2']);
      cleanup.push(() => client.close());
      const args = { sku: 'MUG', quantity: 1, idempotency_key: 'mcp-order-7' };

      const tripped = faulty.failNextCommit('after_commit', 'mcp-order-7');
      const refused = await call(client, 'add_to_cart', args);
      await tripped;
      expect(refusalCode(refused)).toBe('OUTCOME_UNKNOWN');
      expect(details(refused)).toMatchObject({ code: 'OUTCOME_UNKNOWN', tool: 'add_to_cart' });
      expect(text(refused)).toMatch(/may or may not have been made.*same idempotency_key/);

      const retried = await call(client, 'add_to_cart', args);
      expect(retried.isError, text(retried)).toBeFalsy();
      const [row] = await db.query<{ id: string }>('SELECT id FROM carts');
      expect((retried.structuredContent as { cart_id: string }).cart_id).toBe(row?.id);
      expect(await count('carts')).toBe(1);
      expect(await level(reader, 'MUG')).toMatchObject({ reserved: 1 });
      await expectAuditOk(reader);
    });

    it('a connection lost before COMMIT is retried on a fresh one: nothing it did had been kept', async () => {
      const store0 = await seeded();
      const locker = await holder();
      await locker.query('BEGIN');
      await locker.query("SELECT 1 FROM products WHERE sku = 'MUG' FOR UPDATE");
      const adding = store0.addToCart(web, { sku: 'MUG', quantity: 1 });
      // The store's transaction is killed mid-way (a failover, a restart) while it waits for the row.
      let pid: number | undefined;
      await until('the store waits for the row', async () => {
        const [row] = await db.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'stocklock' AND wait_event_type = 'Lock'",
        );
        pid = row?.pid;
        return pid !== undefined;
      });
      await db.query('SELECT pg_terminate_backend($1, 5000)', [pid]);
      await locker.query('COMMIT');

      // Before: the dead connection's error came back as an internal error, though nothing had been kept.
      expect(await adding).toMatchObject({ status: 'open', item_count: 1 });
      expect(await level(store0, 'MUG')).toMatchObject({ reserved: 1 });
      expect(await count('carts')).toBe(1);
      await expectAuditOk(store0);
    });
  });

  describe('one lock budget for the whole call', () => {
    it('locks met one after another share one deadline: STORE_BUSY before the last is free, nothing changed', async () => {
      const budget = 1_000;
      const store0 = await seeded({ lockTimeoutMs: budget });
      let cart = await store0.addToCart(web, { sku: 'MUG', quantity: 1 });
      cart = await store0.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, cartId: cart.cart_id });
      cart = await store0.addToCart(web, { sku: 'LAST-ONE', quantity: 1, cartId: cart.cart_id });

      // The cart row, then three product rows (one statement locks them in SKU order), each held by another
      // connection that lets go 0.6 budgets after the one before: every single wait is within the budget.
      const holders = await Promise.all([holder(), holder(), holder(), holder()]);
      const rows = [
        ['carts', 'id', cart.cart_id],
        ['products', 'sku', 'LAST-ONE'],
        ['products', 'sku', 'MUG'],
        ['products', 'sku', 'TSHIRT-M'],
      ] as const;
      for (const [i, [table, column, value]] of rows.entries()) {
        await holders[i]?.query('BEGIN');
        await holders[i]?.query(`SELECT 1 FROM ${table} WHERE ${column} = $1 FOR UPDATE`, [value]);
      }
      let lastReleased = false;
      const started = performance.now();
      const releases = holders.map(
        (client, i) =>
          new Promise<void>((resolve) =>
            setTimeout(
              () => {
                void client.query('COMMIT').then(() => {
                  if (i === holders.length - 1) lastReleased = true;
                  resolve();
                });
              },
              (i + 1) * 0.6 * budget,
            ),
          ),
      );

      const error = await expectStockError(store0.checkout(web, { cartId: cart.cart_id }), 'STORE_BUSY');
      // Before: each statement could wait a whole budget, so the call outwaited all four and sold.
      expect(lastReleased).toBe(false);
      expect(error.details.waited_ms as number).toBeGreaterThanOrEqual(budget);
      expect(performance.now() - started).toBeGreaterThanOrEqual(budget);
      await Promise.all(releases);

      expect(await count('orders')).toBe(0);
      expect((await store0.getCart(web, cart.cart_id)).status).toBe('open');
      await expectAuditOk(store0);
    });

    it('waiting for a pooled connection counts against the same budget', async () => {
      const budget = 1_000;
      const store0 = await seeded({ lockTimeoutMs: budget, poolSize: 1 });
      // The pool's one connection is stuck: an audit waits on a table another connection has locked.
      const locker = await holder();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE stock_movements IN ACCESS EXCLUSIVE MODE');
      const audit = store0.audit();
      const auditDone = settledFlag(audit);
      await until('the audit waits on the lock', async () => {
        const rows = await db.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'stocklock' AND wait_event_type = 'Lock'",
        );
        return rows.length > 0;
      });

      // Before: the pool's queue did not count, so this waited connectionTimeoutMillis (10 s) instead.
      const error = await expectStockError(store0.addToCart(web, { sku: 'MUG', quantity: 1 }), 'STORE_BUSY');
      expect(auditDone()).toBe(false);
      expect(error.details.waited_ms as number).toBeGreaterThanOrEqual(budget);
      expect(error.details.waited_ms as number).toBeLessThan(budget + 4_000);

      await locker.query('COMMIT');
      expect((await audit).ok).toBe(true);
      expect(await store0.addToCart(web, { sku: 'MUG', quantity: 1 })).toMatchObject({ status: 'open' });
    });
  });

  it('a token row locked by another transaction does not hold up authentication', async () => {
    const clock = new ManualClock(T0);
    const store0 = await seeded({ clock });
    const { token, record } = await store0.createToken('web', false);
    const locker = await holder();
    await locker.query('BEGIN');
    await locker.query('SELECT 1 FROM api_tokens WHERE id = $1 FOR UPDATE', [record.id]);

    // Before: the last-used touch queued behind the lock until it was released (here: never).
    const answer = await Promise.race([
      store0.verifyToken(token),
      new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 5_000).unref()),
    ]);
    expect(answer).toMatchObject({ id: record.id, channel: 'web' });
    await locker.query('COMMIT');
    expect((await store0.listTokens())[0]?.last_used_at).toBeNull();

    // Unlocked, the next request records the use.
    clock.advance(1_000);
    await store0.verifyToken(token);
    expect((await store0.listTokens())[0]?.last_used_at).toBe(new Date(T0 + 1_000).toISOString());
  });
});
