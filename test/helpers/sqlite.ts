// Real SQLite stores on temp files for tests, seeded with SHOP_CATALOG unless told otherwise.
import { join } from 'node:path';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS, type Limits } from '../../src/domain/rules.js';
import type { ImportRow } from '../../src/domain/types.js';
import { openSqliteStore, type SqliteStore } from '../../src/storage/sqlite/store.js';
import type { StoreOptions } from '../../src/storage/store.js';
import { SHOP_CATALOG } from './catalog.js';
import { tempDir } from './temp.js';

export interface TestStore {
  store: SqliteStore;
  clock: ManualClock;
  path: string;
}

export async function sqliteStore(
  overrides: Omit<Partial<StoreOptions>, 'limits'> & { limits?: Partial<Limits> } = {},
  catalog: ImportRow[] = SHOP_CATALOG,
): Promise<TestStore> {
  const clock = new ManualClock();
  const path = join(tempDir().dir, 'stocklock.db');
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
