// A database that stops taking writes while the server runs (full disk, read-only filesystem, read-only PostgreSQL),
// and a SQLite commit whose fsync fails, met by real MCP clients of the built CLI: a refusal naming the cause.
import { spawnSync } from 'node:child_process';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli, stdioClient } from '../helpers/cli.js';
import { call, details, refusalCode, text } from '../helpers/mcp.js';
import { createTestDatabase, POSTGRES_ADMIN_URL, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const DEMO = join(ROOT, 'examples/demo-catalog.json');
const SKU = 'TEE-BLK-M';
const ENOSPC = 28;
const EROFS = 30;
const EIO = 5;

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const done of cleanup.splice(0).reverse()) await done();
});

async function client(args: string[], env: Record<string, string> = {}): Promise<Client> {
  const connected = await stdioClient(['--channel', 'web', ...args], env);
  cleanup.push(() => connected.close());
  return connected;
}

function available(result: Awaited<ReturnType<typeof call>>): number {
  return (result.structuredContent as { products: { available: number }[] }).products[0]?.available ?? -1;
}

/** Builds the LD_PRELOAD shim (test/fixtures/write-fault.c) that makes the OS fail SQLite's writes on cue. */
function buildFaultShim(): { path?: string; reason?: string } {
  const path = join(tempDir('stocklock-shim-').dir, 'write-fault.so');
  const built = spawnSync(
    'cc',
    ['-shared', '-fPIC', '-O2', '-o', path, join(ROOT, 'test/fixtures/write-fault.c'), '-ldl'],
    { encoding: 'utf8' },
  );
  if (built.error) return { reason: `no C compiler to build the fault shim (${built.error.message})` };
  if (built.status !== 0) return { reason: `the fault shim did not build: ${built.stderr}` };
  return { path };
}

const shim =
  process.platform === 'linux' ? buildFaultShim() : { reason: 'LD_PRELOAD fault injection is Linux only' };

describe.skipIf(shim.path === undefined)(
  `SQLite: the disk refuses writes while serving${shim.reason ? ` (skipped: ${shim.reason})` : ''}`,
  () => {
    let db: string;
    let control: string;
    let env: Record<string, string>;

    function freshShop(): void {
      const dir = tempDir().dir;
      db = join(dir, 'shop.db');
      control = join(dir, 'fault');
      expect(runCli(['import', DEMO, '--db', db]).status).toBe(0);
      env = { LD_PRELOAD: shim.path ?? '', STOCKLOCK_FAULT_FILE: control };
    }

    /** From now on the OS fails this operation on the database's WAL file with this errno. */
    function fail(operation: 'write' | 'fsync', errno: number): void {
      writeFileSync(control, `${operation} ${errno} -wal\n`);
    }
    const heal = () => rmSync(control, { force: true });

    /** The RESERVED column of `stocklock stock SKU`. */
    function reserved(path: string): string | undefined {
      const stock = runCli(['stock', SKU, '--db', path]);
      expect(stock.status, stock.stderr).toBe(0);
      const row = stock.stdout.split('\n').find((line) => line.trim().split(/\s+/)[0] === SKU);
      return row?.trim().split(/\s+/).at(-2);
    }

    it.each([
      [ENOSPC, 'disk_full', /disk holding the database file is full/],
      [EROFS, 'write_failed', /filesystem turned read-only/],
    ])(
      'errno %i on the WAL: add_to_cart is STORE_READ_ONLY (%s); reads go on; nothing changed',
      async (errno, cause, why) => {
        freshShop();
        const shop = await client(['--db', db], env);
        const before = available(await call(shop, 'check_stock', { skus: [SKU] }));

        fail('write', errno);
        const refused = await call(shop, 'add_to_cart', { sku: SKU, quantity: 1 });
        expect(refusalCode(refused)).toBe('STORE_READ_ONLY');
        expect(details(refused)).toMatchObject({ cause });
        expect(text(refused)).toMatch(why);
        expect(text(refused)).toMatch(/Nothing was changed/);
        expect(available(await call(shop, 'check_stock', { skus: [SKU] }))).toBe(before);

        // Before: the same failure came back as INTERNAL_ERROR. Once the disk is back, writes go on.
        heal();
        const added = await call(shop, 'add_to_cart', { sku: SKU, quantity: 1 });
        expect(added.isError, text(added)).toBeFalsy();
        expect(available(await call(shop, 'check_stock', { skus: [SKU] }))).toBe(before - 1);
        await shop.close();
        const audit = runCli(['audit', '--db', db]);
        expect(audit.status, audit.stdout + audit.stderr).toBe(0);
      },
    );

    it('an fsync failing at COMMIT is OUTCOME_UNKNOWN: the cart may come back; the keyed retry makes one either way', async () => {
      freshShop();
      const shop = await client(['--db', db], env);
      const args = { sku: SKU, quantity: 2, idempotency_key: 'voice-order-1' };
      // Another sale first, so the WAL file is under way: the next commit appends its frames, then fsyncs.
      // (On an empty WAL the header's own fsync comes first; failing there writes no frame at all.)
      const earlier = await call(shop, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
      expect(earlier.isError, text(earlier)).toBeFalsy();

      fail('fsync', EIO);
      const refused = await call(shop, 'add_to_cart', args);
      expect(refusalCode(refused)).toBe('OUTCOME_UNKNOWN');
      expect(details(refused)).toMatchObject({ tool: 'add_to_cart' });
      expect(text(refused)).toMatch(
        /SQLITE_IOERR_FSYNC.*may or may not have been made.*same idempotency_key/,
      );

      // The process dies before anything else is written.
      heal();
      const pid = (shop.transport as StdioClientTransport).pid;
      expect(pid).toBeTypeOf('number');
      process.kill(pid as number, 'SIGKILL');
      await shop.close().catch(() => undefined);

      // Why "unknown": SQLite rolled back in memory, but the commit frame is in the WAL file, and a recovery
      // that reads the WAL file without its -shm index (a copy of the files, a restore) brings the cart back.
      const recovered = join(tempDir().dir, 'shop.db');
      copyFileSync(db, recovered);
      copyFileSync(`${db}-wal`, `${recovered}-wal`);
      expect(reserved(recovered)).toBe('2');

      // On either copy of the shop, the keyed retry ends with exactly one cart of 2.
      for (const path of [db, recovered]) {
        const again = await client(['--db', path], env);
        const first = await call(again, 'add_to_cart', args);
        expect(first.isError, text(first)).toBeFalsy();
        expect((first.structuredContent as { item_count: number }).item_count).toBe(2);
        const replay = await call(again, 'add_to_cart', args);
        expect(replay.structuredContent).toEqual(first.structuredContent);
        await again.close();
        expect(reserved(path)).toBe('2');
        const audit = runCli(['audit', '--db', path]);
        expect(audit.status, audit.stdout + audit.stderr).toBe(0);
      }
    });
  },
);

describePostgres('PostgreSQL turns read-only while serving', () => {
  let pgdb: TestDatabase;
  beforeAll(async () => {
    pgdb = await createTestDatabase();
    expect(runCli(['import', DEMO, '--db', pgdb.url]).status).toBe(0);
    return () => pgdb.drop();
  });

  /** New sessions follow the database's setting; ending the server's sessions makes its pool reconnect. */
  async function setReadOnly(on: boolean): Promise<void> {
    // From the maintenance database: sessions on this one are read-only themselves once the setting is on.
    const maintenance = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
    await maintenance.connect();
    try {
      await maintenance.query(
        `ALTER DATABASE "${pgdb.name}" SET default_transaction_read_only = ${on ? 'on' : 'off'}`,
      );
    } finally {
      await maintenance.end();
    }
    await pgdb.query(
      "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'stocklock'",
    );
  }

  it('default_transaction_read_only (as on a standby): STORE_READ_ONLY naming it; reads go on; writes resume', async () => {
    const shop = await client(['--db', pgdb.url, '--pool-size', '2']);
    cleanup.push(() => setReadOnly(false));
    const before = available(await call(shop, 'check_stock', { skus: [SKU] }));

    await setReadOnly(true);
    const refused = await call(shop, 'add_to_cart', { sku: SKU, quantity: 1 });
    expect(refusalCode(refused)).toBe('STORE_READ_ONLY');
    expect(details(refused)).toMatchObject({ cause: 'read_only_database' });
    expect(text(refused)).toMatch(/PostgreSQL server accepts no writes.*default_transaction_read_only/);
    expect(available(await call(shop, 'check_stock', { skus: [SKU] }))).toBe(before);

    await setReadOnly(false);
    const added = await call(shop, 'add_to_cart', { sku: SKU, quantity: 1 });
    expect(added.isError, text(added)).toBeFalsy();
    expect(available(await call(shop, 'check_stock', { skus: [SKU] }))).toBe(before - 1);
    const audit = runCli(['audit', '--db', pgdb.url]);
    expect(audit.status, audit.stdout + audit.stderr).toBe(0);
  });
});
