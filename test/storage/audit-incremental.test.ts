// The incremental audit: from the last clean audit's checkpoint, on both stores, against the full audit.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { AuditReport, CallContext } from '../../src/domain/types.js';
import { REVISIT_MS } from '../../src/storage/audit-flow.js';
import { openStore } from '../../src/storage/open.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import type { InventoryStore } from '../../src/storage/store.js';
import { SHOP_CATALOG } from '../helpers/catalog.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { sqliteStore } from '../helpers/sqlite.js';

const web: CallContext = { channel: 'web' };
/** Enough stock for every sale the tests make. */
const CATALOG = SHOP_CATALOG.map((row) => ({ ...row, stock: 1_000 }));

interface Subject {
  store: InventoryStore;
  clock: ManualClock;
  /** One statement on a connection of its own, as someone editing the database by hand. */
  tamper(sql: string): Promise<void>;
  /** The console's audit (incremental, in a worker on SQLite, on its own connection on PostgreSQL). */
  consoleAudit(): Promise<AuditReport>;
  lastMovement(): Promise<number>;
  close(): Promise<void>;
}

/** A little of everything: sales, a released cart, a cart left open. */
async function trade(store: InventoryStore, skus: string[]): Promise<void> {
  for (const sku of skus) {
    const cart = await store.addToCart(web, { sku, quantity: 1 });
    await store.checkout(web, { cartId: cart.cart_id });
  }
  const released = await store.addToCart(web, { sku: skus[0] as string, quantity: 1 });
  await store.releaseCart(web, { cartId: released.cart_id });
  await store.addToCart(web, { sku: skus[1] as string, quantity: 1 });
}

const essence = (r: AuditReport) => ({ ok: r.ok, checked: r.checked, violations: r.violations });

function incrementalSuite(open: () => Promise<Subject>) {
  let s: Subject;
  beforeAll(async () => {
    s = await open();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('agrees with the full audit on clean data, and starts from the checkpoint the last clean audit saved', async () => {
    await trade(s.store, ['MUG-WHT', 'TEE-BLK-M']);
    // The full audit (the default) saves a checkpoint too when asked.
    const first = await s.store.audit({ checkpoint: true });
    expect(first.ok).toBe(true);
    expect(first.since).toBeUndefined();
    const firstEnd = await s.lastMovement();

    await trade(s.store, ['TEE-BLK-M', 'MUG-WHT']);
    const incremental = await s.store.audit({ incremental: true, checkpoint: true });
    const full = await s.store.audit();
    expect(incremental.ok).toBe(true);
    expect(incremental.since?.movement).toBe(firstEnd);
    expect(essence(incremental)).toEqual(essence(full));
    // The console runs the incremental audit too, from the checkpoint the last one saved.
    const fromConsole = await s.consoleAudit();
    expect(essence(fromConsole)).toEqual(essence(full));
    expect(fromConsole.since?.movement).toBe(await s.lastMovement());
  });

  it('catches a ledger row changed after the checkpoint, as the full audit does', async () => {
    expect((await s.store.audit({ incremental: true, checkpoint: true })).ok).toBe(true);
    await trade(s.store, ['MUG-WHT', 'TEE-BLK-M']);
    await s.tamper(
      'UPDATE stock_movements SET on_hand_delta = on_hand_delta - 1 WHERE id = (SELECT MAX(id) FROM stock_movements)',
    );
    const incremental = await s.store.audit({ incremental: true, checkpoint: true });
    expect(incremental.ok).toBe(false);
    expect(incremental.since).toBeDefined();
    expect(incremental.violations.map((v) => v.invariant)).toEqual([3]);
    expect(essence(incremental)).toEqual(essence(await s.store.audit()));
    await s.tamper(
      'UPDATE stock_movements SET on_hand_delta = on_hand_delta + 1 WHERE id = (SELECT MAX(id) FROM stock_movements)',
    );
  });

  it("catches an order changed after the checkpoint (its total no longer its lines')", async () => {
    expect((await s.store.audit({ incremental: true, checkpoint: true })).ok).toBe(true);
    const cart = await s.store.addToCart(web, { sku: 'MUG-WHT', quantity: 2 });
    const order = await s.store.checkout(web, { cartId: cart.cart_id });
    await s.tamper(`UPDATE orders SET total_minor = total_minor + 1 WHERE id = '${order.order_id}'`);
    const incremental = await s.store.audit({ incremental: true });
    expect(incremental.since).toBeDefined();
    expect(incremental.violations).toEqual([
      expect.objectContaining({ invariant: 4, subject: order.order_id }),
    ]);
    expect(essence(incremental)).toEqual(essence(await s.store.audit()));
    await s.tamper(`UPDATE orders SET total_minor = total_minor - 1 WHERE id = '${order.order_id}'`);
  });

  it('catches a ledger row changed before the checkpoint by its fingerprint, and sums the whole ledger again', async () => {
    expect((await s.store.audit({ incremental: true, checkpoint: true })).ok).toBe(true);
    await trade(s.store, ['MUG-WHT', 'TEE-BLK-M']);
    // The first movement is long before the checkpoint: the stock no longer matches its ledger.
    await s.tamper(
      'UPDATE stock_movements SET on_hand_delta = on_hand_delta + 5 WHERE id = (SELECT MIN(id) FROM stock_movements)',
    );
    const incremental = await s.store.audit({ incremental: true, checkpoint: true });
    const full = await s.store.audit();
    expect(full.violations.map((v) => v.invariant)).toEqual([3]);
    expect(incremental.ok).toBe(false);
    // Reported twice over: the checkpoint no longer matches its rows, and (summed again) the SKU's stock.
    expect(incremental.violations).toEqual([
      ...full.violations,
      expect.objectContaining({ invariant: 3, subject: 'audit checkpoint' }),
    ]);
    expect(incremental.since).toBeUndefined();
    // A change that keeps every sum of stock right is still a change to a checked row: its quantity.
    await s.tamper(
      'UPDATE stock_movements SET on_hand_delta = on_hand_delta - 5 WHERE id = (SELECT MIN(id) FROM stock_movements)',
    );
    expect((await s.store.audit({ incremental: true, checkpoint: true })).ok).toBe(true);
    await s.tamper(
      `UPDATE stock_movements SET quantity = quantity + 1 WHERE id = (SELECT MIN(id) FROM stock_movements)`,
    );
    const moved = await s.store.audit({ incremental: true });
    expect(moved.violations).toEqual([expect.objectContaining({ subject: 'audit checkpoint' })]);
    await s.tamper(
      `UPDATE stock_movements SET quantity = quantity - 1 WHERE id = (SELECT MIN(id) FROM stock_movements)`,
    );
  });

  it('catches a checkpoint whose SKU totals were edited', async () => {
    expect((await s.store.audit({ incremental: true, checkpoint: true })).ok).toBe(true);
    await s.tamper(
      `UPDATE audit_checkpoints SET sku_totals = replace(sku_totals, '"MUG-WHT":[', '"MUG-WHT":[1')`,
    );
    const report = await s.store.audit({ incremental: true });
    expect(report.violations).toEqual([
      expect.objectContaining({
        invariant: 3,
        subject: 'audit checkpoint',
        message: expect.stringContaining('SKU totals'),
      }),
    ]);
    // Found wrong, it is not trusted: the rest of the audit started from scratch and found the books balanced.
    expect(report.since).toBeUndefined();
    expect((await s.store.audit({ checkpoint: true })).ok).toBe(true);
  });

  it('leaves an old order edited by hand to the full audit (it reads only orders touched since the checkpoint)', async () => {
    const cart = await s.store.addToCart(web, { sku: 'TEE-BLK-M', quantity: 1 });
    const order = await s.store.checkout(web, { cartId: cart.cart_id });
    s.clock.advance(REVISIT_MS + 60_000);
    expect((await s.store.audit({ incremental: true, checkpoint: true })).ok).toBe(true);
    s.clock.advance(REVISIT_MS + 60_000);
    await s.tamper(`UPDATE orders SET total_minor = total_minor + 1 WHERE id = '${order.order_id}'`);
    expect((await s.store.audit({ incremental: true })).ok).toBe(true);
    const full = await s.store.audit();
    expect(full.violations).toEqual([expect.objectContaining({ invariant: 4, subject: order.order_id })]);
    await s.tamper(`UPDATE orders SET total_minor = total_minor - 1 WHERE id = '${order.order_id}'`);
  });
}

describe('the incremental audit on SQLite', () => {
  incrementalSuite(async () => {
    const { store, clock, path } = await sqliteStore({}, CATALOG);
    const queries = await openConsoleQueries(path, clock);
    return {
      store,
      clock,
      async tamper(sql) {
        const db = new Database(path);
        db.exec(sql);
        db.close();
      },
      consoleAudit: () => queries.audit(),
      async lastMovement() {
        const db = new Database(path, { readonly: true });
        const { id } = db.prepare('SELECT MAX(id) AS id FROM stock_movements').get() as { id: number };
        db.close();
        return id;
      },
      async close() {
        await queries.close();
        await store.close();
      },
    };
  });
});

describePostgres('the incremental audit on PostgreSQL', () => {
  let db: TestDatabase;
  incrementalSuite(async () => {
    db = await createTestDatabase('stocklock_audit_incremental');
    const clock = new ManualClock();
    const store = await openStore(db.url, {
      clock,
      reservationTtlMs: 15 * 60_000,
      limits: DEFAULT_LIMITS,
      lockTimeoutMs: 5_000,
    });
    await store.importProducts({ channel: 'cli' }, CATALOG);
    const queries = await openConsoleQueries(db.url, clock);
    return {
      store,
      clock,
      async tamper(sql) {
        await db.query(sql);
      },
      consoleAudit: () => queries.audit(),
      async lastMovement() {
        const [row] = await db.query<{ id: string }>('SELECT MAX(id) AS id FROM stock_movements');
        return Number(row?.id);
      },
      async close() {
        await queries.close();
        await store.close();
        await db.drop();
      },
    };
  });
});

describePostgres('the checkpoint on PostgreSQL while a writer is inserting', () => {
  it('is not saved when the ledger never pauses, so no id still in flight falls behind it', async () => {
    const db = await createTestDatabase('stocklock_audit_inflight');
    const store = await openStore(db.url, {
      clock: new ManualClock(),
      reservationTtlMs: 15 * 60_000,
      limits: DEFAULT_LIMITS,
      lockTimeoutMs: 5_000,
    });
    const writer = await db.connect();
    try {
      await store.importProducts({ channel: 'cli' }, CATALOG);
      // A transaction that has inserted into the ledger and not committed, as a write mid-flush.
      await writer.query('BEGIN');
      await writer.query('LOCK TABLE stock_movements IN ROW EXCLUSIVE MODE');
      const report = await store.audit({ checkpoint: true });
      expect(report.ok).toBe(true);
      expect(await db.query('SELECT ledger_id FROM audit_checkpoints')).toEqual([]);
      await writer.query('COMMIT');
      expect((await store.audit({ checkpoint: true })).ok).toBe(true);
      expect(await db.query('SELECT ledger_id FROM audit_checkpoints')).toHaveLength(1);
    } finally {
      await writer.end();
      await store.close();
      await db.drop();
    }
  });
});
