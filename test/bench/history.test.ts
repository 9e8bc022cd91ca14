// The year-of-sales history the bench writes straight into the tables is one the audit finds balanced.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { historySize, historyStatements } from '../../bench/history.js';
import { benchStoreOptions } from '../../bench/lib.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { tempDir } from '../helpers/temp.js';

describe('bench: a generated year of sales', () => {
  it('balances: every invariant holds, with sold, released, expired and open carts', async () => {
    const tmp = tempDir('stocklock-history-');
    const path = join(tmp.dir, 'year.db');
    await openSqliteStore(path, benchStoreOptions('NORMAL')).close();
    const size = historySize(2_000);
    const db = new Database(path);
    db.exec('BEGIN');
    for (const sql of historyStatements(size, Date.now(), 'sqlite')) db.exec(sql);
    db.exec('COMMIT');
    const statuses = db
      .prepare('SELECT status, COUNT(*) AS n FROM carts GROUP BY status ORDER BY status')
      .all();
    db.close();
    expect(statuses).toEqual([
      { status: 'checked_out', n: 2_000 },
      { status: 'expired', n: 400 },
      { status: 'open', n: 100 },
      { status: 'released', n: 400 },
    ]);
    const store = openSqliteStore(path, benchStoreOptions('NORMAL'));
    try {
      const report = await store.audit();
      expect(report.violations).toEqual([]);
      expect(report.checked).toMatchObject({ products: size.skus, orders: 2_000, carts: 2_900 });
    } finally {
      await store.close();
      tmp.remove();
    }
  });
});
