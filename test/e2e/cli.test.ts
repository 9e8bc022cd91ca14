// The `stocklock` command as a merchant uses it: import, stock changes, audit, tokens.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Database } from '../../src/storage/sqlite/driver.js';
import { ROOT, runCli, stdioClient } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

function shop(): { dir: string; db: string } {
  const dir = tempDir().dir;
  const db = join(dir, 'shop.db');
  expect(runCli(['import', join(ROOT, 'examples/demo-catalog.json'), '--db', db]).status).toBe(0);
  return { dir, db };
}

function stockOf(db: string, sku: string): { on_hand: number; reserved: number } {
  return JSON.parse(runCli(['stock', sku, '--json', '--db', db]).stdout)[0];
}

describe('stocklock import', () => {
  it('imports the CSV demo with decimal prices and untracked products', () => {
    const db = join(tempDir().dir, 'csv.db');
    const result = runCli(['import', join(ROOT, 'examples/demo-catalog.csv'), '--db', db]);
    expect(result.stdout).toContain('Imported 3 products from');
    expect(result.stdout).toContain('(3 new, 0 updated)');
    const levels = JSON.parse(runCli(['stock', '--json', '--db', db]).stdout);
    expect(levels).toContainEqual(
      expect.objectContaining({ sku: 'EBOOK-GUIDE', track_stock: false, available: null }),
    );
    expect(levels).toContainEqual(expect.objectContaining({ sku: 'JACKET-LTD', on_hand: 1 }));
  });

  it.each([
    ['sku,name,price,currency,stock\nA-1,Apple,1.00,EUR,5\nB-2,Pear,1.005,EUR,5\n', 'line 3: price "1.005"'],
    ['sku,name,price,currency,stock\nA-1,Apple,1.00,EUR,5\n,Nameless,1.00,EUR,5\n', 'line 3: sku is missing'],
    ['sku,name,price,currency,stock\nA-1,Apple,1.00,EUR,-5\n', 'line 2: stock must be a whole number'],
    ['sku,name,price,currency,stock\nA 1,Apple,1.00,EUR,5\n', 'line 2: sku: "A 1" is not a SKU'],
    ['sku,name,price,currency,stock\nA-1,Apple,1.00,EURO,5\n', 'line 2: currency'],
    ['sku,name,price,currency,stock\nA-1,Apple,1.00,EUR,5\nA-1,Apple,1.00,EUR,5\n', 'appears twice'],
    [
      'sku,name,price,currency,stock\nA-1,Ap\u0000ple,1.00,EUR,5\n',
      'line 2: name: must be valid Unicode text',
    ],
  ])('refuses a bad CSV row, naming its line, and imports nothing (%#)', (csv, message) => {
    const { dir, db } = shop();
    const file = join(dir, 'bad.csv');
    writeFileSync(file, csv);
    const result = runCli(['import', file, '--db', db]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(message);
    expect(runCli(['stock', 'A-1', '--json', '--db', db]).stdout.trim()).toBe('[]');
  });

  it('names the line of a bad item in a JSON array', () => {
    const { dir, db } = shop();
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      '[\n  {"sku":"A-1","name":"Apple","price":"1.00","currency":"EUR","stock":1},\n  {"sku":"B-2","name":"Pear","price_minor":-3,"currency":"EUR","stock":1}\n]\n',
    );
    const result = runCli(['import', file, '--db', db]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('line 3 (item 2): price_minor must be a whole number');
  });
});

describe('stocklock import against live carts', () => {
  it('names the file line of a row the store refuses inside the transaction, and imports nothing', async () => {
    const { dir, db } = shop();
    const client = await stdioClient(['--db', db, '--channel', 'web']);
    try {
      const cart = await client.callTool({ name: 'add_to_cart', arguments: { sku: 'MUG-WHT', quantity: 3 } });
      expect(cart.isError).toBeFalsy();
    } finally {
      await client.close();
    }
    const file = join(dir, 'recount.csv');
    writeFileSync(file, 'sku,name,price,currency,stock\nCAP-NVY,Cap,22.00,EUR,31\nMUG-WHT,Mug,14.50,EUR,2\n');
    const result = runCli(['import', file, '--set-stock', '--db', db]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      'BELOW_RESERVED: line 3: Cannot set on-hand of "MUG-WHT" to 2: carts hold 3',
    );
    expect(stockOf(db, 'CAP-NVY').on_hand).toBe(30);
  });

  it('refuses a stock figure above the maximum before touching the database', () => {
    const { dir, db } = shop();
    const file = join(dir, 'huge.csv');
    writeFileSync(
      file,
      'sku,name,price,currency,stock\nCAP-NVY,Cap,22.00,EUR,1\nMUG-WHT,Mug,14.50,EUR,2000000000\n',
    );
    const result = runCli(['import', file, '--db', db]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('line 3: stock must be a whole number from 0 to 1000000000');
  });
});

describe('stock changes and the audit', () => {
  it('restocks, sets stock and refuses an unknown SKU with its code', () => {
    const { db } = shop();
    expect(runCli(['restock', 'JACKET-LTD', '4', '--db', db]).status).toBe(0);
    expect(stockOf(db, 'JACKET-LTD').on_hand).toBe(5);
    expect(runCli(['set-stock', 'JACKET-LTD', '2', '--note', 'stock take', '--db', db]).status).toBe(0);
    expect(stockOf(db, 'JACKET-LTD').on_hand).toBe(2);
    const unknown = runCli(['restock', 'NOPE', '1', '--db', db]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('UNKNOWN_SKU');
    expect(runCli(['audit', '--db', db]).status).toBe(0);
  });

  it('exits 1 with a report when the database has been tampered with', () => {
    const { db } = shop();
    const conn = new Database(db);
    conn.prepare("UPDATE products SET on_hand = on_hand + 3 WHERE sku = 'MUG-WHT'").run();
    conn.close();
    const audit = runCli(['audit', '--db', db]);
    expect(audit.status).toBe(1);
    expect(audit.stdout).toContain('invariant 3 MUG-WHT');
    const json = JSON.parse(runCli(['audit', '--json', '--db', db]).stdout);
    expect(json.ok).toBe(false);
  });

  it('audits incrementally from the last clean audit; --full checks the whole history', () => {
    const { db } = shop();
    const first = runCli(['audit', '--db', db]);
    expect(first.status).toBe(0);
    expect(first.stdout).not.toContain('Incremental');
    expect(runCli(['restock', 'MUG-WHT', '2', '--db', db]).status).toBe(0);
    const next = runCli(['audit', '--db', db]);
    expect(next.status).toBe(0);
    expect(next.stdout).toContain('Incremental: the ledger up to movement 13');

    // An old ledger row's quantity changed by hand: its fingerprint no longer matches.
    const conn = new Database(db);
    conn.prepare('UPDATE stock_movements SET quantity = quantity + 1 WHERE id = 1').run();
    const changed = runCli(['audit', '--db', db]);
    expect(changed.status).toBe(1);
    expect(changed.stdout).toContain('invariant 3 audit checkpoint');
    conn.prepare('UPDATE stock_movements SET quantity = quantity - 1 WHERE id = 1').run();
    expect(runCli(['audit', '--db', db]).status).toBe(0);

    // An old row moved to another SKU keeps every sum the fingerprint checks: only --full sees it.
    conn.prepare("UPDATE stock_movements SET sku = 'JACKET-LTD' WHERE sku = 'MUG-WHT' AND id <= 13").run();
    conn.close();
    expect(runCli(['audit', '--db', db]).status).toBe(0);
    const full = runCli(['audit', '--full', '--db', db]);
    expect(full.status).toBe(1);
    expect(full.stdout).toContain('invariant 3 MUG-WHT');
  });

  it('sweeps nothing on a fresh shop and reports it', () => {
    const { db } = shop();
    expect(runCli(['sweep', '--db', db]).stdout).toContain('Released 0 units from 0 expired carts');
  });

  it('takes the database from STOCKLOCK_DB and refuses a missing directory clearly', () => {
    const { db } = shop();
    expect(JSON.parse(runCli(['stock', '--json'], { STOCKLOCK_DB: db }).stdout)).toHaveLength(13);
    const missing = runCli([
      'import',
      join(ROOT, 'examples/demo-catalog.csv'),
      '--db',
      join(tempDir().dir, 'no/such/dir/x.db'),
    ]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/directory .* does not exist/);
    expect(missing.stderr).not.toMatch(/at .*\.js:\d+/);
  });
});

describe('stocklock token', () => {
  it('prints a token once, lists only its id, and revokes it', () => {
    const { db } = shop();
    const created = runCli(['token', 'create', '--channel', 'telegram', '--label', 'bot', '--db', db]);
    expect(created.status).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^slk_[\w-]{43}$/);
    const list = runCli(['token', 'list', '--json', '--db', db]);
    expect(list.stdout).not.toContain(token);
    const [record] = JSON.parse(list.stdout);
    expect(record).toMatchObject({ channel: 'telegram', admin: false, label: 'bot', revoked_at: null });
    const conn = new Database(db, { readonly: true });
    const stored = JSON.stringify(conn.prepare('SELECT * FROM api_tokens').all());
    conn.close();
    expect(stored).not.toContain(token);
    expect(runCli(['token', 'revoke', record.id, '--db', db]).status).toBe(0);
    expect(JSON.parse(runCli(['token', 'list', '--json', '--db', db]).stdout)[0].revoked_at).not.toBeNull();
    expect(runCli(['token', 'revoke', record.id, '--db', db]).status).toBe(1);
  });

  it('refuses a malformed channel name', () => {
    const { db } = shop();
    const result = runCli(['token', 'create', '--channel', 'Bad Channel!', '--db', db]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('channel "Bad Channel!" must be');
  });
});
