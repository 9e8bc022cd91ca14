// The group-commit scenario's baseline (bench/unbatched-store.ts) is the store itself with one transaction per
// write: it keeps the whole store contract, and it never batches.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openUnbatchedStore } from '../../bench/unbatched-store.js';
import { sqliteStore } from '../helpers/sqlite.js';
import { tempDir } from '../helpers/temp.js';
import { describeStoreContract } from '../storage/contract.js';

describeStoreContract('sqlite file, unbatched (the bench baseline)', async (options) =>
  openUnbatchedStore(join(tempDir().dir, 'stocklock.db'), options),
);

describe('the unbatched bench baseline', () => {
  it('runs every write as its own transaction', async () => {
    const { store: seeded, path, clock } = await sqliteStore();
    await seeded.close();
    const store = await openUnbatchedStore(path, { ...seeded.options, clock });
    try {
      await Promise.all(
        Array.from({ length: 4 }, () =>
          store.addToCart({ channel: 'web' }, { sku: 'TEE-BLK-M', quantity: 1 }),
        ),
      );
      expect(store.groupCommitStats()).toEqual({ batches: 0, writes: 0, largest: 0 });
      expect((await store.stockLevels(['TEE-BLK-M']))[0]).toMatchObject({ reserved: 4 });
    } finally {
      await store.close();
    }
  });
});
