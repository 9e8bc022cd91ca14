// Naming a database: a postgres:// URL is PostgreSQL, anything else a SQLite file path.
import { resolve } from 'node:path';

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

/**
 * The database named so a person can tell which one it is: a SQLite file by its absolute path (the
 * default `./stocklock.db` depends on the directory), PostgreSQL as `postgres://user@host:port/db`
 * with no password and no query string (which may carry one).
 */
export function describeDatabase(db: string): string {
  if (!isPostgresUrl(db)) return db === ':memory:' ? db : resolve(db);
  try {
    const parsed = new URL(db);
    const user = parsed.username ? `${parsed.username}@` : '';
    return `postgres://${user}${parsed.host}${parsed.pathname}`;
  } catch {
    return 'postgres://…';
  }
}
