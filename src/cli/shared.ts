// What every command shares: the version, the ledger channel of CLI actions, and a store opened for one command.
import { readFileSync } from 'node:fs';
import { type StoreFlags, storeOptions } from '../config.js';
import { openStore } from '../storage/open.js';
import type { InventoryStore } from '../storage/store.js';

export const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** CLI admin actions are recorded in the ledger under this channel. */
export const CLI_CHANNEL = { channel: 'cli' };

/** Opens the store the flags name (migrating it), runs `fn`, and closes the store whatever happens. */
export async function withStore<T>(flags: StoreFlags, fn: (store: InventoryStore) => Promise<T>): Promise<T> {
  const store = await openStore(flags.db, storeOptions(flags));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
