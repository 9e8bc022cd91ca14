// `stocklock backup`: an online copy of the SQLite database taken while a server keeps selling, and the restore.
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, runCliAsync, stdioClient } from '../helpers/cli.js';
import { call, text } from '../helpers/mcp.js';
import { tempDir } from '../helpers/temp.js';

const DEMO = join(ROOT, 'examples/demo-catalog.json');

function shop(): { dir: string; db: string } {
  const dir = tempDir().dir;
  const db = join(dir, 'shop.db');
  expect(runCli(['import', DEMO, '--db', db]).status).toBe(0);
  return { dir, db };
}

function audit(db: string): { ok: boolean; checked: { carts: number; orders: number; movements: number } } {
  const result = runCli(['audit', '--json', '--db', db]);
  // stdout is the report; the database it read is named on stderr, and nothing else is there.
  expect(result.stderr).toBe(`Database: ${db}\n`);
  return JSON.parse(result.stdout);
}

/** Buys in a loop until stopped: every call is a write transaction (add, then checkout or release). */
function keepSelling(client: Client): { writes: () => number; stop: () => Promise<void> } {
  let writes = 0;
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const cart = await call(client, 'add_to_cart', { sku: 'STICKER-PACK', quantity: 1 });
      expect(cart.isError, text(cart)).toBeFalsy();
      const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
      const next =
        i % 5 === 0
          ? await call(client, 'checkout', { cart_id: cartId })
          : await call(client, 'release_cart', { cart_id: cartId });
      expect(next.isError, text(next)).toBeFalsy();
      writes += 2;
    }
  })();
  return {
    writes: () => writes,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

async function until(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

describe('stocklock backup', () => {
  it('copies the database while another process writes; the copy audits clean and lists its stock', async () => {
    const { dir, db } = shop();
    const copy = join(dir, 'backup.db');
    const client = await stdioClient(['--db', db, '--channel', 'web']);
    const seller = keepSelling(client);
    try {
      await until(() => seller.writes() >= 20);
      const before = seller.writes();
      const backup = await runCliAsync(['backup', copy, '--db', db]);
      const during = seller.writes() - before;
      expect(backup.stderr).toBe('');
      expect(backup.status).toBe(0);
      expect(backup.stdout).toMatch(/^Backed up .*shop\.db to .*backup\.db \(\d+ bytes\)\.\n$/);
      // The server kept committing while the backup command started, copied and finished.
      expect(during).toBeGreaterThan(0);
      const after = seller.writes();
      await until(() => seller.writes() >= after + 4);
    } finally {
      await seller.stop();
      await client.close();
    }

    expect(existsSync(`${copy}-wal`)).toBe(false);
    const copied = audit(copy);
    expect(copied.ok).toBe(true);
    expect(copied.checked.carts).toBeGreaterThanOrEqual(10);
    const live = audit(db);
    expect(live.ok).toBe(true);
    // A snapshot from the middle of the run: some of the sales, not those made after it.
    expect(copied.checked.carts).toBeLessThan(live.checked.carts);

    const stock = runCli(['stock', '--json', '--db', copy]);
    expect(stock.status).toBe(0);
    const levels = JSON.parse(stock.stdout) as { sku: string; on_hand: number; reserved: number }[];
    expect(levels).toHaveLength(13);
    const stickers = levels.find((level) => level.sku === 'STICKER-PACK');
    expect(stickers?.on_hand).toBe(200 - copied.checked.orders);
    expect(runCli(['audit', '--db', copy]).stdout).toContain('OK: every invariant holds');
  });

  it('refuses to overwrite an existing file unless --force, and then replaces it', () => {
    const { dir, db } = shop();
    const copy = join(dir, 'backup.db');
    writeFileSync(copy, 'an older backup');
    const refused = runCli(['backup', copy, '--db', db]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      `stocklock: ${copy} already exists; choose another file, or pass --force to replace it\n`,
    );
    expect(runCli(['backup', copy, '--db', db, '--force']).status).toBe(0);
    expect(audit(copy).ok).toBe(true);
  });

  it('refuses a missing source database, a missing target directory and a PostgreSQL URL, in one line each', () => {
    const { dir, db } = shop();
    const cases: [string[], RegExp][] = [
      [['backup', join(dir, 'b.db'), '--db', join(dir, 'typo.db')], /no database at .*typo\.db/],
      [['backup', join(dir, 'no/such/dir/b.db'), '--db', db], /directory .*no\/such\/dir does not exist/],
      [
        ['backup', join(dir, 'b.db'), '--db', 'postgres://stocklock@127.0.0.1:1/shop'],
        /use pg_dump|with pg_dump/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = runCli(args);
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(existsSync(join(dir, 'typo.db'))).toBe(false);
  });

  it('restores as the README says: stop, copy the backup over the database, remove -wal/-shm, start', async () => {
    const { dir, db } = shop();
    const copy = join(dir, 'backup.db');
    expect(runCli(['restock', 'JACKET-LTD', '4', '--db', db]).status).toBe(0);
    expect(runCli(['backup', copy, '--db', db]).status).toBe(0);
    // Sales after the backup: the restore takes the shop back to before them.
    const client = await stdioClient(['--db', db, '--channel', 'web']);
    try {
      const cart = await call(client, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 5 });
      await call(client, 'checkout', { cart_id: (cart.structuredContent as { cart_id: string }).cart_id });
    } finally {
      await client.close();
    }
    expect(JSON.parse(runCli(['stock', 'JACKET-LTD', '--json', '--db', db]).stdout)[0].on_hand).toBe(0);

    copyFileSync(copy, db);
    for (const suffix of ['-wal', '-shm']) rmSync(`${db}${suffix}`, { force: true });
    expect(JSON.parse(runCli(['stock', 'JACKET-LTD', '--json', '--db', db]).stdout)[0].on_hand).toBe(5);
    expect(audit(db)).toMatchObject({ ok: true, checked: { orders: 0 } });
  });
});
