// What the built CLI does when the database is read-only, locked by another process, missing or not a database.
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, type CliResult, ROOT, runCli, stdioClient } from '../helpers/cli.js';
import { call, details, refusalCode, text } from '../helpers/mcp.js';
import { cliForUser, NOBODY } from '../helpers/other-user.js';
import { tempDir } from '../helpers/temp.js';

const DEMO = join(ROOT, 'examples/demo-catalog.json');

/**
 * Root ignores file modes, so a chmod proves nothing when the tests run as root (CI containers do):
 * there the CLI runs as `nobody`, the way a shop's service account would meet a read-only file, from
 * an installed copy nobody can reach (the clone itself may sit in a directory only its owner may enter).
 */
const isRoot = process.getuid?.() === 0;
const asNobody = isRoot ? cliForUser(NOBODY, NOBODY) : undefined;
const readOnlySkip = asNobody && 'unavailable' in asNobody ? asNobody.unavailable : '';
afterAll(() => {
  if (asNobody && !('unavailable' in asNobody)) asNobody.remove();
});

function runCliRestricted(args: string[]): CliResult {
  if (asNobody && !('unavailable' in asNobody)) return asNobody.run(args);
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn' },
    input: '',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A shop the restricted user can reach: under the copy's work area when that user is nobody. */
function shop(): { dir: string; db: string } {
  const dir = asNobody && !('unavailable' in asNobody) ? asNobody.workDir() : tempDir().dir;
  const db = join(dir, 'shop.db');
  expect(runCli(['import', DEMO, '--db', db]).status).toBe(0);
  return { dir, db };
}

/** A refusal a person can read: exit 1, one line on stderr, no stack trace. */
function expectOneLineRefusal(result: CliResult, message: RegExp): void {
  expect(result.status, result.stderr).toBe(1);
  expect(result.stderr).toMatch(message);
  expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

const restore: (() => void)[] = [];
afterEach(() => {
  for (const undo of restore.splice(0).reverse()) undo();
});

/** Sets a mode now and puts the old one back after the test, so the temp directory can be removed. */
function chmodForTest(path: string, mode: number, back: number): void {
  chmodSync(path, mode);
  restore.push(() => chmodSync(path, back));
}

describe.skipIf(readOnlySkip !== '')(
  `a read-only database${readOnlySkip ? ` (skipped: ${readOnlySkip})` : ''}`,
  () => {
    it('a read-only file in a read-only directory: every command refuses in one line, exit 1', () => {
      const { dir, db } = shop();
      chmodForTest(db, 0o444, 0o644);
      chmodForTest(dir, 0o555, 0o755);
      const message =
        /^stocklock: Cannot open database .*shop\.db for writing \(EACCES\): the file is read-only/;
      expectOneLineRefusal(runCliRestricted(['stock', '--db', db]), message);
      expectOneLineRefusal(runCliRestricted(['audit', '--db', db]), message);
      expectOneLineRefusal(runCliRestricted(['restock', 'MUG-WHT', '1', '--db', db]), message);
      expectOneLineRefusal(runCliRestricted(['serve', '--stdio', '--db', db]), message);
    });

    it('a read-only file in a writable directory: the server refuses to start instead of failing every write', () => {
      const { dir, db } = shop();
      chmodForTest(db, 0o444, 0o644);
      if (isRoot) chownSync(dir, NOBODY, NOBODY);
      const result = runCliRestricted(['serve', '--stdio', '--db', db]);
      expectOneLineRefusal(result, /Cannot open database .*shop\.db for writing \(EACCES\)/);
    });

    it('a writable file in a read-only directory: no room for the -wal and -shm files', () => {
      const { dir, db } = shop();
      if (isRoot) chownSync(db, NOBODY, NOBODY);
      chmodForTest(dir, 0o555, 0o755);
      const result = runCliRestricted(['stock', '--db', db]);
      expectOneLineRefusal(
        result,
        /Cannot open database .*shop\.db for writing \(SQLITE_READONLY.*\): .*directory/,
      );
    });
  },
);

describe('a database locked by another process for longer than the lock timeout', () => {
  /** Another process that takes the write lock (BEGIN IMMEDIATE) and holds it until told to commit. */
  async function holdWriteLock(
    db: string,
  ): Promise<{ child: ChildProcessWithoutNullStreams; release: () => Promise<void> }> {
    const script = `
      import Database from 'better-sqlite3';
      const db = new Database(process.argv[1]);
      db.exec('BEGIN IMMEDIATE');
      process.stdout.write('locked\\n');
      process.stdin.once('data', () => {
        db.exec('COMMIT');
        db.close();
        process.stdout.write('released\\n');
        process.exit(0);
      });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, db], { cwd: ROOT });
    restore.push(() => child.kill());
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    const said = async (word: string) => {
      const deadline = Date.now() + 15_000;
      while (!output.includes(`${word}\n`)) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`the lock holder never said "${word}": ${output}`);
        }
        await new Promise((done) => setTimeout(done, 10));
      }
    };
    await said('locked');
    return {
      child,
      release: async () => {
        child.stdin.write('commit\n');
        await said('released');
      },
    };
  }

  it('tool calls get STORE_BUSY with waited_ms, reads still answer, and the server succeeds once the lock is free', async () => {
    const { db } = shop();
    const client = await stdioClient(['--db', db, '--channel', 'web', '--lock-timeout', '300ms']);
    try {
      const lock = await holdWriteLock(db);

      for (let attempt = 0; attempt < 2; attempt++) {
        const busy = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
        expect(refusalCode(busy)).toBe('STORE_BUSY');
        expect(text(busy)).toMatch(
          /^STORE_BUSY: The store is busy \(waited \d+ ms for the lock\)\. Nothing changed/,
        );
        const waited = details(busy).waited_ms as number;
        // The server's own count of the wait it made: the whole --lock-timeout, and not the 5 s default.
        expect(waited).toBeGreaterThanOrEqual(300);
        expect(waited).toBeLessThan(5_000);
      }
      // WAL readers do not need the write lock.
      const stock = await call(client, 'check_stock', { skus: ['MUG-WHT'] });
      expect(stock.isError).toBeFalsy();
      expect(stock.structuredContent).toMatchObject({ products: [{ sku: 'MUG-WHT', available: 60 }] });

      await lock.release();
      const cart = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
      expect(cart.isError, text(cart)).toBeFalsy();
      const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
      const order = await call(client, 'checkout', { cart_id: cartId });
      expect(order.isError, text(order)).toBeFalsy();
    } finally {
      await client.close();
    }
    const levels = JSON.parse(runCli(['stock', 'MUG-WHT', '--json', '--db', db]).stdout);
    expect(levels).toMatchObject([{ sku: 'MUG-WHT', on_hand: 58, reserved: 0 }]);
    expect(runCli(['audit', '--db', db]).stdout).toContain('OK: every invariant holds');
  });
});

describe('a database that is not there or not a database', () => {
  it('a missing directory: serve and audit refuse in one line, exit 1', () => {
    const db = join(tempDir().dir, 'no', 'such', 'dir', 'shop.db');
    const message =
      /^stocklock: Cannot open database .*shop\.db: directory .*no\/such\/dir does not exist\.$/m;
    expectOneLineRefusal(runCli(['serve', '--stdio', '--db', db]), message);
    // audit never creates a database, so it says that there is none yet, and where it looked.
    expectOneLineRefusal(
      runCli(['audit', '--db', db]),
      /^stocklock: no database at .*no\/such\/dir\/shop\.db yet; point --db/m,
    );
  });

  it('a file that is not a database: every command refuses in one line, exit 1, and leaves it alone', () => {
    const dir = tempDir().dir;
    const db = join(dir, 'notes.txt');
    const content = 'These are my notes, not a database. '.repeat(40);
    writeFileSync(db, content);
    const message = /^stocklock: Cannot open database .*notes\.txt: the file is not a SQLite database\.$/m;
    expectOneLineRefusal(runCli(['audit', '--db', db]), message);
    expectOneLineRefusal(runCli(['stock', '--db', db]), message);
    expectOneLineRefusal(runCli(['migrate', '--db', db]), message);
    expectOneLineRefusal(runCli(['serve', '--stdio', '--db', db]), message);
    expect(readFileSync(db, 'utf8')).toBe(content);
  });

  it('a directory given as the database: one line naming the problem', () => {
    const dir = tempDir().dir;
    const db = join(dir, 'shop.db');
    mkdirSync(db);
    expectOneLineRefusal(
      runCli(['stock', '--db', db]),
      /Cannot open database .*shop\.db \(SQLITE_CANTOPEN\): check that it is a file/,
    );
  });
});
