// Opens the console's read connection from --db: a postgres:// URL is PostgreSQL, anything else a SQLite file.
import type { Clock } from '../domain/clock.js';
import type { ConsoleQueries } from './console-queries.js';
import { isPostgresUrl } from './database-url.js';

/** The console's own connection to the database the store uses (the store must have opened it first). */
export async function openConsoleQueries(db: string, clock: Clock): Promise<ConsoleQueries> {
  if (isPostgresUrl(db)) {
    const { openPostgresConsoleQueries } = await import('./postgres/console-queries.js');
    return openPostgresConsoleQueries(db, clock);
  }
  const { openSqliteConsoleQueries } = await import('./sqlite/console-queries.js');
  return openSqliteConsoleQueries(db, clock);
}
