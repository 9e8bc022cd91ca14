// Chooses the store from --db: a postgres:// URL is PostgreSQL, anything else a SQLite file path.

import { openSqliteStore } from './sqlite/store.js';
import type { InventoryStore, StoreOptions } from './store.js';

export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

export async function openStore(db: string, options: StoreOptions): Promise<InventoryStore> {
  if (isPostgresUrl(db)) {
    const { openPostgresStore } = await import('./postgres/store.js');
    return openPostgresStore(db, options);
  }
  return openSqliteStore(db, options);
}
