// The console's audit: off the event loop on SQLite (a worker thread on its own snapshot), on a connection of its own on PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { openStore } from '../../src/storage/open.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import { auditInWorker } from '../../src/storage/sqlite/audit-worker.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import { SHOP_CATALOG } from '../helpers/catalog.js';
import { call, connect } from '../helpers/mcp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { sqliteStore } from '../helpers/sqlite.js';

describe('the audit on SQLite runs in a worker thread', () => {
  it('lets a tool call complete while the audit is held inside its snapshot, and reports that snapshot', async () => {
    const { store, clock, path } = await sqliteStore();
    try {
      const shopper = await connect(store, 'web');
      const gate = new Int32Array(new SharedArrayBuffer(4));
      let snapshotTaken!: () => void;
      const taken = new Promise<void>((resolve) => {
        snapshotTaken = resolve;
      });
      let auditDone = false;
      const audit = auditInWorker(path, {
        now: () => clock.now(),
        hold: gate.buffer as SharedArrayBuffer,
        onSnapshot: snapshotTaken,
      }).finally(() => {
        auditDone = true;
      });
      await taken;
      // The worker now blocks (Atomics.wait) inside its read transaction. Had the audit run on this thread,
      // the event loop would be blocked with it and this call could never complete.
      const added = await call(shopper, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 2 });
      expect(added.isError).toBeFalsy();
      expect(auditDone).toBe(false);

      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      const report = await audit;
      expect(report.ok).toBe(true);
      // Its snapshot was taken before the cart existed; the store's own audit, run now, sees the cart.
      expect(report.checked).toMatchObject({ products: SHOP_CATALOG.length, carts: 0 });
      expect((await store.audit()).checked.carts).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('loads one better-sqlite3 build, the one for this Node line, in the store and the worker alike', async () => {
    const { store, clock, path } = await sqliteStore();
    try {
      expect((await auditInWorker(path, { now: () => clock.now() })).ok).toBe(true);
    } finally {
      await store.close();
    }
    // The native addons this process has loaded: a worker that required the other build would add a second one.
    const { sharedObjects } = process.report.getReport() as unknown as { sharedObjects: string[] };
    const addons = sharedObjects.filter((file) => /better-sqlite3[^/]*\/.*\.node$/.test(file));
    expect(addons).toHaveLength(1);
    // 12 (compiled at install) on Node 20; 13's prebuilt Node-API binary from Node 22 on.
    const major = Number(process.versions.node.split('.')[0]);
    expect(addons[0]).toMatch(
      major >= 22 ? /\/better-sqlite3-13\/prebuilds\// : /\/better-sqlite3\/build\/Release\//,
    );
  });

  it('finds what the store audit finds, through the console queries', async () => {
    const { store, clock, path } = await sqliteStore();
    const queries = await openConsoleQueries(path, clock);
    try {
      await store.addToCart({ channel: 'web' }, { sku: 'MUG-WHT', quantity: 1 });
      // The console's audit is incremental: with no checkpoint yet it checks everything, and saves one.
      expect(await queries.audit()).toEqual(await store.audit());
      expect(await queries.audit()).toEqual(await store.audit({ incremental: true }));
      const tamper = new Database(path);
      tamper.prepare("UPDATE products SET reserved = reserved + 1 WHERE sku = 'MUG-WHT'").run();
      tamper.close();
      const report = await queries.audit();
      expect(report.ok).toBe(false);
      expect(report).toEqual(await store.audit({ incremental: true }));
    } finally {
      await queries.close();
      await store.close();
    }
  });
});

describePostgres('the console audit on PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('stocklock_console_audit');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('runs on a connection of its own and finds what the store audit finds', async () => {
    const clock = new ManualClock();
    const store = await openStore(db.url, {
      clock,
      reservationTtlMs: 15 * 60_000,
      limits: DEFAULT_LIMITS,
      lockTimeoutMs: 5_000,
      poolSize: 1,
    });
    const queries = await openConsoleQueries(db.url, clock);
    try {
      await store.importProducts({ channel: 'cli' }, SHOP_CATALOG);
      await store.addToCart({ channel: 'web' }, { sku: 'MUG-WHT', quantity: 1 });
      const report = await queries.audit();
      expect(report.ok).toBe(true);
      expect(report).toEqual(await store.audit());
      await db.query("UPDATE products SET reserved = reserved + 1 WHERE sku = 'MUG-WHT'");
      const broken = await queries.audit();
      expect(broken.ok).toBe(false);
      expect(broken).toEqual(await store.audit({ incremental: true }));
    } finally {
      await queries.close();
      await store.close();
    }
  });
});
