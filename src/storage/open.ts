// Chooses the store from --db: a postgres:// URL is PostgreSQL, anything else a SQLite file path.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { isPostgresUrl, redactUrl } from './database-url.js';
import { openSqliteStore } from './sqlite/store.js';
import type { InventoryStore, StoreOptions } from './store.js';

export { describeDatabase, isPostgresUrl, redactUrl } from './database-url.js';

/**
 * Whether stocklock has made this database already: a non-empty SQLite file, or a PostgreSQL database
 * holding the products table. Opening a store creates and migrates what is missing, which commands
 * that only look at or change an existing stock pool must not do silently.
 */
export async function databaseExists(db: string): Promise<boolean> {
  if (!isPostgresUrl(db)) {
    const file = resolve(db);
    if (!existsSync(file)) return false;
    // Something that is not a file (a directory, say) is left to the open, which names the problem.
    const stat = statSync(file);
    return !stat.isFile() || stat.size > 0;
  }
  // Loaded only for PostgreSQL, like the PostgreSQL store: SQLite commands never load the driver.
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: db, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const result = await client.query<{ present: boolean }>(
      "SELECT to_regclass('products') IS NOT NULL AS present",
    );
    return result.rows[0]?.present === true;
  } catch (error) {
    throw new Error(`Cannot open database ${redactUrl(db)}: ${(error as Error).message}`, { cause: error });
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function openStore(db: string, options: StoreOptions): Promise<InventoryStore> {
  if (isPostgresUrl(db)) {
    const { openPostgresStore } = await import('./postgres/store.js');
    return openPostgresStore(db, options);
  }
  return openSqliteStore(db, options);
}
