// Group commit on SQLite: writes sent together share one transaction, each in its own savepoint, and none is
// answered before that transaction has committed.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { isStockError } from '../../src/domain/errors.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { ROOT } from '../helpers/cli.js';
import { sqliteStore } from '../helpers/sqlite.js';
import { tempDir } from '../helpers/temp.js';
import { expectAuditOk } from './contract.js';

const web = { channel: 'web' };
const admin = { channel: 'ops' };

const closing: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closing.splice(0)) await close();
});

async function opened(...args: Parameters<typeof sqliteStore>) {
  const made = await sqliteStore(...args);
  closing.push(() => made.store.close());
  return made;
}

/** What a settled call came to: ok, or the refusal's code. */
function outcome(result: PromiseSettledResult<unknown>): string {
  if (result.status === 'fulfilled') return 'ok';
  return isStockError(result.reason) ? result.reason.code : `threw ${String(result.reason)}`;
}

describe('SQLite group commit', () => {
  it('writes sent together share one transaction; each is answered only once it is committed', async () => {
    const { store, path } = await opened();
    const before = store.groupCommitStats();
    // Another connection, as another process would read the file: it sees only what has been committed.
    const outside = new Database(path, { readonly: true });
    closing.push(async () => void outside.close());
    const committedWhenAnswered: boolean[] = [];
    const calls = Array.from({ length: 8 }, () =>
      store.addToCart(web, { sku: 'TEE-BLK-M', quantity: 1 }).then((cart) => {
        const row = outside.prepare('SELECT id FROM carts WHERE id = ?').get(cart.cart_id);
        committedWhenAnswered.push(row !== undefined);
        return cart;
      }),
    );
    const carts = await Promise.all(calls);
    expect(new Set(carts.map((cart) => cart.cart_id)).size).toBe(8);
    expect(committedWhenAnswered).toEqual(Array(8).fill(true));
    const after = store.groupCommitStats();
    expect(after.writes - before.writes).toBe(8);
    expect(after.batches - before.batches).toBe(1);
    expect((await store.stockLevels(['TEE-BLK-M']))[0]).toMatchObject({ on_hand: 10, reserved: 8 });
    await expectAuditOk(store);
  });

  it('a refusal inside a batch rolls back only itself, even after it wrote', async () => {
    const { store } = await opened({}, [
      { sku: 'LAST-THREE', name: 'Three left', price_minor: 900, currency: 'EUR', stock: 3 },
    ]);
    const before = store.groupCommitStats();
    const settled = await Promise.allSettled([
      store.addToCart(web, { sku: 'LAST-THREE', quantity: 1 }),
      // Keyed, so it is decided under the lock (a sold-out call without a key may be refused before any batch).
      store.addToCart(web, { sku: 'LAST-THREE', quantity: 5, idempotencyKey: 'big' }),
      // Creates NEW-ONE, then refuses on its second row (on-hand below what carts hold): it wrote before it failed.
      store.importProducts(
        admin,
        [
          { sku: 'NEW-ONE', name: 'New', price_minor: 100, currency: 'EUR', stock: 4 },
          { sku: 'LAST-THREE', name: 'Three left', price_minor: 900, currency: 'EUR', stock: 0 },
        ],
        { setStock: true },
      ),
      store.addToCart(web, { sku: 'LAST-THREE', quantity: 2 }),
      store.addToCart(web, { sku: 'LAST-THREE', quantity: 1 }),
    ]);
    expect(settled.map(outcome)).toEqual(['ok', 'OUT_OF_STOCK', 'BELOW_RESERVED', 'ok', 'OUT_OF_STOCK']);
    const after = store.groupCommitStats();
    expect(after.batches - before.batches).toBe(1);
    expect(after.writes - before.writes).toBe(5);
    expect(await store.checkStock(['NEW-ONE'])).toMatchObject({ unknown_skus: ['NEW-ONE'] });
    expect((await store.stockLevels(['LAST-THREE']))[0]).toMatchObject({ on_hand: 3, reserved: 3 });
    await expectAuditOk(store);
  });

  it('a batch is bounded: more writes than fit in one go take several transactions, in arrival order', async () => {
    const { store, path } = await opened();
    const before = store.groupCommitStats();
    const carts = await Promise.all(
      Array.from({ length: 150 }, () => store.addToCart(web, { sku: 'EBOOK', quantity: 1 })),
    );
    const after = store.groupCommitStats();
    expect(after.writes - before.writes).toBe(150);
    expect(after.batches - before.batches).toBe(3);
    expect(after.largest).toBe(64);
    // Arrival order is commit order: the ledger recorded the reserves in the order they were asked for.
    const outside = new Database(path, { readonly: true });
    const ledger = outside
      .prepare("SELECT cart_id FROM stock_movements WHERE kind = 'reserve' ORDER BY id")
      .all() as { cart_id: string }[];
    outside.close();
    expect(ledger.map((row) => row.cart_id)).toEqual(carts.map((cart) => cart.cart_id));
    await expectAuditOk(store);
  });

  it('closing the store first writes what was already submitted', async () => {
    const { store, path } = await opened();
    const adding = store.addToCart(web, { sku: 'TEE-BLK-M', quantity: 2 });
    await store.close();
    const cart = await adding;
    const reopened = openSqliteStore(path, store.options);
    closing.push(() => reopened.close());
    expect((await reopened.getCart(web, cart.cart_id)).item_count).toBe(2);
  });
});

describe('SQLite: a sold-out add_to_cart is refused without the write lock', () => {
  it('answers OUT_OF_STOCK while another connection holds the lock, exactly as the locked decision would', async () => {
    const { store, path, clock } = await opened({ lockTimeoutMs: 300 }, [
      { sku: 'ONE', name: 'The only one', price_minor: 900, currency: 'EUR', stock: 1 },
    ]);
    const first = await store.addToCart(web, { sku: 'ONE', quantity: 1 });
    const other = new Database(path);
    closing.push(async () => void other.close());
    const attempt = (input: Parameters<typeof store.addToCart>[1]) =>
      store.addToCart(web, input).then(
        () => 'ok',
        (error: unknown) => (isStockError(error) ? { code: error.code, details: error.details } : error),
      );

    other.prepare('BEGIN IMMEDIATE').run();
    const lockFree = await attempt({ sku: 'ONE', quantity: 1 });
    // Calls only the locked decision may answer wait for the lock, and here give up: a key may replay a result,
    // a cart's own checks come first.
    const keyed = await attempt({ sku: 'ONE', quantity: 1, idempotencyKey: 'k1' });
    const intoCart = await attempt({ sku: 'ONE', quantity: 1, cartId: first.cart_id });
    other.prepare('ROLLBACK').run();
    expect(keyed).toMatchObject({ code: 'STORE_BUSY' });
    expect(intoCart).toMatchObject({ code: 'STORE_BUSY' });
    const locked = await attempt({ sku: 'ONE', quantity: 1, idempotencyKey: 'k2' });
    expect(locked).toMatchObject({ code: 'OUT_OF_STOCK' });
    expect(lockFree).toEqual(locked);

    // Once the cart expires its hold would be freed by a write: not sold out, so it waits for the lock.
    clock.advance(15 * 60_000 + 1);
    other.prepare('BEGIN IMMEDIATE').run();
    const freed = await attempt({ sku: 'ONE', quantity: 1 });
    other.prepare('ROLLBACK').run();
    expect(freed).toMatchObject({ code: 'STORE_BUSY' });
    expect(await attempt({ sku: 'ONE', quantity: 1 })).toBe('ok');
    await expectAuditOk(store);
  });
});

/** Builds the LD_PRELOAD shim (test/fixtures/write-fault.c) that makes the OS fail SQLite's fsync on cue. */
function buildFaultShim(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const path = join(tempDir('stocklock-shim-').dir, 'write-fault.so');
  const built = spawnSync(
    'cc',
    ['-shared', '-fPIC', '-O2', '-o', path, join(ROOT, 'test/fixtures/write-fault.c'), '-ldl'],
    { encoding: 'utf8' },
  );
  return built.error || built.status !== 0 ? undefined : path;
}
const shim = buildFaultShim();

/**
 * In a child process with the shim loaded: a batch of writes (two reserves and a refusal) whose COMMIT fsync fails
 * with EIO. Prints what each call got, the counters, and the stock after the disk is healed.
 */
const FAILING_COMMIT = `
import { writeFileSync, rmSync } from 'node:fs';
import { openSqliteStore } from '${pathToFileURL(join(ROOT, 'src/storage/sqlite/store.ts')).href}';
import { ManualClock } from '${pathToFileURL(join(ROOT, 'src/domain/clock.ts')).href}';
import { DEFAULT_LIMITS } from '${pathToFileURL(join(ROOT, 'src/domain/rules.ts')).href}';
const [path, control] = process.argv.slice(-2);
const store = openSqliteStore(path, { clock: new ManualClock(), reservationTtlMs: 900000, lockTimeoutMs: 5000, limits: DEFAULT_LIMITS });
const web = { channel: 'web' };
await store.importProducts({ channel: 'cli' }, [{ sku: 'A', name: 'A', price_minor: 100, currency: 'EUR', stock: 3 }]);
await store.addToCart(web, { sku: 'A', quantity: 1 }); // the WAL is under way: the next COMMIT appends, then syncs
writeFileSync(control, 'fsync 5 -wal\\n');
const settled = await Promise.allSettled([
  store.addToCart(web, { sku: 'A', quantity: 1 }),
  store.addToCart(web, { sku: 'A', quantity: 9, idempotencyKey: 'big' }), // keyed: decided in the batch
  store.addToCart(web, { sku: 'A', quantity: 1 }),
]);
rmSync(control);
const [level] = await store.stockLevels(['A']);
const audit = await store.audit();
console.log(JSON.stringify({
  codes: settled.map((r) => (r.status === 'fulfilled' ? 'ok' : r.reason.code)),
  stats: store.groupCommitStats(),
  reserved: level.reserved,
  auditOk: audit.ok,
}));
await store.close();
`;

describe.skipIf(shim === undefined)('SQLite group commit: a COMMIT that fails', () => {
  it('fails every call of its batch with OUTCOME_UNKNOWN, as a lone write gets it, and changes nothing', () => {
    const dir = tempDir().dir;
    const script = join(dir, 'failing-commit.mts');
    writeFileSync(script, FAILING_COMMIT);
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', script, join(dir, 'shop.db'), join(dir, 'fault')],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, LD_PRELOAD: shim ?? '', STOCKLOCK_FAULT_FILE: join(dir, 'fault') },
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}');
    // The refusal too: it was decided on writes that the failed COMMIT undid.
    expect(result.codes).toEqual(['OUTCOME_UNKNOWN', 'OUTCOME_UNKNOWN', 'OUTCOME_UNKNOWN']);
    expect(result.stats.largest).toBe(3);
    // In the running process SQLite rolled the batch back: only the reserve before the fault holds stock.
    expect(result.reserved).toBe(1);
    expect(result.auditOk).toBe(true);
  });
});
