// The bench's baselines are honest: the replay is what the store ran, and a missing PostgreSQL fails CI.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { captureShop, compileReplay, freshShop, verifyReplays } from '../../bench/capture.js';
import { benchStoreOptions, HOT_SKU, ROOT, spreadSku } from '../../bench/lib.js';
import { openRaw, prepareDatabase } from '../../bench/raw.js';
import { openSqliteStore, SqliteStore } from '../../src/storage/sqlite/store.js';
import { tempDir } from '../helpers/temp.js';

const CTX = { channel: 'bench' };

/** Statements SQLite runs for one add_to_cart of a store on a traced connection (the second call). */
async function storeReserveCount(dir: string): Promise<number> {
  const path = join(dir, 'counted.db');
  await prepareDatabase(path, 'NORMAL');
  let n = 0;
  const db = openRaw(path, 'NORMAL', () => {
    n += 1;
  });
  try {
    const store = new SqliteStore(db, benchStoreOptions('NORMAL'));
    await store.addToCart(CTX, { sku: HOT_SKU, quantity: 1 });
    n = 0;
    await store.addToCart(CTX, { sku: HOT_SKU, quantity: 1 });
    return n;
  } finally {
    db.close();
  }
}

describe('bench: the store replay is captured from the store', () => {
  it('runs as many statements as the store, and replayed with fresh ids it is a real reserve and sale', async () => {
    const dir = tempDir('stocklock-bench-').dir;
    const scripts = await captureShop(dir, [HOT_SKU, spreadSku(7)], benchStoreOptions('NORMAL'));
    const hot = scripts.get(HOT_SKU);
    if (!hot) throw new Error('no script for the hot SKU');
    expect(hot.reserve.trace.length).toBe(await storeReserveCount(dir));
    // The lock-free sold-out glance at the product comes first, then the transaction.
    expect(hot.reserve.trace[0]).toMatch(/^SELECT .* FROM products/);
    expect(hot.reserve.trace[1]).toBe('BEGIN IMMEDIATE');
    expect(hot.reserve.trace.at(-1)).toBe('COMMIT');

    const path = join(dir, 'replayed.db');
    await prepareDatabase(path, 'NORMAL');
    const fresh = freshShop(hot, Date.now());
    const db = openRaw(path, 'NORMAL');
    compileReplay(db, hot.reserve)(fresh.reserve);
    compileReplay(db, hot.checkout)(fresh.checkout);
    db.close();
    const cartId = fresh.reserve.ids.get(hot.reserve.ids[0] as string) as string;
    expect(cartId).not.toBe(hot.reserve.ids[0]);

    const store = openSqliteStore(path, benchStoreOptions('NORMAL'));
    try {
      const cart = await store.getCart(CTX, cartId);
      expect(cart.status).toBe('checked_out');
      expect(cart.lines).toMatchObject([{ sku: HOT_SKU, quantity: 1 }]);
      const audit = await store.audit();
      expect(audit.violations).toEqual([]);
      expect(audit.ok).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('refuses a replay that runs other statements than the store did', async () => {
    const dir = tempDir('stocklock-bench-').dir;
    const scripts = await captureShop(dir, [HOT_SKU], benchStoreOptions('NORMAL'));
    const hot = scripts.get(HOT_SKU);
    if (!hot) throw new Error('no script for the hot SKU');
    const twin = join(dir, 'twin.db');
    await prepareDatabase(twin, 'NORMAL');
    // A replay one statement short of the store (the channel counter's read), as a hand-written one could drift.
    const short = {
      ...hot.reserve,
      steps: hot.reserve.steps.filter((step) => !step.sql.startsWith('SELECT held FROM channel_holds')),
    };
    expect(short.steps.length).toBe(hot.reserve.steps.length - 1);
    const calls = hot.reserve.trace.length + hot.checkout.trace.length;
    expect(() => verifyReplays(twin, new Map([[HOT_SKU, { ...hot, reserve: short }]]))).toThrow(
      `ran ${calls - 1} statements against the store's ${calls}`,
    );
  });
});

describe('bench: PostgreSQL without a database', () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--only', 'postgres'], {
      cwd: ROOT,
      env: {
        ...process.env,
        STOCKLOCK_BENCH_POSTGRES_URL: 'postgres://postgres@127.0.0.1:1/postgres',
        ...env,
      },
      encoding: 'utf8',
      timeout: 50_000,
    });

  it('fails the run under CI=true, naming why', () => {
    const result = run({ CI: 'true' });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('CI=true and the PostgreSQL benchmark cannot run');
    expect(result.stderr).toContain('127.0.0.1:1 did not answer');
  });

  it('drops the row with a note elsewhere', () => {
    const result = run({ CI: '' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Skipped: PostgreSQL at 127.0.0.1:1 did not answer');
  });
});
