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

function oauthPruning(name: string, open: () => Open): void {
  describe(`OAuth pruning: ${name}`, () => {
    const opened: InventoryStore[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    const client = (id: string, now: number) => ({
      client_id: id,
      kind: 'dcr' as const,
      metadata: JSON.stringify({
        redirect_uris: ['https://claude.ai/cb'],
        token_endpoint_auth_method: 'none',
      }),
      secret_hash: null,
      created_at: now,
      fetched_at: now,
    });
    const code = (hash: string, clientId: string, now: number) => ({
      code_hash: hash,
      client_id: clientId,
      redirect_uri: 'https://claude.ai/cb',
      code_challenge: 'c'.repeat(43),
      scope: 'stock:shop',
      resource: 'https://shop.example/mcp',
      channel: 'claude',
      created_at: now,
      expires_at: now + 5 * 60_000,
      used_at: null,
      grant_id: null,
    });
    const grant = (id: string, clientId: string) => ({
      id,
      client_id: clientId,
      channel: 'claude',
      scope: 'stock:shop',
      resource: 'https://shop.example/mcp',
      redirect_host: 'claude.ai',
    });
    const tokens = (tag: string, now: number) => ({
      access_hash: `a-${tag}`,
      access_expires_at: now + HOUR,
      refresh_hash: `r-${tag}`,
      refresh_expires_at: now + 30 * DAY,
    });
    const clientIds = async (store: InventoryStore) =>
      (
        await Promise.all(
          ['cli_unused', 'cli_live', 'cli_revoked', 'cli_code'].map(async (id) =>
            (await store.oauth.getClient(id)) ? id : undefined,
          ),
        )
      ).filter(Boolean);

    it('drops expired codes, unused registrations after a day, revoked and expired grants after 30 days', async () => {
      const clock = new ManualClock(T0);
      const store = await open()({
        clock,
        reservationTtlMs: 15 * 60_000,
        limits: DEFAULT_LIMITS,
        lockTimeoutMs: 5_000,
      });
      opened.push(store);
      for (const id of ['cli_unused', 'cli_live', 'cli_revoked', 'cli_code'])
        await store.oauth.saveClient(client(id, T0));
      await store.oauth.saveCode(code('code-live', 'cli_live', T0));
      await store.oauth.saveCode(code('code-revoked', 'cli_revoked', T0));
      await store.oauth.saveCode(code('code-unspent', 'cli_code', T0));
      expect(
        await store.oauth.redeemCode('code-live', T0, grant('grt_live', 'cli_live'), tokens('live', T0)),
      ).toBe('issued');
      expect(
        await store.oauth.redeemCode(
          'code-revoked',
          T0,
          grant('grt_revoked', 'cli_revoked'),
          tokens('revoked', T0),
        ),
      ).toBe('issued');

      // Within their five minutes codes stay, spent or not (a spent one detects reuse).
      clock.advance(4 * 60_000);
      await sweepOnce(store, silentLogger);
      expect(await store.oauth.getCode('code-live')).toBeDefined();
      expect(await store.oauth.getCode('code-unspent')).toBeDefined();
      clock.advance(2 * 60_000);
      await sweepOnce(store, silentLogger);
      expect(await store.oauth.getCode('code-live')).toBeUndefined();
      expect(await store.oauth.getCode('code-unspent')).toBeUndefined();
      expect(await clientIds(store)).toEqual(['cli_unused', 'cli_live', 'cli_revoked', 'cli_code']);

      // A day on, registrations no grant ever used are gone; the one whose code lapsed unused too.
      clock.advance(DAY - 6 * 60_000 + 60_000);
      await store.oauth.revokeGrant('grt_revoked', clock.now(), 'revoked by the client');
      await sweepOnce(store, silentLogger);
      expect(await clientIds(store)).toEqual(['cli_live', 'cli_revoked']);

      // A revoked grant is listed for 30 days, then dropped, and its client with it a day later at most.
      clock.advance(30 * DAY - 60_000);
      await sweepOnce(store, silentLogger);
      expect((await store.oauth.listGrants()).map((g) => g.id).sort()).toEqual(['grt_live', 'grt_revoked']);
      clock.advance(2 * 60_000);
      await sweepOnce(store, silentLogger);
      expect((await store.oauth.listGrants()).map((g) => g.id)).toEqual(['grt_live']);
      expect(await clientIds(store)).toEqual(['cli_live']);

      // A grant whose refresh token lapsed (30 days after issue) is dropped 30 days after that.
      expect((await store.oauth.getRefresh('r-live'))?.grant.id).toBe('grt_live');
      clock.set(T0 + 60 * DAY - 60_000);
      await sweepOnce(store, silentLogger);
      expect((await store.oauth.listGrants()).map((g) => g.id)).toEqual(['grt_live']);
      clock.set(T0 + 60 * DAY + 60_000);
      await sweepOnce(store, silentLogger);
      expect(await store.oauth.listGrants()).toEqual([]);
      expect(await store.oauth.getRefresh('r-live')).toBeUndefined();
      expect(await clientIds(store)).toEqual([]);
    });

    it('drops MCP session rows once they expire, and keeps live ones', async () => {
      const clock = new ManualClock(T0);
      const store = await open()({
        clock,
        reservationTtlMs: 15 * 60_000,
        limits: DEFAULT_LIMITS,
        lockTimeoutMs: 5_000,
      });
      const row = (idHash: string, expiresAt: number) => ({
        id_hash: idHash,
        credential_id: 'tok_1',
        channel: 'web',
        init: '{}',
        created_at: T0,
        last_used_at: T0,
        expires_at: expiresAt,
      });
      await store.mcpSessions.open(row('h-short', T0 + 60_000), 10);
      await store.mcpSessions.open(row('h-long', T0 + HOUR), 10);
      clock.set(T0 + 60_000);
      await sweepOnce(store, silentLogger);
      expect(await store.mcpSessions.get('h-short', 0)).toBeUndefined();
      expect((await store.mcpSessions.get('h-long', T0 + 60_000))?.credential_id).toBe('tok_1');
      await store.close();
    });
  });
}

const root = mkdtempSync(join(tmpdir(), 'stocklock-sweeper-'));
let files = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));
retention('sqlite', () => async (options) => openSqliteStore(join(root, `${++files}.db`), options));
oauthPruning('sqlite', () => async (options) => openSqliteStore(join(root, `${++files}.db`), options));

describePostgres('PostgreSQL', () => {
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
  });
  const openPostgres = () => async (options: StoreOptions) => {
    if (db) await db.reset();
    else db = await createTestDatabase();
    return openPostgresStore(db.url, { ...options, poolSize: 2 });
  };
  retention('postgres', openPostgres);
  oauthPruning('postgres', openPostgres);
});
