// Chooses the store from --db: a postgres:// URL is PostgreSQL, anything else a SQLite file path.

import { openSqliteStore } from './sqlite/store.js';
import type { InventoryStore, StoreOptions } from './store.js';

export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** The database named for a person or a log: a PostgreSQL URL loses its password. */
export function redactUrl(db: string): string {
  if (!isPostgresUrl(db)) return db;
  try {
    const parsed = new URL(db);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://…';
  }
}

export async function openStore(db: string, options: StoreOptions): Promise<InventoryStore> {
  if (isPostgresUrl(db)) {
    const { openPostgresStore } = await import('./postgres/store.js');
    return openPostgresStore(db, options);
  }
  return openSqliteStore(db, options);
}
