// Durability: an acknowledged sale survives power loss by default (synchronous=FULL); NORMAL is an explicit opt-in.
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { addStoreOptions, type StoreFlags, storeOptions } from '../../src/config.js';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { openSqliteStore, type SqliteStore } from '../../src/storage/sqlite/store.js';
import type { StoreOptions } from '../../src/storage/store.js';
import { tempDir } from '../helpers/temp.js';

const FULL = 2;
const NORMAL = 1;

const open: SqliteStore[] = [];
afterEach(async () => {
  vi.unstubAllEnvs();
  await Promise.all(open.splice(0).map((store) => store.close()));
});

function openStore(options: Partial<StoreOptions>): SqliteStore {
  const store = openSqliteStore(join(tempDir().dir, 'stocklock.db'), {
    clock: new ManualClock(),
    reservationTtlMs: 60_000,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 1_000,
    ...options,
  });
  open.push(store);
  return store;
}

/** `synchronous` belongs to a connection, so only the store's own connection can tell. */
function pragma(store: SqliteStore, name: string): unknown {
  const db = Reflect.get(store, 'db') as Database.Database;
  return db.pragma(name, { simple: true });
}

/** The options the CLI builds from its flags and STOCKLOCK_ environment. */
function cliOptions(args: string[]): StoreOptions {
  const command = addStoreOptions(new Command()).exitOverride();
  command.parse(args, { from: 'user' });
  return storeOptions(command.opts<StoreFlags>());
}

describe('SQLite durability', () => {
  it('a store opened with defaults commits with synchronous=FULL, in WAL mode', () => {
    const store = openStore({});
    expect(pragma(store, 'synchronous')).toBe(FULL);
    expect(pragma(store, 'journal_mode')).toBe('wal');
  });

  it('synchronous: NORMAL opens with synchronous=NORMAL', () => {
    expect(pragma(openStore({ synchronous: 'NORMAL' }), 'synchronous')).toBe(NORMAL);
    expect(pragma(openStore({ synchronous: 'FULL' }), 'synchronous')).toBe(FULL);
  });

  it('the command line defaults to FULL; --synchronous and STOCKLOCK_SYNCHRONOUS choose NORMAL', () => {
    expect(pragma(openStore(cliOptions([])), 'synchronous')).toBe(FULL);
    expect(pragma(openStore(cliOptions(['--synchronous', 'NORMAL'])), 'synchronous')).toBe(NORMAL);
    vi.stubEnv('STOCKLOCK_SYNCHRONOUS', 'NORMAL');
    expect(pragma(openStore(cliOptions([])), 'synchronous')).toBe(NORMAL);
    expect(pragma(openStore(cliOptions(['--synchronous', 'FULL'])), 'synchronous')).toBe(FULL);
  });
});
