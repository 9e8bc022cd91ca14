// Runs the store contract against a real SQLite file, plus what only SQLite can show: tampering and lock waits.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { AuditViolation } from '../../src/domain/types.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import { openSqliteStore, type SqliteStore } from '../../src/storage/sqlite/store.js';
import type { StoreOptions } from '../../src/storage/store.js';
import { CONTRACT_CATALOG } from '../helpers/catalog.js';
import {
  admin,
  bot,
  describeStoreContract,
  expectAuditOk,
  expectStockError,
  level,
  T0,
  TTL,
  web,
} from './contract.js';
import { describeOrdersContract } from './orders-contract.js';

const root = mkdtempSync(join(tmpdir(), 'stocklock-sqlite-'));
let counter = 0;

/** A fresh directory per store, so every test starts from an empty file. */
function freshFile(): string {
  const dir = join(root, String(++counter));
  mkdirSync(dir);
  return join(dir, 'stocklock.db');
}

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describeStoreContract('sqlite file', async (options) => openSqliteStore(freshFile(), options));
describeOrdersContract('sqlite file', async (options) => openSqliteStore(freshFile(), options));

const RACERS = 4;
const STORE_BUYER = fileURLToPath(new URL('../fixtures/store-buyer.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Outcome {
  won: boolean;
  code?: string;
  details?: Record<string, unknown>;
}

/** A SqliteStore in its own process (test/fixtures/store-buyer.ts) that asks for LAST-ONE when told. */
function startBuyer(file: string, channel: string) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', STORE_BUYER, file, channel, 'LAST-ONE', String(T0)],
    {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  /** Resolves once the process has printed this line; fails as soon as it exits without it. */
  const said = (line: string) =>
    Promise.race([
      new Promise<void>((resolve) => {
        const check = () => {
          if (output.includes(`${line}\n`)) {
            child.stdout.off('data', check);
            resolve();
          }
        };
        child.stdout.on('data', check);
        check();
      }),
      exited.then(() => {
        if (!output.includes(`${line}\n`)) throw new Error(`the buyer exited without "${line}":\n${output}`);
      }),
    ]);
  const outcome = exited.then(() => {
    const last = output.trim().split('\n').at(-1) ?? '';
    try {
      return JSON.parse(last) as Outcome;
    } catch {
      throw new Error(`the buyer printed no outcome:\n${output}`);
    }
  });
  return { child, said, outcome };
}

describe('SQLite store', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const done of cleanup.splice(0).reverse()) done();
  });

  function options(overrides: Partial<StoreOptions> = {}): StoreOptions {
    return {
      clock: new ManualClock(T0),
      reservationTtlMs: TTL,
      limits: DEFAULT_LIMITS,
      lockTimeoutMs: 2_000,
      ...overrides,
    };
  }

  async function seeded(
    overrides: Partial<StoreOptions> = {},
  ): Promise<{ store: SqliteStore; file: string }> {
    const file = freshFile();
    const store = openSqliteStore(file, options(overrides));
    cleanup.push(() => void store.close());
    await store.importProducts(admin, CONTRACT_CATALOG);
    return { store, file };
  }

  /** A second connection that ignores CHECK constraints and foreign keys: a hand with a screwdriver. */
  function tamper(file: string, sql: string): void {
    const db = new Database(file);
    try {
      db.pragma('ignore_check_constraints = 1');
      db.pragma('foreign_keys = OFF');
      db.exec(sql);
    } finally {
      db.close();
    }
  }

  async function violations(store: SqliteStore): Promise<AuditViolation[]> {
    const report = await store.audit();
    expect(report.ok).toBe(report.violations.length === 0);
    return report.violations;
  }

  function expectViolation(found: AuditViolation[], invariant: number, subject?: string): void {
    expect(
      found.some((v) => v.invariant === invariant && (subject === undefined || v.subject.includes(subject))),
      `expected a violation of invariant ${invariant}${subject ? ` for ${subject}` : ''}, got ${JSON.stringify(found, null, 2)}`,
    ).toBe(true);
  }

  describe('audit detects tampering', () => {
    it('invariant 1: reserved above on_hand', async () => {
      const { store, file } = await seeded();
      await store.addToCart(web, { sku: 'MUG', quantity: 2 });
      await expectAuditOk(store);
      tamper(file, "UPDATE products SET on_hand = 1 WHERE sku = 'MUG'");
      const found = await violations(store);
      expectViolation(found, 1, 'MUG');
      expect((await store.audit()).ok).toBe(false);
    });

    it('invariant 1: negative stock', async () => {
      const { store, file } = await seeded();
      tamper(file, "UPDATE products SET reserved = -1 WHERE sku = 'TSHIRT-M'");
      expectViolation(await violations(store), 1, 'TSHIRT-M');
    });

    it('the database itself refuses reserved > on_hand when CHECK constraints are on', async () => {
      const { store, file } = await seeded();
      const db = new Database(file);
      cleanup.push(() => db.close());
      expect(() => db.exec("UPDATE products SET reserved = on_hand + 1 WHERE sku = 'MUG'")).toThrow(/CHECK/i);
      await expectAuditOk(store);
    });

    it('invariant 2: reserved no longer matches the holds of open carts', async () => {
      const { store, file } = await seeded();
      await store.addToCart(web, { sku: 'MUG', quantity: 2 });
      // Keep the ledger in step so only the holds disagree.
      tamper(
        file,
        `UPDATE products SET reserved = reserved + 1 WHERE sku = 'MUG';
         INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta)
           VALUES (0, 'MUG', 'reserve', 1, 0, 1);`,
      );
      const found = await violations(store);
      expectViolation(found, 2, 'MUG');
      expect(found.filter((v) => v.invariant !== 2)).toEqual([]);
    });

    it('invariant 2: a closed cart that still holds units', async () => {
      const { store, file } = await seeded();
      const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
      tamper(file, `UPDATE carts SET status = 'released' WHERE id = '${cart_id}'`);
      expectViolation(await violations(store), 2, 'MUG');
    });

    it('invariant 2: a channel whose carts hold units but whose hold counter is gone', async () => {
      const { store, file } = await seeded();
      await store.addToCart(web, { sku: 'MUG', quantity: 2 });
      tamper(file, 'DELETE FROM channel_holds');
      const found = await violations(store);
      expectViolation(found, 2, `channel ${web.channel}`);
      expect(found.filter((v) => v.invariant !== 2)).toEqual([]);
    });

    it('invariant 3: a ledger row deleted', async () => {
      const { store, file } = await seeded();
      await store.restock(admin, { sku: 'MUG', quantity: 3 });
      tamper(file, "DELETE FROM stock_movements WHERE sku = 'MUG' AND kind = 'restock'");
      const found = await violations(store);
      expectViolation(found, 3, 'MUG');
      expect(found.filter((v) => v.invariant !== 3)).toEqual([]);
    });

    it('invariant 3: on_hand changed without a movement', async () => {
      const { store, file } = await seeded();
      tamper(file, "UPDATE products SET on_hand = on_hand + 5 WHERE sku = 'TSHIRT-M'");
      expectViolation(await violations(store), 3, 'TSHIRT-M');
    });

    it("invariant 4: a checked-out cart's order moved to another cart", async () => {
      const { store, file } = await seeded();
      const sold = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
      await store.checkout(web, { cartId: sold.cart_id });
      const other = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
      await store.releaseCart(web, { cartId: other.cart_id });
      await expectAuditOk(store);
      tamper(file, `UPDATE orders SET cart_id = '${other.cart_id}' WHERE cart_id = '${sold.cart_id}'`);
      const found = await violations(store);
      expectViolation(found, 4, sold.cart_id);
      expectViolation(found, 4, other.cart_id);
    });

    it('invariant 4: order lines that disagree with the sale movements', async () => {
      const { store, file } = await seeded();
      const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
      const order = await store.checkout(web, { cartId: cart_id });
      tamper(file, `UPDATE order_lines SET quantity = 3 WHERE order_id = '${order.order_id}'`);
      expectViolation(await violations(store), 4, order.order_id);
    });

    it('invariant 4: an order total that is not the sum of its lines', async () => {
      const { store, file } = await seeded();
      const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
      const order = await store.checkout(web, { cartId: cart_id });
      tamper(file, `UPDATE orders SET total_minor = 1 WHERE id = '${order.order_id}'`);
      const found = await violations(store);
      expectViolation(found, 4, order.order_id);
      expect(found.filter((v) => v.invariant !== 4)).toEqual([]);
    });
  });

  describe('lock waits', () => {
    it('refuses a write with STORE_BUSY while another connection holds the write lock, then succeeds', async () => {
      const { store, file } = await seeded({ lockTimeoutMs: 60 });
      const other = new Database(file);
      cleanup.push(() => other.close());
      other.exec('BEGIN IMMEDIATE');

      // Refused while the lock is still held, once its budget is spent.
      const error = await expectStockError(store.restock(admin, { sku: 'MUG', quantity: 1 }), 'STORE_BUSY');
      expect(error.details.waited_ms).toEqual(expect.any(Number));
      expect(error.details.waited_ms as number).toBeGreaterThanOrEqual(60);
      await expectStockError(store.addToCart(web, { sku: 'MUG', quantity: 1 }), 'STORE_BUSY');
      // Reads do not need the write lock under WAL.
      expect((await store.checkStock(['MUG'])).products[0]).toMatchObject({ available: 5 });

      other.exec('COMMIT');
      expect(await store.restock(admin, { sku: 'MUG', quantity: 1 })).toMatchObject({ on_hand: 6 });
      await expectAuditOk(store);
    });

    it('a write waits for the lock without blocking the event loop and goes through once it is free', async () => {
      const { store, file } = await seeded({ lockTimeoutMs: 2_000 });
      const other = new Database(file);
      cleanup.push(() => other.close());
      other.exec('BEGIN IMMEDIATE');
      setTimeout(() => other.exec('COMMIT'), 100);
      const cart = await store.addToCart(bot, { sku: 'MUG', quantity: 2 });
      expect(cart.status).toBe('open');
      expect(await level(store, 'MUG')).toMatchObject({ reserved: 2 });
      await expectAuditOk(store);
    });
  });

  it(`${RACERS} processes race for the last unit: exactly one wins, the others get OUT_OF_STOCK`, async () => {
    const { store: first, file } = await seeded();
    const racers = Array.from({ length: RACERS }, (_, i) => startBuyer(file, `channel-${i}`));
    cleanup.push(() => {
      for (const racer of racers) racer.child.kill('SIGKILL');
    });
    await Promise.all(racers.map((racer) => racer.said('ready')));
    // Hold the write lock while every process asks, so they all meet the lock at once when it frees.
    const gate = new Database(file);
    cleanup.push(() => gate.close());
    gate.exec('BEGIN IMMEDIATE');
    for (const racer of racers) racer.child.stdin.end('go\n');
    await Promise.all(racers.map((racer) => racer.said('asking')));
    gate.exec('COMMIT');
    const outcomes = await Promise.all(racers.map((racer) => racer.outcome));

    expect(outcomes.filter((o) => o.won)).toHaveLength(1);
    for (const lost of outcomes.filter((o) => !o.won)) {
      expect(lost).toMatchObject({
        code: 'OUT_OF_STOCK',
        details: { sku: 'LAST-ONE', requested: 1, available: 0 },
      });
    }
    expect(await level(first, 'LAST-ONE')).toMatchObject({ on_hand: 1, reserved: 1 });
    await expectAuditOk(first);
  });

  it('refuses a directory that does not exist and a file that is not a database', async () => {
    expect(() => openSqliteStore(join(root, 'missing', 'x.db'), options())).toThrow(/does not exist/);
    const file = freshFile();
    const db = new Database(file);
    db.close();
    writeFileSync(file, 'not a database, just some text that is long enough to fill a header page');
    expect(() => openSqliteStore(file, options())).toThrow(/not a SQLite database/);
  });
});
