// The console's read queries and change feed, against a real SQLite file and a real PostgreSQL database.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { type ConsoleQueries, DAY_MS } from '../../src/storage/console-queries.js';
import { openStore } from '../../src/storage/open.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { SHOP_CATALOG } from '../helpers/catalog.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const TTL = 15 * 60_000;
const web = { channel: 'web' };
const bot = { channel: 'telegram' };

function options(clock: ManualClock): StoreOptions {
  return { clock, reservationTtlMs: TTL, limits: DEFAULT_LIMITS, lockTimeoutMs: 5_000, poolSize: 2 };
}

/**
 * Counts the changes `queries` reports. A PostgreSQL console reports one as soon as its LISTEN is in
 * place (what changed while nobody listened), so `ready()` waits for that before a test writes.
 */
function countChanges(queries: ConsoleQueries, dialect: string) {
  let count = 0;
  const stop = queries.watch(() => {
    count += 1;
  });
  const until = async (done: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`${what} within 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return {
    stop,
    ready: () =>
      dialect === 'postgres' ? until(() => count > 0, 'the console did not start listening') : undefined,
    count: () => count,
    /** Waits for a change reported after `since` changes. */
    after: (since: number) => until(() => count > since, 'no change was reported'),
  };
}

interface Dialect {
  name: string;
  /** A fresh database for one test: a SQLite path or a PostgreSQL URL. */
  database: () => Promise<string>;
}

describe('console queries on sqlite', () => {
  consoleQueries({
    name: 'sqlite',
    database: async () => join(tempDir('stocklock-console-q-').dir, 'stocklock.db'),
  });
});

describePostgres('console queries on postgres', () => {
  let pgDb: TestDatabase | undefined;
  beforeAll(async () => {
    pgDb = await createTestDatabase('stocklock_console');
  });
  afterAll(async () => {
    await pgDb?.drop();
  });
  consoleQueries({
    name: 'postgres',
    database: async () => {
      if (!pgDb) throw new Error('the test database was not created');
      // A fresh store per test: the tables are emptied, the migrations and the console's triggers stay.
      const probe = await openStore(pgDb.url, options(new ManualClock()));
      await probe.close();
      await pgDb.reset();
      return pgDb.url;
    },
  });
});

function consoleQueries({ name, database }: Dialect): void {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const done of cleanups.splice(0).reverse()) await done();
  });

  async function open(): Promise<{
    store: InventoryStore;
    queries: ConsoleQueries;
    clock: ManualClock;
    db: string;
  }> {
    const clock = new ManualClock(Date.UTC(2026, 0, 10, 12));
    const db = await database();
    const store = await openStore(db, options(clock));
    cleanups.push(() => store.close());
    await store.importProducts({ channel: 'cli' }, SHOP_CATALOG);
    const queries = await openConsoleQueries(db, clock);
    cleanups.push(() => queries.close());
    return { store, queries, clock, db };
  }

  it('lists stock with search, leaving out what expired carts still hold', async () => {
    const { store, queries, clock } = await open();
    await store.addToCart(web, { sku: 'TEE-BLK-M', quantity: 3 });
    clock.advance(TTL + 1);
    await store.addToCart(bot, { sku: 'TEE-BLK-M', quantity: 2 });
    const all = await queries.stock('', 100);
    expect(all.map((p) => p.sku)).toEqual(['EBOOK', 'JACKET-LTD', 'MUG-WHT', 'TEE-BLK-M', 'USD-CAP']);
    const tee = all.find((p) => p.sku === 'TEE-BLK-M');
    // The first cart expired unswept: its 3 units are on sale again, as check_stock says.
    expect(tee).toMatchObject({ on_hand: 10, reserved: 2, available: 8, track_stock: true });
    expect((await store.checkStock(['TEE-BLK-M'])).products[0]?.available).toBe(8);
    expect(all.find((p) => p.sku === 'EBOOK')).toMatchObject({ available: null, track_stock: false });
    expect((await queries.stock('mug', 100)).map((p) => p.sku)).toEqual(['MUG-WHT']);
    expect((await queries.stock('t-shirt', 100)).map((p) => p.sku)).toEqual(['TEE-BLK-M']);
    // LIKE's wildcards are text: "%" matches nothing here.
    expect(await queries.stock('%', 100)).toEqual([]);
    expect(await queries.stock('', 2)).toHaveLength(2);
  });

  it('lists open carts with their lines, flags the expired ones, and finds a cart channel', async () => {
    const { store, queries, clock } = await open();
    const old = await store.addToCart(web, { sku: 'MUG-WHT', quantity: 1 });
    clock.advance(TTL - 60_000);
    const fresh = await store.addToCart(bot, { sku: 'TEE-BLK-M', quantity: 2 });
    await store.addToCart(bot, { sku: 'JACKET-LTD', quantity: 1, cartId: fresh.cart_id });
    const sold = await store.addToCart(web, { sku: 'MUG-WHT', quantity: 1 });
    await store.checkout(web, { cartId: sold.cart_id });
    clock.advance(120_000);

    const holds = await queries.holds(50);
    expect(holds.map((c) => [c.cart_id, c.channel, c.expired])).toEqual([
      [old.cart_id, 'web', true],
      [fresh.cart_id, 'telegram', false],
    ]);
    expect(holds[1]?.lines).toEqual([
      { sku: 'JACKET-LTD', name: 'Limited jacket', quantity: 1, held: 1 },
      { sku: 'TEE-BLK-M', name: 'T-shirt black M', quantity: 2, held: 2 },
    ]);
    expect(await queries.cartOwner(fresh.cart_id)).toEqual({ channel: 'telegram' });
    expect(await queries.cartOwner('cart_nope')).toBeUndefined();
  });

  it('names the OAuth grant holding a cart, and lists grants with client, expiry and revocation', async () => {
    const { store, queries, clock } = await open();
    const now = clock.now();
    await store.oauth.saveClient({
      client_id: 'cli_agent',
      kind: 'dcr',
      metadata: JSON.stringify({ client_name: 'Shopping agent', redirect_uris: ['https://chat.example/cb'] }),
      secret_hash: null,
      created_at: now,
      fetched_at: now,
    });
    await store.oauth.saveCode({
      code_hash: 'code-hash',
      client_id: 'cli_agent',
      redirect_uri: 'https://chat.example/cb',
      code_challenge: 'challenge',
      scope: 'stock:shop',
      resource: 'http://127.0.0.1/mcp',
      channel: 'agents',
      created_at: now,
      expires_at: now + 60_000,
      used_at: null,
      grant_id: null,
    });
    const refreshExpiry = now + 30 * DAY_MS;
    const outcome = await store.oauth.redeemCode(
      'code-hash',
      now,
      {
        id: 'grt_agent',
        client_id: 'cli_agent',
        channel: 'agents',
        scope: 'stock:shop',
        resource: 'http://127.0.0.1/mcp',
        redirect_host: 'chat.example',
      },
      {
        access_hash: 'a-hash',
        access_expires_at: now + 3_600_000,
        refresh_hash: 'r-hash',
        refresh_expires_at: refreshExpiry,
      },
    );
    expect(outcome).toBe('issued');
    const held = await store.addToCart(
      { channel: 'agents', holder: 'grt_agent' },
      { sku: 'MUG-WHT', quantity: 1 },
    );
    const plain = await store.addToCart(web, { sku: 'MUG-WHT', quantity: 1 });

    const holds = await queries.holds(50);
    expect(holds.find((c) => c.cart_id === held.cart_id)?.holder).toEqual({
      grant_id: 'grt_agent',
      client_name: 'Shopping agent',
      client_id: 'cli_agent',
      redirect_host: 'chat.example',
    });
    expect(holds.find((c) => c.cart_id === plain.cart_id)?.holder).toEqual({
      grant_id: null,
      client_name: null,
      client_id: null,
      redirect_host: null,
    });
    expect(await queries.cartOwner(held.cart_id)).toEqual({ channel: 'agents', holder: 'grt_agent' });

    expect(await queries.grants()).toEqual([
      {
        id: 'grt_agent',
        channel: 'agents',
        scope: 'stock:shop',
        client_id: 'cli_agent',
        client_kind: 'dcr',
        client_name: 'Shopping agent',
        redirect_host: 'chat.example',
        created_at: now,
        last_used_at: now,
        expires_at: refreshExpiry,
        revoked_at: null,
        revoke_reason: null,
      },
    ]);
    // Nothing secret leaves: the token hashes are not part of what the page gets.
    expect(JSON.stringify(await queries.grants())).not.toMatch(/a-hash|r-hash/);
    expect(await store.oauth.revokeGrant('grt_agent', now + 5, 'revoked in the console')).toBe(true);
    expect((await queries.grants())[0]).toMatchObject({
      revoked_at: now + 5,
      revoke_reason: 'revoked in the console',
      expires_at: null,
    });
  });

  it('counts held units, orders and revenue per channel by UTC day', async () => {
    const { store, queries, clock } = await open();
    const sell = async (ctx: { channel: string }, sku: string, quantity: number) => {
      const cart = await store.addToCart(ctx, { sku, quantity });
      return store.checkout(ctx, { cartId: cart.cart_id });
    };
    clock.set(Date.UTC(2026, 0, 3, 23)); // 7 days before the 10th: outside the window
    await sell(web, 'MUG-WHT', 1);
    clock.set(Date.UTC(2026, 0, 4, 1)); // the window's first day
    await sell(web, 'TEE-BLK-M', 2);
    clock.set(Date.UTC(2026, 0, 10, 9));
    await sell(web, 'MUG-WHT', 1);
    await sell(web, 'USD-CAP', 1);
    await sell(bot, 'EBOOK', 3);
    await store.addToCart(bot, { sku: 'TEE-BLK-M', quantity: 4 });

    const activity = await queries.channelActivity(7);
    const today = Math.floor(Date.UTC(2026, 0, 10) / DAY_MS);
    expect(activity.today).toBe(today);
    expect(activity.from_day).toBe(today - 6);
    expect(activity.held).toEqual([{ channel: 'telegram', units: 4 }]);
    expect(activity.sales).toEqual([
      { channel: 'telegram', day: today, currency: 'EUR', orders: 1, revenue_minor: 1497 },
      { channel: 'web', day: today - 6, currency: 'EUR', orders: 1, revenue_minor: 4800 },
      { channel: 'web', day: today, currency: 'EUR', orders: 1, revenue_minor: 1450 },
      { channel: 'web', day: today, currency: 'USD', orders: 1, revenue_minor: 2000 },
    ]);
  });

  it('reads the ledger newest first, filtered and paged', async () => {
    const { store, queries } = await open();
    await store.restock({ channel: 'console' }, { sku: 'MUG-WHT', quantity: 5, note: 'delivery' });
    const cart = await store.addToCart(web, { sku: 'MUG-WHT', quantity: 2 });
    await store.checkout(web, { cartId: cart.cart_id });

    const newest = await queries.ledger({ limit: 100 });
    expect(newest.map((m) => m.kind).slice(0, 3)).toEqual(['sale', 'reserve', 'restock']);
    expect(newest[2]).toMatchObject({
      sku: 'MUG-WHT',
      quantity: 5,
      on_hand_delta: 5,
      channel: 'console',
      note: 'delivery',
    });
    expect(newest.length).toBe(SHOP_CATALOG.length + 3);
    const sales = await queries.ledger({ kind: 'sale', limit: 100 });
    expect(sales.map((m) => [m.sku, m.on_hand_delta, m.reserved_delta, m.channel])).toEqual([
      ['MUG-WHT', -2, -2, 'web'],
    ]);
    expect(sales[0]?.order_id).toMatch(/^ord_/);
    expect((await queries.ledger({ sku: 'MUG-WHT', channel: 'web', limit: 100 })).map((m) => m.kind)).toEqual(
      ['sale', 'reserve'],
    );
    const first = await queries.ledger({ limit: 2 });
    const next = await queries.ledger({ limit: 2, beforeId: first[1]?.id });
    expect(next[0]?.id).toBeLessThan(first[1]?.id ?? 0);
    expect(next.map((m) => m.kind)).toEqual(['restock', 'import']);
  });

  it('reports a change committed through another connection: a restock, a new token', async () => {
    const { queries, db, clock } = await open();
    // Another store on the same database: another process's connection on SQLite, another server on PostgreSQL.
    const other = await openStore(db, options(clock));
    cleanups.push(() => other.close());
    const changes = countChanges(queries, name);
    cleanups.push(async () => changes.stop());
    await changes.ready();
    let seen = changes.count();
    await other.restock({ channel: 'cli' }, { sku: 'MUG-WHT', quantity: 1 });
    await changes.after(seen);
    seen = changes.count();
    await other.createToken('web', false);
    await changes.after(seen);
  });
}

describePostgres('console triggers on PostgreSQL', () => {
  it('are installed once when several consoles start together on a fresh database', async () => {
    const fresh = await createTestDatabase('stocklock_console_fresh');
    try {
      const clock = new ManualClock();
      const store = await openStore(fresh.url, options(clock));
      const consoles = await Promise.all(
        Array.from({ length: 4 }, () => openConsoleQueries(fresh.url, clock)),
      );
      const triggers = await fresh.query<{ tgname: string }>(
        "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'stocklock_console_notify_%' ORDER BY tgname",
      );
      expect(triggers.map((t) => t.tgname)).toEqual([
        'stocklock_console_notify_api_tokens',
        'stocklock_console_notify_carts',
        'stocklock_console_notify_channels',
        'stocklock_console_notify_console_sessions',
        'stocklock_console_notify_oauth_grants',
        'stocklock_console_notify_oauth_hosts',
        'stocklock_console_notify_orders',
        'stocklock_console_notify_products',
        'stocklock_console_notify_stock_movements',
      ]);
      // Without a listening console no NOTIFY is sent; with one, a write by this "other server" arrives.
      await store.importProducts({ channel: 'cli' }, SHOP_CATALOG);
      const changes = countChanges(consoles[0] as ConsoleQueries, 'postgres');
      await changes.ready();
      await waitForListener(fresh);
      const seen = changes.count();
      await store.restock({ channel: 'cli' }, { sku: 'MUG-WHT', quantity: 1 });
      await changes.after(seen);
      changes.stop();
      await Promise.all(consoles.map((c) => c.close()));
      await store.close();
    } finally {
      await fresh.drop();
    }
  });
});

/** The console's LISTEN connection is open: until then the trigger has no one to notify. */
async function waitForListener(db: TestDatabase): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const rows = await db.query(
      "SELECT 1 FROM pg_stat_activity WHERE application_name = 'stocklock-console-listen' AND datname = current_database()",
    );
    if (rows.length > 0) return;
    if (Date.now() > deadline) throw new Error('the console never started listening');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
