// Real SQLite stores on temp files for tests, plus a small catalog.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS, type Limits } from '../../src/domain/rules.js';
import type { ImportRow } from '../../src/domain/types.js';
import { openSqliteStore, type SqliteStore } from '../../src/storage/sqlite/store.js';
import type { StoreOptions } from '../../src/storage/store.js';

export function tempDir(prefix = 'stocklock-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const CATALOG: ImportRow[] = [
  { sku: 'TEE-BLK-M', name: 'T-shirt black M', price_minor: 2400, currency: 'EUR', stock: 10 },
  { sku: 'JACKET-LTD', name: 'Limited jacket', price_minor: 14900, currency: 'EUR', stock: 1 },
  { sku: 'MUG-WHT', name: 'Enamel mug', price_minor: 1450, currency: 'EUR', stock: 5 },
  {
    sku: 'EBOOK',
    name: 'Care guide e-book',
    price_minor: 499,
    currency: 'EUR',
    stock: 0,
    track_stock: false,
  },
  { sku: 'USD-CAP', name: 'Cap priced in dollars', price_minor: 2000, currency: 'USD', stock: 5 },
];

export interface TestStore {
  store: SqliteStore;
  clock: ManualClock;
  path: string;
}

export async function sqliteStore(
  overrides: Omit<Partial<StoreOptions>, 'limits'> & { limits?: Partial<Limits> } = {},
  catalog: ImportRow[] = CATALOG,
): Promise<TestStore> {
  const clock = new ManualClock();
  const path = join(tempDir(), 'stocklock.db');
  const store = openSqliteStore(path, {
    clock,
    reservationTtlMs: 15 * 60_000,
    lockTimeoutMs: 5_000,
    ...overrides,
    limits: { ...DEFAULT_LIMITS, ...overrides.limits },
  });
  if (catalog.length > 0) await store.importProducts({ channel: 'cli' }, catalog);
  return { store, clock, path };
}
