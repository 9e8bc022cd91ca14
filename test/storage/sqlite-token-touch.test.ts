// SQLite: authentication while another process holds the write lock answers, and leaves last_used_at for later.

import { afterEach, describe, expect, it } from 'vitest';
import { Database } from '../../src/storage/sqlite/driver.js';
import { sqliteStore } from '../helpers/sqlite.js';

const cleanup: (() => unknown)[] = [];
afterEach(() => {
  for (const done of cleanup.splice(0).reverse()) done();
});

describe('SQLite token touches', () => {
  it('verifyToken answers while another connection holds the write lock; the next request records the use', async () => {
    const { store, clock, path } = await sqliteStore({}, []);
    cleanup.push(() => store.close());
    const { token, record } = await store.createToken('web', false);

    // Another process's long write (the CLI importing, a backup tool) holds SQLite's write lock.
    const other = new Database(path);
    cleanup.push(() => other.close());
    other.exec('BEGIN IMMEDIATE');
    clock.advance(1_000);
    expect(await store.verifyToken(token)).toMatchObject({ id: record.id, channel: 'web' });
    other.exec('COMMIT');
    expect((await store.listTokens())[0]?.last_used_at).toBeNull();

    clock.advance(1_000);
    await store.verifyToken(token);
    expect((await store.listTokens())[0]?.last_used_at).toBe(new Date(clock.now()).toISOString());
  });
});
