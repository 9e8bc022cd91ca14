// What every command shares: the version, the ledger channel of CLI actions, and a store opened for one command.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type StoreFlags, storeOptions } from '../config.js';
import { databaseExists, describeDatabase, openStore } from '../storage/open.js';
import type { InventoryStore } from '../storage/store.js';

export const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** A word for a POSIX shell: quoted unless it is plainly safe. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * ` --db …` for a command line printed as a hint, so it works as printed from any directory; empty for
 * the default database. A PostgreSQL URL is printed without its password (libpq's PGPASSWORD or
 * ~/.pgpass supply it).
 */
export function dbFlag(db: string): string {
  if (db === './stocklock.db' || db === 'stocklock.db') return '';
  return ` --db ${shellWord(describeDatabase(db))}`;
}

/** Where stdout is data (`--json`, a token), the database a command used is named on stderr instead. */
export function noteDatabase(db: string): void {
  process.stderr.write(`Database: ${describeDatabase(db)}\n`);
}

/** A flag or argument the command cannot use: reported with a pointer to the command's --help. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command line whose --help explains it, e.g. `stocklock serve`. */
    readonly command: string,
  ) {
    super(message);
  }
}

/** Where a flag's value came from, for a message that names what to change. */
export function flagSource(command: Command, option: string, flag: string, env: string): string {
  const source = command.getOptionValueSource(option);
  if (source === 'env') return `${env} (environment)`;
  if (source === 'default') return `the default ${flag}`;
  return flag;
}

/** CLI admin actions are recorded in the ledger under this channel. */
export const CLI_CHANNEL = { channel: 'cli' };

export interface StoreUse {
  /** Only `import` and `migrate` (and the server) may make a new database; every other command refuses. */
  create?: boolean;
  /** False for commands that only read: they leave no writers-queue file beside a database (a backup's, say). */
  writes?: boolean;
}

/** Refuses, in one line naming the path and `--db`, when the database the flags name does not exist yet. */
export async function requireDatabase(db: string): Promise<void> {
  // An empty STOCKLOCK_DB would otherwise name the current directory.
  if (db.trim() === '')
    throw new Error('--db (or STOCKLOCK_DB) is empty; give a SQLite file path or a postgres:// URL');
  if (await databaseExists(db)) return;
  throw new Error(
    `no database at ${describeDatabase(db)} yet; point --db (or STOCKLOCK_DB) at yours, or create one with \`stocklock import FILE\` or \`stocklock migrate\``,
  );
}

/**
 * Opens the store the flags name (migrating it), runs `fn`, and closes the store whatever happens.
 * Without `create`, a database that does not exist yet is refused instead of made empty.
 */
export async function withStore<T>(
  flags: StoreFlags,
  fn: (store: InventoryStore) => Promise<T>,
  use: StoreUse = {},
): Promise<T> {
  if (!use.create) await requireDatabase(flags.db);
  const store = await openStore(flags.db, { ...storeOptions(flags), queueWriters: use.writes !== false });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
