// The sweeper's upkeep on both stores: idempotency records outlive every cart a retry could be looking for.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/domain/clock.js';
import { DEFAULT_LIMITS, MAX_RESERVATION_TTL_MS } from '../src/domain/rules.js';
import { silentLogger } from '../src/logger.js';
import { openPostgresStore } from '../src/storage/postgres/store.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import type { InventoryStore, StoreOptions } from '../src/storage/store.js';
import { sweepOnce } from '../src/sweeper.js';
import { CONTRACT_CATALOG } from './helpers/catalog.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { describePostgres } from './helpers/requirements.js';
import { admin, expectAuditOk, expectStockError, level, T0, web } from './storage/contract.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

type Open = (options: StoreOptions) => Promise<InventoryStore>;

function retention(name: string, open: () => Open): void {
  describe(`idempotency retention: ${name}`, () => {
    const opened: InventoryStore[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    async function setup(reservationTtlMs: number): Promise<{ store: InventoryStore; clock: ManualClock }> {
      const clock = new ManualClock(T0);
      const store = await open()({ clock, reservationTtlMs, limits: DEFAULT_LIMITS, lockTimeoutMs: 5_000 });
      opened.push(store);
      await store.importProducts(admin, CONTRACT_CATALOG);
      return { store, clock };
    }

    it('a retry just before the longest TTL allowed ends still finds the cart it made', async () => {
      const { store, clock } = await setup(MAX_RESERVATION_TTL_MS);
      const made = await store.addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: 'order-7' });
      clock.advance(MAX_RESERVATION_TTL_MS - HOUR);
      await sweepOnce(store, silentLogger);
      // The cart is still live: a retry that made a second one would hold the units twice.
      const retried = await store.addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: 'order-7' });
      expect(retried.cart_id).toBe(made.cart_id);
      expect(await level(store, 'MUG')).toMatchObject({ reserved: 2 });
      await expectAuditOk(store);
    });

    it('records are kept at least 24 hours whatever the TTL, and dropped once past the retention', async () => {
      const { store, clock } = await setup(15 * 60_000);
      await store.addToCart(web, { sku: 'MUG', quantity: 1, idempotencyKey: 'order-8' });
      clock.advance(DAY - HOUR);
      await sweepOnce(store, silentLogger);
      await expectStockError(
        store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, idempotencyKey: 'order-8' }),
        'IDEMPOTENCY_CONFLICT',
      );
      clock.advance(MAX_RESERVATION_TTL_MS);
      await sweepOnce(store, silentLogger);
      // Forgotten: the key is free for a new request.
      const fresh = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, idempotencyKey: 'order-8' });
      expect(fresh.lines).toMatchObject([{ sku: 'TSHIRT-M', quantity: 1 }]);
      await expectAuditOk(store);
    });
  });
}

const root = mkdtempSync(join(tmpdir(), 'stocklock-sweeper-'));
let files = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));
retention('sqlite', () => async (options) => openSqliteStore(join(root, `${++files}.db`), options));

describePostgres('PostgreSQL', () => {
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
  });
  retention('postgres', () => async (options) => {
    if (db) await db.reset();
    else db = await createTestDatabase();
    return openPostgresStore(db.url, { ...options, poolSize: 2 });
  });
});
