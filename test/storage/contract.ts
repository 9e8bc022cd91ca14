// The InventoryStore contract: one suite every store implementation must pass, through the interface alone.
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { type ErrorCode, StockError } from '../../src/domain/errors.js';
import { DEFAULT_LIMITS, DEFAULT_RESERVATION_TTL_MS, iso, type Limits } from '../../src/domain/rules.js';
import type { CallContext, ImportRow, StockLevel } from '../../src/domain/types.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { CONTRACT_CATALOG } from '../helpers/catalog.js';

/** Opens a FRESH, empty, migrated store with these options; called once per test. */
export type MakeStore = (options: StoreOptions) => Promise<InventoryStore>;

export interface HarnessOptions {
  reservationTtlMs?: number;
  maxHoldMs?: number;
  limits?: Partial<Limits>;
  lockTimeoutMs?: number;
  /** Import CONTRACT_CATALOG first (default true). */
  seed?: boolean;
}

export interface Harness {
  store: InventoryStore;
  clock: ManualClock;
  options: StoreOptions;
}

export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
export const TTL = DEFAULT_RESERVATION_TTL_MS;

export const web: CallContext = { channel: 'web' };
export const bot: CallContext = { channel: 'telegram' };
export const admin: CallContext = { channel: 'admin' };

/** Awaits a refusal and checks it is a StockError with this code (and these details, if given). */
export async function expectStockError(
  promise: Promise<unknown>,
  code: ErrorCode,
  details?: Record<string, unknown>,
): Promise<StockError> {
  let settled: unknown;
  try {
    settled = await promise;
  } catch (error) {
    expect(error, String(error)).toBeInstanceOf(StockError);
    const refusal = error as StockError;
    expect(refusal.code, refusal.message).toBe(code);
    if (details) expect(refusal.details).toMatchObject(details);
    return refusal;
  }
  throw new Error(`expected ${code}, but the call succeeded with ${JSON.stringify(settled)}`);
}

/** Every test that writes ends here: every invariant `audit` checks must hold. */
export async function expectAuditOk(store: InventoryStore): Promise<void> {
  const report = await store.audit();
  expect(report.ok, `audit violations:\n${JSON.stringify(report.violations, null, 2)}`).toBe(true);
}

export async function level(store: InventoryStore, sku: string): Promise<StockLevel> {
  const [row] = await store.stockLevels([sku]);
  if (!row) throw new Error(`no stock level for ${sku}`);
  return row;
}

/** on_hand/reserved/available of every product, keyed by SKU: to prove a refusal changed nothing. */
export async function snapshot(
  store: InventoryStore,
): Promise<Record<string, [number, number, number | null]>> {
  const levels = await store.stockLevels();
  return Object.fromEntries(levels.map((l) => [l.sku, [l.on_hand, l.reserved, l.available]]));
}

/** A grant made by a real code exchange (client, code, redemption): returns it and the code's hash. */
async function signIn(store: InventoryStore, grantId: string) {
  const { oauth } = store;
  const codeHash = `code_${grantId}`;
  await oauth.saveClient({
    client_id: 'cli_a',
    kind: 'dcr',
    metadata: JSON.stringify({ client_name: 'Shop', redirect_uris: [] }),
    secret_hash: null,
    created_at: T0,
    fetched_at: T0,
  });
  await oauth.saveCode({
    code_hash: codeHash,
    client_id: 'cli_a',
    redirect_uri: 'https://shop.example/callback',
    code_challenge: 'x'.repeat(43),
    scope: 'stock:shop',
    resource: 'http://127.0.0.1:1/mcp',
    channel: 'web',
    created_at: T0,
    expires_at: T0 + 300_000,
    used_at: null,
    grant_id: null,
  });
  const grant = {
    id: grantId,
    client_id: 'cli_a',
    channel: 'web',
    scope: 'stock:shop',
    resource: 'http://127.0.0.1:1/mcp',
    redirect_host: 'shop.example',
  };
  const tokens = {
    access_hash: `access_${grantId}`,
    access_expires_at: T0 + 3_600_000,
    refresh_hash: `refresh_${grantId}`,
    refresh_expires_at: T0 + 86_400_000,
  };
  expect(await oauth.redeemCode(codeHash, T0, grant, tokens)).toBe('issued');
  return { ...grant, codeHash };
}

export function describeStoreContract(name: string, makeStore: MakeStore): void {
  describe(`InventoryStore contract: ${name}`, () => {
    const open: InventoryStore[] = [];

    afterEach(async () => {
      await Promise.all(open.splice(0).map((store) => store.close()));
    });

    async function setup(opts: HarnessOptions = {}): Promise<Harness> {
      const clock = new ManualClock(T0);
      const options: StoreOptions = {
        clock,
        reservationTtlMs: opts.reservationTtlMs ?? TTL,
        ...(opts.maxHoldMs === undefined ? {} : { maxHoldMs: opts.maxHoldMs }),
        limits: { ...DEFAULT_LIMITS, ...opts.limits },
        lockTimeoutMs: opts.lockTimeoutMs ?? 2_000,
      };
      const store = await makeStore(options);
      open.push(store);
      if (opts.seed !== false) await store.importProducts(admin, CONTRACT_CATALOG);
      return { store, clock, options };
    }

    // ------------------------------------------------------------ import

    describe('importProducts', () => {
      it('creates then updates products and reports the counts', async () => {
        const { store } = await setup({ seed: false });
        expect(await store.isEmpty()).toBe(true);
        expect(await store.importProducts(admin, CONTRACT_CATALOG)).toMatchObject({
          created: CONTRACT_CATALOG.length,
          updated: 0,
        });
        expect(await store.isEmpty()).toBe(false);

        const again = await store.importProducts(admin, [
          { sku: 'MUG', name: 'Coffee mug, large', price_minor: 1400, currency: 'EUR', stock: 7 },
          { sku: 'BOWL', name: 'Cereal bowl', price_minor: 900, currency: 'EUR', stock: 2 },
        ]);
        expect(again).toEqual({
          created: 1,
          updated: 1,
          stock: [
            { sku: 'MUG', before: 5, file: 7, after: 5 },
            { sku: 'BOWL', before: null, file: 2, after: 2 },
          ],
        });
        // The file renames and reprices MUG; its on-hand stays the store's own (the re-import rule).
        expect(await level(store, 'MUG')).toMatchObject({
          name: 'Coffee mug, large',
          on_hand: 5,
          reserved: 0,
        });
        expect(await level(store, 'BOWL')).toMatchObject({ on_hand: 2, available: 2, active: true });
        const { products } = await store.checkStock(['MUG']);
        expect(products[0]).toMatchObject({ price_minor: 1400, price_display: '14.00 EUR' });
        await expectAuditOk(store);
      });

      it('is all or nothing: an invalid row rejects the import, names the row and imports nothing', async () => {
        const { store } = await setup({ seed: false });
        const good: ImportRow = {
          sku: 'GOOD',
          name: 'Fine product',
          price_minor: 100,
          currency: 'EUR',
          stock: 5,
        };
        const bad: ImportRow[] = [
          { ...good, sku: 'BAD', price_minor: -1 },
          { ...good, sku: 'BAD', stock: 1.5 },
          { ...good, sku: 'bad sku' },
          { ...good, sku: 'BAD', currency: 'eur' },
          { ...good, sku: 'BAD', name: '' },
        ];
        for (const row of bad) {
          const error = await expectStockError(store.importProducts(admin, [good, row]), 'INVALID_INPUT');
          expect(error.message).toMatch(/row 2\b/);
        }
        expect(await store.isEmpty()).toBe(true);
        expect(await store.stockLevels()).toEqual([]);
        await expectAuditOk(store);
      });

      it('re-importing keeps the on-hand of existing products, whatever restocks and sales made it', async () => {
        const { store } = await setup();
        await store.restock(admin, { sku: 'MUG', quantity: 10 });
        const cart = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        await store.checkout(web, { cartId: cart.cart_id });
        const result = await store.importProducts(admin, CONTRACT_CATALOG);
        expect(result).toMatchObject({ created: 0, updated: CONTRACT_CATALOG.length });
        expect(result.stock).toContainEqual({ sku: 'MUG', before: 15, file: 5, after: 15 });
        expect(result.stock).toContainEqual({ sku: 'LAST-ONE', before: 0, file: 1, after: 0 });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 15 });
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 0, available: 0 });
        await expectAuditOk(store);
      });

      it('with setStock, sets existing products to the file and reports each change; an empty stock keeps', async () => {
        const { store } = await setup();
        await store.restock(admin, { sku: 'MUG', quantity: 10 });
        const result = await store.importProducts(
          admin,
          [
            { sku: 'MUG', name: 'Coffee mug', price_minor: 1250, currency: 'EUR', stock: 4 },
            { sku: 'TSHIRT-M', name: 'Cotton T-shirt, size M', price_minor: 1999, currency: 'EUR' },
            { sku: 'NEW-ONE', name: 'New product', price_minor: 100, currency: 'EUR' },
          ],
          { setStock: true },
        );
        expect(result.stock).toEqual([
          { sku: 'MUG', before: 15, file: 4, after: 4 },
          { sku: 'TSHIRT-M', before: 10, file: null, after: 10 },
          { sku: 'NEW-ONE', before: null, file: null, after: 0 },
        ]);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 4 });
        await expectAuditOk(store);
      });

      it('rolls back every row when a row fails inside the transaction (stock below what carts hold)', async () => {
        const { store } = await setup();
        await store.addToCart(web, { sku: 'MUG', quantity: 3 });
        const before = await snapshot(store);
        const error = await expectStockError(
          store.importProducts(
            admin,
            [
              { sku: 'NEW-ONE', name: 'New product', price_minor: 100, currency: 'EUR', stock: 5 },
              { sku: 'MUG', name: 'Coffee mug', price_minor: 1250, currency: 'EUR', stock: 2 },
            ],
            { setStock: true },
          ),
          'BELOW_RESERVED',
          { sku: 'MUG', reserved: 3 },
        );
        expect(error.message).toMatch(/row 2\b/);
        expect(await store.stockLevels(['NEW-ONE'])).toEqual([]);
        expect(await snapshot(store)).toEqual(before);
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ read tools

    describe('searchProducts', () => {
      it('matches every term against SKU, name or description, case-insensitively, active products only', async () => {
        const { store } = await setup();
        const skus = async (query: string) =>
          (await store.searchProducts({ query, limit: 10, inStockOnly: false })).map((p) => p.sku).sort();

        expect(await skus('cotton')).toEqual(['TSHIRT-M']);
        expect(await skus('COTTON shirt')).toEqual(['TSHIRT-M']);
        expect(await skus('cotton mug')).toEqual([]);
        expect(await skus('stoneware')).toEqual(['MUG']);
        expect(await skus('tshirt')).toEqual(['TSHIRT-M']);
        expect(await skus('poster')).toEqual([]);
        expect(await skus('')).toEqual(['CAP-US', 'EBOOK', 'LAST-ONE', 'MUG', 'TSHIRT-M']);

        const [mug] = await store.searchProducts({ query: 'mug', limit: 10, inStockOnly: false });
        expect(mug).toEqual({
          sku: 'MUG',
          name: 'Coffee mug',
          description: 'Stoneware, 350 ml',
          price_minor: 1250,
          currency: 'EUR',
          price_display: '12.50 EUR',
          available: 5,
          in_stock: true,
        });
      });

      it('honours limit', async () => {
        const { store } = await setup();
        expect(await store.searchProducts({ query: '', limit: 2, inStockOnly: false })).toHaveLength(2);
        expect(await store.searchProducts({ query: '', limit: 1, inStockOnly: false })).toHaveLength(1);
        expect(await store.searchProducts({ query: '', limit: 50, inStockOnly: false })).toHaveLength(5);
      });

      it('in_stock_only drops sold-out and fully reserved products but keeps untracked ones', async () => {
        const { store } = await setup();
        await store.setStock(admin, { sku: 'CAP-US', quantity: 0 });
        await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        const inStock = (await store.searchProducts({ query: '', limit: 50, inStockOnly: true })).map(
          (p) => p.sku,
        );
        expect(inStock.sort()).toEqual(['EBOOK', 'MUG', 'TSHIRT-M']);
        const all = await store.searchProducts({ query: '', limit: 50, inStockOnly: false });
        expect(all.find((p) => p.sku === 'LAST-ONE')).toMatchObject({ available: 0, in_stock: false });
        expect(all.find((p) => p.sku === 'EBOOK')).toMatchObject({ available: null, in_stock: true });
        await expectAuditOk(store);
      });

      it('treats LIKE wildcards and backslashes in the query as literal characters', async () => {
        const { store } = await setup({ seed: false });
        await store.importProducts(admin, [
          { sku: 'SCARF_RED', name: '100% wool scarf', price_minor: 3000, currency: 'EUR', stock: 2 },
          { sku: 'SCARF-BLUE', name: 'Plain wool scarf', price_minor: 2500, currency: 'EUR', stock: 2 },
          { sku: 'HAT', name: 'Back\\slash hat', price_minor: 2000, currency: 'EUR', stock: 2 },
        ]);
        const skus = async (query: string) =>
          (await store.searchProducts({ query, limit: 10, inStockOnly: false })).map((p) => p.sku).sort();
        expect(await skus('%')).toEqual(['SCARF_RED']);
        expect(await skus('100%')).toEqual(['SCARF_RED']);
        expect(await skus('_')).toEqual(['SCARF_RED']);
        expect(await skus('SCARF_')).toEqual(['SCARF_RED']);
        expect(await skus('w__l')).toEqual([]);
        expect(await skus('%wool')).toEqual([]);
        expect(await skus('\\')).toEqual(['HAT']);
        expect(await skus('wool')).toEqual(['SCARF-BLUE', 'SCARF_RED']);
      });
    });

    describe('checkStock', () => {
      it('reports available and in_stock, lists unknown and inactive SKUs, collapses duplicates', async () => {
        const { store } = await setup();
        await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const result = await store.checkStock(['MUG', 'NOPE', 'MUG', 'RETIRED', 'LAST-ONE']);
        expect(result.unknown_skus.sort()).toEqual(['NOPE', 'RETIRED']);
        expect(result.products.map((p) => p.sku).sort()).toEqual(['LAST-ONE', 'MUG']);
        expect(result.products.find((p) => p.sku === 'MUG')).toMatchObject({ available: 3, in_stock: true });
        expect(result.products.find((p) => p.sku === 'LAST-ONE')).toMatchObject({
          available: 1,
          in_stock: true,
        });
        await expectAuditOk(store);
      });

      it('reports untracked products as available: null, in_stock: true', async () => {
        const { store } = await setup();
        const { products, unknown_skus } = await store.checkStock(['EBOOK']);
        expect(unknown_skus).toEqual([]);
        expect(products).toEqual([
          {
            sku: 'EBOOK',
            name: 'Brewing guide (PDF)',
            description: null,
            price_minor: 999,
            currency: 'EUR',
            price_display: '9.99 EUR',
            available: null,
            in_stock: true,
          },
        ]);
      });

      it('reports a fully reserved product as out of stock', async () => {
        const { store } = await setup();
        await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        const { products } = await store.checkStock(['LAST-ONE']);
        expect(products[0]).toMatchObject({ available: 0, in_stock: false });
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ add_to_cart

    describe('addToCart', () => {
      it('opens a new cart with an unguessable id and reserves the stock', async () => {
        const { store } = await setup();
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        expect(cart.cart_id).toMatch(/^cart_[0-9A-Za-z]{22}$/);
        expect(cart).toEqual({
          cart_id: cart.cart_id,
          status: 'open',
          lines: [
            { sku: 'MUG', name: 'Coffee mug', quantity: 2, unit_price_minor: 1250, line_total_minor: 2500 },
          ],
          total_minor: 2500,
          currency: 'EUR',
          total_display: '25.00 EUR',
          item_count: 2,
          order_id: null,
          created_at: iso(T0),
          expires_at: iso(T0 + TTL),
        });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 2, available: 3 });
        expect(await store.getCart(web, cart.cart_id)).toEqual(cart);

        const other = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        expect(other.cart_id).not.toBe(cart.cart_id);
        await expectAuditOk(store);
      });

      it('adds to an existing cart: the same SKU increments its line, another SKU adds a line', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 2 });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3, cartId: cart_id });
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id });
        expect(cart.cart_id).toBe(cart_id);
        const lines = [...cart.lines].sort((a, b) => a.sku.localeCompare(b.sku));
        expect(lines).toEqual([
          { sku: 'MUG', name: 'Coffee mug', quantity: 1, unit_price_minor: 1250, line_total_minor: 1250 },
          {
            sku: 'TSHIRT-M',
            name: 'Cotton T-shirt, size M',
            quantity: 5,
            unit_price_minor: 1999,
            line_total_minor: 9995,
          },
        ]);
        expect(cart.total_minor).toBe(11245);
        expect(cart.item_count).toBe(6);
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 5, available: 5 });
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 1, available: 4 });
        await expectAuditOk(store);
      });

      it('refuses more than is available with OUT_OF_STOCK {sku, requested, available} and changes nothing', async () => {
        const { store } = await setup();
        await expectStockError(store.addToCart(web, { sku: 'MUG', quantity: 6 }), 'OUT_OF_STOCK', {
          sku: 'MUG',
          requested: 6,
          available: 5,
        });
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 3 });
        const before = await snapshot(store);
        await expectStockError(store.addToCart(bot, { sku: 'MUG', quantity: 3 }), 'OUT_OF_STOCK', {
          sku: 'MUG',
          requested: 3,
          available: 2,
        });
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 3, cartId: cart_id }),
          'OUT_OF_STOCK',
          {
            sku: 'MUG',
            requested: 3,
            available: 2,
          },
        );
        expect(await snapshot(store)).toEqual(before);
        expect((await store.getCart(web, cart_id)).lines).toMatchObject([{ sku: 'MUG', quantity: 3 }]);
        await expectAuditOk(store);
      });

      // Two calls on one store instance, issued without awaiting each other: on SQLite they run one after
      // the other in this process. Real races (processes, separate connections) are in sqlite.test.ts,
      // postgres.test.ts and test/e2e/race.test.ts.
      it('the last unit: of two channels asking without awaiting each other, exactly one gets it', async () => {
        const { store } = await setup();
        const results = await Promise.allSettled([
          store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 }),
          store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 }),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        const reason = (lost[0] as PromiseRejectedResult).reason as StockError;
        expect(reason).toBeInstanceOf(StockError);
        expect(reason.code).toBe('OUT_OF_STOCK');
        expect(reason.details).toMatchObject({ sku: 'LAST-ONE', requested: 1, available: 0 });

        const winner = results[0]?.status === 'fulfilled' ? web : bot;
        const cart = (won[0] as PromiseFulfilledResult<{ cart_id: string }>).value;
        await store.checkout(winner, { cartId: cart.cart_id });
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 0, reserved: 0, available: 0 });
        await expectStockError(store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 }), 'OUT_OF_STOCK');
        await expectAuditOk(store);
      });

      it('refuses unknown and inactive SKUs with UNKNOWN_SKU', async () => {
        const { store } = await setup();
        await expectStockError(store.addToCart(web, { sku: 'NOPE', quantity: 1 }), 'UNKNOWN_SKU', {
          sku: 'NOPE',
        });
        await expectStockError(store.addToCart(web, { sku: 'RETIRED', quantity: 1 }), 'UNKNOWN_SKU', {
          sku: 'RETIRED',
        });
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await expectStockError(
          store.addToCart(web, { sku: 'NOPE', quantity: 1, cartId: cart_id }),
          'UNKNOWN_SKU',
        );
        expect(await level(store, 'RETIRED')).toMatchObject({ on_hand: 4, reserved: 0 });
        await expectAuditOk(store);
      });

      it("keeps channels apart: another channel's cart is CART_NOT_FOUND for every cart tool", async () => {
        const { store } = await setup();
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const id = cart.cart_id;
        const notFound = { cart_id: id };
        await expectStockError(store.getCart(bot, id), 'CART_NOT_FOUND', notFound);
        await expectStockError(
          store.addToCart(bot, { sku: 'MUG', quantity: 1, cartId: id }),
          'CART_NOT_FOUND',
          notFound,
        );
        await expectStockError(store.checkout(bot, { cartId: id }), 'CART_NOT_FOUND', notFound);
        await expectStockError(store.releaseCart(bot, { cartId: id }), 'CART_NOT_FOUND', notFound);
        await expectStockError(
          store.releaseCart(bot, { cartId: id, sku: 'MUG' }),
          'CART_NOT_FOUND',
          notFound,
        );
        await expectStockError(store.getCart(web, 'cart_doesnotexist0000000000'), 'CART_NOT_FOUND');
        await expectStockError(store.getCart(web, ''), 'CART_NOT_FOUND');

        expect(await store.getCart(web, id)).toEqual(cart);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 2 });
        await expectAuditOk(store);
      });

      it('refuses a checked-out or released cart with CART_CLOSED', async () => {
        const { store } = await setup();
        const sold = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await store.checkout(web, { cartId: sold.cart_id });
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: sold.cart_id }),
          'CART_CLOSED',
          {
            status: 'checked_out',
          },
        );
        await expectStockError(store.releaseCart(web, { cartId: sold.cart_id }), 'CART_CLOSED', {
          status: 'checked_out',
        });

        const dropped = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await store.releaseCart(web, { cartId: dropped.cart_id });
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: dropped.cart_id }),
          'CART_CLOSED',
          { status: 'released' },
        );
        await expectStockError(store.checkout(web, { cartId: dropped.cart_id }), 'CART_CLOSED', {
          status: 'released',
        });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 4, reserved: 0 });
        await expectAuditOk(store);
      });

      it('refuses a product in another currency with CURRENCY_MISMATCH', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await expectStockError(
          store.addToCart(web, { sku: 'CAP-US', quantity: 1, cartId: cart_id }),
          'CURRENCY_MISMATCH',
          {
            sku: 'CAP-US',
          },
        );
        expect(await level(store, 'CAP-US')).toMatchObject({ reserved: 0 });
        expect((await store.getCart(web, cart_id)).lines).toHaveLength(1);
        await expectAuditOk(store);
      });

      it('caps units per line (LIMIT_EXCEEDED per_line)', async () => {
        const { store } = await setup({ limits: { maxLineQuantity: 3 } });
        await expectStockError(store.addToCart(web, { sku: 'MUG', quantity: 4 }), 'LIMIT_EXCEEDED', {
          cap: 'per_line',
          limit: 3,
        });
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 2, cartId: cart_id }),
          'LIMIT_EXCEEDED',
          {
            cap: 'per_line',
            limit: 3,
          },
        );
        await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id });
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 3 });
        await expectAuditOk(store);
      });

      it('caps units per cart (LIMIT_EXCEEDED per_cart)', async () => {
        const { store } = await setup({ limits: { maxCartQuantity: 4 } });
        const { cart_id } = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3 });
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 2, cartId: cart_id }),
          'LIMIT_EXCEEDED',
          {
            cap: 'per_cart',
            limit: 4,
          },
        );
        await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id });
        // A new cart starts from zero.
        await store.addToCart(web, { sku: 'MUG', quantity: 4 });
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 5 });
        await expectAuditOk(store);
      });

      it('caps units one channel holds at once (LIMIT_EXCEEDED per_channel)', async () => {
        const { store } = await setup({ limits: { maxChannelReserved: 5 } });
        const first = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3 });
        await expectStockError(store.addToCart(web, { sku: 'MUG', quantity: 3 }), 'LIMIT_EXCEEDED', {
          cap: 'per_channel',
          limit: 5,
        });
        // Another channel has its own allowance.
        await store.addToCart(bot, { sku: 'MUG', quantity: 5 });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 2 });
        await expectStockError(store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1 }), 'LIMIT_EXCEEDED', {
          cap: 'per_channel',
        });
        // Checking out frees the allowance.
        await store.checkout(web, { cartId: first.cart_id });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ on_hand: 7, reserved: 5 });
        await expectAuditOk(store);
      });

      it("expired holds do not count against the channel's cap, even before a sweep", async () => {
        const { store, clock } = await setup({ limits: { maxChannelReserved: 3 } });
        const old = await store.addToCart(web, { sku: 'MUG', quantity: 3 });
        clock.advance(TTL + 1);
        // A different SKU, so no write has freed the MUG holds yet.
        const cart = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3 });
        await expectStockError(store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1 }), 'LIMIT_EXCEEDED', {
          cap: 'per_channel',
          limit: 3,
        });
        // Reviving the old cart would hold 3 + 3 + 1: over the cap, and nothing changes.
        const before = await snapshot(store);
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: old.cart_id }),
          'LIMIT_EXCEEDED',
          { cap: 'per_channel' },
        );
        expect(await snapshot(store)).toEqual(before);
        // Checkout re-holds and sells at once, so the cap does not apply to it.
        const order = await store.checkout(web, { cartId: old.cart_id });
        expect(order.lines).toMatchObject([{ sku: 'MUG', quantity: 3 }]);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 2, reserved: 0 });
        await store.releaseCart(web, { cartId: cart.cart_id });
        await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        await expectAuditOk(store);
      });
      it('counts the held units of a revived cart against the cap even when only an untracked item is added', async () => {
        const { store, clock } = await setup({ limits: { maxChannelReserved: 5 } });
        const old = await store.addToCart(web, { sku: 'MUG', quantity: 3 });
        clock.advance(TTL + 1);
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3 });
        // Reviving the old cart would make the channel hold 3 + 3, though the e-book itself holds nothing.
        const before = await snapshot(store);
        await expectStockError(
          store.addToCart(web, { sku: 'EBOOK', quantity: 1, cartId: old.cart_id }),
          'LIMIT_EXCEEDED',
          { cap: 'per_channel', limit: 5 },
        );
        expect(await snapshot(store)).toEqual(before);
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ reservation TTL

    describe('holders (OAuth grants inside a channel)', () => {
      const alice: CallContext = { channel: 'web', holder: 'grant_alice' };
      const bob: CallContext = { channel: 'web', holder: 'grant_bob' };

      it("hides a holder's cart from other holders of the same channel and from the channel-wide holder", async () => {
        const { store } = await setup();
        const mine = await store.addToCart(alice, { sku: 'MUG', quantity: 1 });
        const before = await snapshot(store);
        for (const other of [bob, web]) {
          const missing = { cart_id: mine.cart_id };
          await expectStockError(store.getCart(other, mine.cart_id), 'CART_NOT_FOUND', missing);
          await expectStockError(
            store.addToCart(other, { sku: 'MUG', quantity: 1, cartId: mine.cart_id }),
            'CART_NOT_FOUND',
            missing,
          );
          await expectStockError(store.checkout(other, { cartId: mine.cart_id }), 'CART_NOT_FOUND', missing);
          await expectStockError(
            store.releaseCart(other, { cartId: mine.cart_id }),
            'CART_NOT_FOUND',
            missing,
          );
        }
        expect(await snapshot(store)).toEqual(before);
        // A static token's cart is likewise invisible to a grant of its channel.
        const shared = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await expectStockError(store.getCart(alice, shared.cart_id), 'CART_NOT_FOUND');
        // The owner still has its cart.
        expect((await store.getCart(alice, mine.cart_id)).lines).toMatchObject([{ sku: 'MUG', quantity: 1 }]);
        await store.addToCart(alice, { sku: 'MUG', quantity: 1, cartId: mine.cart_id });
        const order = await store.checkout(alice, { cartId: mine.cart_id });
        expect(order.lines).toMatchObject([{ sku: 'MUG', quantity: 2 }]);
        await expectAuditOk(store);
      });

      it("keeps one holder's idempotency keys apart from another's", async () => {
        const { store } = await setup();
        const a = await store.addToCart(alice, { sku: 'MUG', quantity: 1, idempotencyKey: 'k1' });
        const b = await store.addToCart(bob, { sku: 'MUG', quantity: 1, idempotencyKey: 'k1' });
        expect(b.cart_id).not.toBe(a.cart_id);
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 2 });
        // The same holder replays its own result.
        expect(await store.addToCart(alice, { sku: 'MUG', quantity: 1, idempotencyKey: 'k1' })).toEqual(a);
        await expectAuditOk(store);
      });

      it('caps units one holder holds at once (LIMIT_EXCEEDED per_holder), across its carts', async () => {
        const { store } = await setup({ limits: { maxHolderReserved: 4 } });
        const first = await store.addToCart(alice, { sku: 'TSHIRT-M', quantity: 3 });
        await store.addToCart(alice, { sku: 'MUG', quantity: 1 });
        const before = await snapshot(store);
        await expectStockError(store.addToCart(alice, { sku: 'MUG', quantity: 1 }), 'LIMIT_EXCEEDED', {
          cap: 'per_holder',
          limit: 4,
        });
        await expectStockError(
          store.addToCart(alice, { sku: 'MUG', quantity: 1, cartId: first.cart_id }),
          'LIMIT_EXCEEDED',
          { cap: 'per_holder' },
        );
        expect(await snapshot(store)).toEqual(before);
        // Another holder of the channel, and the channel-wide holder, are not held back by it.
        await store.addToCart(bob, { sku: 'MUG', quantity: 4 });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 5 });
        // Untracked items hold nothing, so they never count.
        await store.addToCart(alice, { sku: 'EBOOK', quantity: 3, cartId: first.cart_id });
        // Releasing frees the allowance.
        await store.releaseCart(alice, { cartId: first.cart_id });
        await store.addToCart(alice, { sku: 'TSHIRT-M', quantity: 2 });
        await expectAuditOk(store);
      });

      it("does not count a holder's expired carts, but counts a revived one in full", async () => {
        const { store, clock } = await setup({ limits: { maxHolderReserved: 4 } });
        const old = await store.addToCart(alice, { sku: 'MUG', quantity: 3 });
        clock.advance(TTL + 1);
        // A different SKU, so nothing has freed the MUG holds yet: they still do not count.
        const fresh = await store.addToCart(alice, { sku: 'TSHIRT-M', quantity: 3 });
        const before = await snapshot(store);
        // Reviving the old cart would hold 3 + 3 + 1 (its unreleased holds included).
        await expectStockError(
          store.addToCart(alice, { sku: 'EBOOK', quantity: 1, cartId: old.cart_id }),
          'LIMIT_EXCEEDED',
          { cap: 'per_holder', limit: 4 },
        );
        expect(await snapshot(store)).toEqual(before);
        await store.releaseCart(alice, { cartId: fresh.cart_id });
        const revived = await store.addToCart(alice, { sku: 'MUG', quantity: 1, cartId: old.cart_id });
        expect(revived).toMatchObject({ status: 'open', item_count: 4 });
        await expectAuditOk(store);
      });

      it('revoking a grant puts what it held back on sale: its carts released, its unpaid orders cancelled', async () => {
        const { store, clock } = await setup();
        const { oauth } = store;
        const grant = await signIn(store, 'grt_revoked');
        const shopper: CallContext = { channel: 'web', holder: grant.id };
        await store.setCheckoutMode('web', 'payment');
        const paying = await store.addToCart(shopper, { sku: 'MUG', quantity: 2 });
        const order = await store.checkout(shopper, { cartId: paying.cart_id });
        expect(order.status).toBe('awaiting_payment');
        const open = await store.addToCart(shopper, { sku: 'MUG', quantity: 3 });
        await store.addToCart(shopper, { sku: 'EBOOK', quantity: 1, cartId: open.cart_id });
        // An expired cart whose holds no sweep has freed yet is released too.
        const stale = await store.addToCart(shopper, { sku: 'TSHIRT-M', quantity: 1 });
        clock.advance(TTL / 3);
        await store.addToCart(shopper, { sku: 'TSHIRT-M', quantity: 1, cartId: open.cart_id });
        clock.advance(TTL - TTL / 3);
        expect((await store.getCart(shopper, stale.cart_id)).status).toBe('expired');
        expect(await level(store, 'MUG')).toMatchObject({ available: 0 });

        expect(await oauth.revokeGrant(grant.id, T0 + TTL, 'revoked by token revoke')).toBe(true);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0, available: 5 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 0 });
        for (const cart of [open, stale]) {
          expect((await store.getCart(shopper, cart.cart_id)).status).toBe('released');
        }
        expect(await store.getOrder(shopper, order.order_id)).toMatchObject({
          status: 'cancelled',
          cancel_reason: 'grant_revoked',
        });
        await store.addToCart(bot, { sku: 'MUG', quantity: 5 });
        await expectAuditOk(store);
      });

      it("a code redeemed twice revokes its grant, and the grant's carts are released", async () => {
        const { store } = await setup();
        const grant = await signIn(store, 'grt_copied');
        const shopper: CallContext = { channel: 'web', holder: grant.id };
        const cart = await store.addToCart(shopper, { sku: 'MUG', quantity: 5 });
        const again = { ...grant, id: 'grt_other' };
        const tokens = {
          access_hash: 'a2',
          access_expires_at: T0 + 1,
          refresh_hash: 'r2',
          refresh_expires_at: T0 + 1,
        };
        expect(await store.oauth.redeemCode(grant.codeHash, T0 + 1, again, tokens)).toBe('reused');
        expect((await store.getCart(shopper, cart.cart_id)).status).toBe('released');
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 0, available: 5 });
        await expectAuditOk(store);
      });

      it('leaves a static token (no holder) to the channel cap alone', async () => {
        const { store } = await setup({ limits: { maxHolderReserved: 1 } });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 5 });
        await store.addToCart(web, { sku: 'MUG', quantity: 5 });
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 5 });
        await expectAuditOk(store);
      });
    });

    describe('reservation TTL', () => {
      it('sets expires_at to now + TTL and moves it on every add_to_cart', async () => {
        const ttl = 10 * 60_000;
        const { store, clock } = await setup({ reservationTtlMs: ttl });
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        expect(cart.expires_at).toBe(iso(T0 + ttl));
        clock.advance(4 * 60_000);
        const later = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, cartId: cart.cart_id });
        expect(later.expires_at).toBe(iso(T0 + 4 * 60_000 + ttl));
        expect(later.created_at).toBe(iso(T0));
        clock.advance(ttl - 1);
        expect((await store.getCart(web, cart.cart_id)).status).toBe('open');
        clock.advance(1);
        expect((await store.getCart(web, cart.cart_id)).status).toBe('expired');
        await expectAuditOk(store);
      });

      it('never moves expires_at past the first hold plus the max hold: a hold at the cap cannot be renewed', async () => {
        const maxHold = 60 * 60_000;
        const { store, clock } = await setup({ limits: { maxHolderReserved: 2 }, maxHoldMs: maxHold });
        const alice: CallContext = { channel: 'web', holder: 'grant_alice' };
        const cart = await store.addToCart(alice, { sku: 'MUG', quantity: 2 });
        // At its cap, the holder adds an untracked item and releases it, every 10 minutes.
        for (let minute = 10; minute < 60; minute += 10) {
          clock.advance(10 * 60_000);
          const renewed = await store.addToCart(alice, { sku: 'EBOOK', quantity: 1, cartId: cart.cart_id });
          expect(renewed.expires_at).toBe(iso(Math.min(T0 + minute * 60_000 + TTL, T0 + maxHold)));
          await store.releaseCart(alice, { cartId: cart.cart_id, sku: 'EBOOK' });
        }
        clock.advance(10 * 60_000);
        expect((await store.getCart(alice, cart.cart_id)).status).toBe('expired');
        expect(await level(store, 'MUG')).toMatchObject({ available: 5 });
        const before = await snapshot(store);
        await expectStockError(
          store.addToCart(alice, { sku: 'EBOOK', quantity: 1, cartId: cart.cart_id }),
          'LIMIT_EXCEEDED',
          { cap: 'max_hold', limit: maxHold },
        );
        expect(await snapshot(store)).toEqual(before);
        // The units are free for anyone; the holder may still start a new cart.
        await store.addToCart(bot, { sku: 'MUG', quantity: 5 });
        await expectAuditOk(store);
      });

      it('reviving an expired cart does not restart its max hold', async () => {
        const { store, clock } = await setup({ maxHoldMs: 30 * 60_000 });
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        clock.advance(TTL + 60_000);
        const revived = await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart.cart_id });
        expect(revived).toMatchObject({ status: 'open', expires_at: iso(T0 + 30 * 60_000) });
        expect(revived.created_at).toBe(iso(T0));
        await expectAuditOk(store);
      });

      it("an expired reservation does not block another channel's purchase", async () => {
        const { store, clock } = await setup();
        const held = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        await expectStockError(store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 }), 'OUT_OF_STOCK');
        clock.advance(TTL + 1);
        // No sweep ran: the write itself frees the expired hold.
        const cart = await store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 });
        const order = await store.checkout(bot, { cartId: cart.cart_id });
        expect(order.lines).toMatchObject([{ sku: 'LAST-ONE', quantity: 1 }]);
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 0, reserved: 0 });
        expect((await store.getCart(web, held.cart_id)).status).toBe('expired');
        await expectAuditOk(store);
      });

      it('read tools count expired holds as available before any sweep', async () => {
        const { store, clock } = await setup();
        await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        expect((await store.checkStock(['LAST-ONE'])).products[0]).toMatchObject({
          available: 0,
          in_stock: false,
        });

        clock.advance(TTL + 1);
        const { products } = await store.checkStock(['LAST-ONE', 'MUG']);
        expect(products.find((p) => p.sku === 'LAST-ONE')).toMatchObject({ available: 1, in_stock: true });
        expect(products.find((p) => p.sku === 'MUG')).toMatchObject({ available: 5 });
        const found = await store.searchProducts({ query: 'print', limit: 10, inStockOnly: true });
        expect(found.map((p) => p.sku)).toEqual(['LAST-ONE']);
        expect(found[0]).toMatchObject({ available: 1, in_stock: true });
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 1, reserved: 0, available: 1 });
        await expectAuditOk(store);
      });

      it('get_cart reports an expired cart as expired, before and after the sweep', async () => {
        const { store, clock } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        clock.advance(TTL + 1);
        const before = await store.getCart(web, cart_id);
        expect(before.status).toBe('expired');
        expect(before.lines).toMatchObject([{ sku: 'MUG', quantity: 2 }]);
        await store.sweepExpired();
        const after = await store.getCart(web, cart_id);
        expect(after.status).toBe('expired');
        expect(after.lines).toMatchObject([{ sku: 'MUG', quantity: 2 }]);
        await expectAuditOk(store);
      });

      it('sweepExpired releases expired carts in batches and reports carts and units', async () => {
        const { store, clock } = await setup();
        for (let i = 0; i < 5; i++)
          await store.addToCart(i % 2 ? web : bot, { sku: 'TSHIRT-M', quantity: 1 });
        await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        clock.advance(TTL / 2);
        const fresh = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 2 });
        clock.advance(TTL / 2 + 1);

        expect(await store.sweepExpired(2)).toEqual({ carts: 6, units: 7 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ on_hand: 10, reserved: 2 });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0 });
        expect((await store.getCart(web, fresh.cart_id)).status).toBe('open');
        expect(await store.sweepExpired(2)).toEqual({ carts: 0, units: 0 });
        await expectAuditOk(store);

        clock.advance(TTL);
        expect(await store.sweepExpired()).toEqual({ carts: 1, units: 2 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 0 });
        await expectAuditOk(store);
      });

      it('sweepExpired does not count holds a write already freed, and untracked lines hold nothing', async () => {
        const { store, clock } = await setup();
        const a = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        await store.addToCart(web, { sku: 'EBOOK', quantity: 2, cartId: a.cart_id });
        clock.advance(TTL + 1);
        await store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 });
        clock.advance(TTL + 1);
        const swept = await store.sweepExpired();
        expect(swept).toEqual({ carts: 2, units: 1 });
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 1, reserved: 0 });
        await expectAuditOk(store);
      });

      it('checkout of an expired cart re-reserves and sells when the stock is still there', async () => {
        const { store, clock } = await setup();
        const unswept = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const swept = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3 });
        clock.advance(TTL + 1);
        const order1 = await store.checkout(web, { cartId: unswept.cart_id });
        expect(order1.lines).toMatchObject([{ sku: 'MUG', quantity: 2 }]);
        await store.sweepExpired();
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 0 });
        const order2 = await store.checkout(web, { cartId: swept.cart_id });
        expect(order2.lines).toMatchObject([{ sku: 'TSHIRT-M', quantity: 3 }]);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ on_hand: 7, reserved: 0 });
        expect((await store.getCart(web, swept.cart_id)).status).toBe('checked_out');
        await expectAuditOk(store);
      });

      it('checkout of an expired cart takes back stock that another, also expired, cart was holding', async () => {
        const { store, clock } = await setup();
        const first = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        clock.advance(TTL + 1);
        await store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 });
        clock.advance(TTL + 1);
        // Both carts are expired; the bot's still holds the unit until something frees it.
        const order = await store.checkout(web, { cartId: first.cart_id });
        expect(order.lines).toMatchObject([{ sku: 'LAST-ONE', quantity: 1 }]);
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 0, reserved: 0 });
        await expectAuditOk(store);
      });

      it('checkout of an expired cart whose stock was taken fails OUT_OF_STOCK naming the short lines, sells nothing', async () => {
        const { store, clock } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        await store.addToCart(web, { sku: 'MUG', quantity: 2, cartId: cart_id });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, cartId: cart_id });
        clock.advance(TTL + 1);
        const taker = await store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 });
        await store.addToCart(bot, { sku: 'MUG', quantity: 4, cartId: taker.cart_id });

        const before = await snapshot(store);
        const error = await expectStockError(store.checkout(web, { cartId: cart_id }), 'OUT_OF_STOCK', {
          sku: 'LAST-ONE',
          requested: 1,
          available: 0,
        });
        const lines = error.details.lines as { sku: string }[];
        expect(lines.map((l) => l.sku).sort()).toEqual(['LAST-ONE', 'MUG']);
        expect(lines.find((l) => l.sku === 'MUG')).toMatchObject({ requested: 2, available: 1 });
        expect(error.message).toContain('LAST-ONE');
        expect(error.message).toContain('MUG');
        expect(await snapshot(store)).toEqual(before);
        expect((await store.getCart(web, cart_id)).status).toBe('expired');
        await expectAuditOk(store);

        // Once the stock is back the same cart can still be bought.
        await store.releaseCart(bot, { cartId: taker.cart_id });
        const order = await store.checkout(web, { cartId: cart_id });
        expect(order.lines.map((l) => [l.sku, l.quantity])).toEqual(
          expect.arrayContaining([
            ['LAST-ONE', 1],
            ['MUG', 2],
            ['TSHIRT-M', 1],
          ]),
        );
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 0, reserved: 0 });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0 });
        await expectAuditOk(store);
      });

      it('add_to_cart on an expired cart revives it: every line is held again and the expiry moves', async () => {
        const { store, clock } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 2 });
        clock.advance(TTL + 1);
        await store.sweepExpired();
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 0 });

        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id });
        expect(cart.status).toBe('open');
        expect(cart.expires_at).toBe(iso(T0 + TTL + 1 + TTL));
        expect(cart.lines.map((l) => [l.sku, l.quantity]).sort()).toEqual([
          ['MUG', 1],
          ['TSHIRT-M', 2],
        ]);
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 2 });
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 1 });
        expect((await store.getCart(web, cart_id)).status).toBe('open');
        await expectAuditOk(store);
      });

      it('add_to_cart on an expired cart whose stock is gone fails OUT_OF_STOCK and reserves nothing', async () => {
        const { store, clock } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        clock.advance(TTL + 1);
        await store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 });
        const before = await snapshot(store);
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id }),
          'OUT_OF_STOCK',
          {
            sku: 'LAST-ONE',
          },
        );
        expect(await snapshot(store)).toEqual(before);
        const cart = await store.getCart(web, cart_id);
        expect(cart.status).toBe('expired');
        expect(cart.lines.map((l) => l.sku)).toEqual(['LAST-ONE']);
        await expectAuditOk(store);
      });

      it('add_to_cart of a SKU the revived cart already holds counts the units revival just took back', async () => {
        // MUG has 5: the swept cart's 4 are held again by the revival, so only 1 more is available.
        const { store, clock } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 4 });
        clock.advance(TTL + 1);
        await store.sweepExpired();
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 0 });
        const before = await snapshot(store);

        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 2, cartId: cart_id }),
          'OUT_OF_STOCK',
          { sku: 'MUG', available: 1 },
        );
        expect(await snapshot(store)).toEqual(before);
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id });
        expect(cart.lines).toMatchObject([{ sku: 'MUG', quantity: 5 }]);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 5 });
        await expectAuditOk(store);
      });

      it('add_to_cart on an expired cart takes back stock another, also expired, cart was holding', async () => {
        const { store, clock } = await setup();
        const first = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1 });
        clock.advance(TTL + 1);
        await store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 });
        clock.advance(TTL + 1);
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: first.cart_id });
        expect(cart.status).toBe('open');
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 1, reserved: 1 });
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ idempotency

    describe('idempotency', () => {
      it('add_to_cart with the same key and request returns the same cart and reserves once', async () => {
        const { store, clock } = await setup();
        const first = await store.addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: 'k-1' });
        clock.advance(1_000);
        const again = await store.addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: 'k-1' });
        expect(again).toEqual(first);
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 2 });

        // With a cart id too.
        const add = { sku: 'TSHIRT-M', quantity: 1, cartId: first.cart_id, idempotencyKey: 'k-2' };
        const added = await store.addToCart(web, add);
        expect(await store.addToCart(web, add)).toEqual(added);
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 1 });
        expect((await store.getCart(web, first.cart_id)).item_count).toBe(3);
        await expectAuditOk(store);
      });

      it('the same key with a different request is IDEMPOTENCY_CONFLICT', async () => {
        const { store } = await setup();
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 2, idempotencyKey: 'k-1' });
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 3, idempotencyKey: 'k-1' }),
          'IDEMPOTENCY_CONFLICT',
          { key: 'k-1' },
        );
        await expectStockError(
          store.addToCart(web, { sku: 'TSHIRT-M', quantity: 2, idempotencyKey: 'k-1' }),
          'IDEMPOTENCY_CONFLICT',
        );
        await expectStockError(
          store.addToCart(web, { sku: 'MUG', quantity: 2, cartId: cart.cart_id, idempotencyKey: 'k-1' }),
          'IDEMPOTENCY_CONFLICT',
        );
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 2 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 0 });
        await expectAuditOk(store);
      });

      it('keys are scoped per channel and per tool', async () => {
        const { store } = await setup();
        const a = await store.addToCart(web, { sku: 'MUG', quantity: 1, idempotencyKey: 'same' });
        const b = await store.addToCart(bot, { sku: 'MUG', quantity: 1, idempotencyKey: 'same' });
        expect(b.cart_id).not.toBe(a.cart_id);
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 2 });
        const order = await store.checkout(web, { cartId: a.cart_id, idempotencyKey: 'same' });
        expect(order.cart_id).toBe(a.cart_id);
        await expectAuditOk(store);
      });

      it('a refused call leaves no record: the same key succeeds after a restock', async () => {
        const { store } = await setup();
        await store.addToCart(bot, { sku: 'LAST-ONE', quantity: 1 });
        await expectStockError(
          store.addToCart(web, { sku: 'LAST-ONE', quantity: 1, idempotencyKey: 'retry-me' }),
          'OUT_OF_STOCK',
        );
        await store.restock(admin, { sku: 'LAST-ONE', quantity: 1 });
        const cart = await store.addToCart(web, { sku: 'LAST-ONE', quantity: 1, idempotencyKey: 'retry-me' });
        expect(cart.lines).toMatchObject([{ sku: 'LAST-ONE', quantity: 1 }]);
        expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 2, reserved: 2 });
        await expectAuditOk(store);
      });

      it('checkout replays return the same order, with or without the key, and sell once', async () => {
        const { store, clock } = await setup();
        const cart = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const order = await store.checkout(web, { cartId: cart.cart_id, idempotencyKey: 'pay-1' });
        clock.advance(5_000);
        expect(await store.checkout(web, { cartId: cart.cart_id, idempotencyKey: 'pay-1' })).toEqual(order);
        expect(await store.checkout(web, { cartId: cart.cart_id })).toEqual(order);
        expect(await store.checkout(web, { cartId: cart.cart_id, idempotencyKey: 'pay-2' })).toEqual(order);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0 });

        const other = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await expectStockError(
          store.checkout(web, { cartId: other.cart_id, idempotencyKey: 'pay-1' }),
          'IDEMPOTENCY_CONFLICT',
          { key: 'pay-1' },
        );
        expect((await store.getCart(web, other.cart_id)).status).toBe('open');
        await expectAuditOk(store);
      });

      it('pruneIdempotency drops records older than the window and keeps newer ones', async () => {
        const { store, clock } = await setup();
        const day = 24 * 3_600_000;
        await store.addToCart(web, { sku: 'MUG', quantity: 1, idempotencyKey: 'old' });
        clock.advance(day - 60_000);
        await store.addToCart(web, { sku: 'MUG', quantity: 1, idempotencyKey: 'new' });
        expect(await store.pruneIdempotency(day)).toBe(0);
        clock.advance(120_000);
        expect(await store.pruneIdempotency(day)).toBe(1);
        // The old key is free again; the new one still replays.
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, idempotencyKey: 'old' });
        await expectStockError(
          store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, idempotencyKey: 'new' }),
          'IDEMPOTENCY_CONFLICT',
        );
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ release_cart

    describe('releaseCart', () => {
      it('releases the whole cart: status released, stock back, a repeat is a no-op', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3, cartId: cart_id });
        const result = await store.releaseCart(web, { cartId: cart_id });
        expect(result.cart.status).toBe('released');
        expect(result.cart.cart_id).toBe(cart_id);
        expect([...result.released].sort((a, b) => a.sku.localeCompare(b.sku))).toEqual([
          { sku: 'MUG', quantity: 2 },
          { sku: 'TSHIRT-M', quantity: 3 },
        ]);
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0, available: 5 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ on_hand: 10, reserved: 0 });
        expect((await store.getCart(web, cart_id)).status).toBe('released');

        const again = await store.releaseCart(web, { cartId: cart_id });
        expect(again.released).toEqual([]);
        expect(again.cart.status).toBe('released');
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 0 });
        await expectAuditOk(store);
      });

      it('releases one SKU: its line goes, the cart stays open', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 3, cartId: cart_id });
        const result = await store.releaseCart(web, { cartId: cart_id, sku: 'MUG' });
        expect(result.released).toEqual([{ sku: 'MUG', quantity: 2 }]);
        expect(result.cart.status).toBe('open');
        expect(result.cart.lines.map((l) => l.sku)).toEqual(['TSHIRT-M']);
        expect(result.cart.total_minor).toBe(3 * 1999);
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 0 });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ reserved: 3 });

        const again = await store.releaseCart(web, { cartId: cart_id, sku: 'MUG' });
        expect(again.released).toEqual([]);
        expect(again.cart.status).toBe('open');
        await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id });
        expect(await level(store, 'MUG')).toMatchObject({ reserved: 1 });
        await expectAuditOk(store);
      });

      it('releases an expired cart without double-counting its holds', async () => {
        const { store, clock } = await setup();
        const a = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const b = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        clock.advance(TTL + 1);
        await store.sweepExpired();
        await store.releaseCart(web, { cartId: a.cart_id });
        clock.advance(1);
        await store.releaseCart(web, { cartId: b.cart_id, sku: 'MUG' });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0 });
        expect((await store.getCart(web, a.cart_id)).status).toBe('released');
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ checkout

    describe('checkout', () => {
      it('makes an order with unit prices and total, sells the stock and closes the cart', async () => {
        const { store, clock } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 2 });
        await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart_id });
        clock.advance(60_000);
        const order = await store.checkout(web, { cartId: cart_id });
        expect(order.order_id).toMatch(/^ord_[0-9A-Za-z]{10,}$/);
        expect({ ...order, lines: [...order.lines].sort((a, b) => a.sku.localeCompare(b.sku)) }).toEqual({
          order_id: order.order_id,
          cart_id,
          lines: [
            { sku: 'MUG', name: 'Coffee mug', quantity: 1, unit_price_minor: 1250, line_total_minor: 1250 },
            {
              sku: 'TSHIRT-M',
              name: 'Cotton T-shirt, size M',
              quantity: 2,
              unit_price_minor: 1999,
              line_total_minor: 3998,
            },
          ],
          total_minor: 5248,
          currency: 'EUR',
          total_display: '52.48 EUR',
          created_at: iso(T0 + 60_000),
          // A direct channel: the checkout is the sale, paid at once.
          channel: 'web',
          status: 'paid',
          pay_by: null,
          payment_url: null,
          payment_instructions: null,
          payment_reference: null,
          paid_at: iso(T0 + 60_000),
          cancelled_at: null,
          cancel_reason: null,
          needs_refund: false,
        });
        expect(await level(store, 'TSHIRT-M')).toMatchObject({ on_hand: 8, reserved: 0, available: 8 });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 4, reserved: 0, available: 4 });
        const cart = await store.getCart(web, cart_id);
        expect(cart.status).toBe('checked_out');
        expect(cart.order_id).toBe(order.order_id);
        await expectAuditOk(store);
      });

      it('keeps the prices it sold at when the catalog price changes later', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const order = await store.checkout(web, { cartId: cart_id });
        await store.upsertProduct(admin, {
          sku: 'MUG',
          name: 'Coffee mug',
          price_minor: 9900,
          currency: 'EUR',
        });
        expect(await store.checkout(web, { cartId: cart_id })).toEqual(order);
        expect(order.total_minor).toBe(2500);
        const sold = await store.getCart(web, cart_id);
        expect(sold).toMatchObject({ status: 'checked_out', order_id: order.order_id, total_minor: 2500 });
        expect(sold.lines).toEqual(order.lines);
        await expectAuditOk(store);
      });

      it('refuses a cart without lines with CART_EMPTY', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await store.releaseCart(web, { cartId: cart_id, sku: 'MUG' });
        await expectStockError(store.checkout(web, { cartId: cart_id }), 'CART_EMPTY', { cart_id });
        expect((await store.getCart(web, cart_id)).status).toBe('open');
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0 });
        await expectAuditOk(store);
      });

      it('sells untracked products without holding or decrementing stock', async () => {
        const { store } = await setup({ limits: { maxChannelReserved: 1 } });
        const cart = await store.addToCart(web, { sku: 'EBOOK', quantity: 3 });
        expect(cart.lines).toMatchObject([{ sku: 'EBOOK', quantity: 3, line_total_minor: 2997 }]);
        expect(await level(store, 'EBOOK')).toMatchObject({ on_hand: 0, reserved: 0, available: null });
        await store.addToCart(web, { sku: 'MUG', quantity: 1, cartId: cart.cart_id });
        const order = await store.checkout(web, { cartId: cart.cart_id });
        expect(order.total_minor).toBe(2997 + 1250);
        expect(await level(store, 'EBOOK')).toEqual({
          sku: 'EBOOK',
          name: 'Brewing guide (PDF)',
          on_hand: 0,
          reserved: 0,
          available: null,
          track_stock: false,
          active: true,
        });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 4, reserved: 0 });
        await expectAuditOk(store);
      });

      it('a product deactivated after it was added makes checkout fail UNKNOWN_SKU and sells nothing', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 1, cartId: cart_id });
        await store.upsertProduct(admin, {
          sku: 'TSHIRT-M',
          name: 'Cotton T-shirt, size M',
          price_minor: 1999,
          currency: 'EUR',
          active: false,
        });
        const before = await snapshot(store);
        await expectStockError(store.checkout(web, { cartId: cart_id }), 'UNKNOWN_SKU', { sku: 'TSHIRT-M' });
        expect(await snapshot(store)).toEqual(before);
        expect((await store.getCart(web, cart_id)).status).toBe('open');
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ admin

    describe('admin operations', () => {
      it('restock adds units and returns the new level', async () => {
        const { store } = await setup();
        await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const after = await store.restock(admin, { sku: 'MUG', quantity: 7, note: 'delivery 42' });
        expect(after).toEqual({
          sku: 'MUG',
          name: 'Coffee mug',
          on_hand: 12,
          reserved: 2,
          available: 10,
          track_stock: true,
          active: true,
        });
        await expectStockError(store.restock(admin, { sku: 'NOPE', quantity: 1 }), 'UNKNOWN_SKU', {
          sku: 'NOPE',
        });
        await expectAuditOk(store);
      });

      it('setStock sets on-hand, refuses below what carts hold (BELOW_RESERVED) and frees expired holds first', async () => {
        const { store, clock } = await setup();
        expect(await store.setStock(admin, { sku: 'MUG', quantity: 3 })).toMatchObject({
          on_hand: 3,
          available: 3,
        });
        await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        await expectStockError(store.setStock(admin, { sku: 'MUG', quantity: 1 }), 'BELOW_RESERVED', {
          sku: 'MUG',
          requested: 1,
          reserved: 2,
        });
        expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 2 });
        expect(await store.setStock(admin, { sku: 'MUG', quantity: 2 })).toMatchObject({
          on_hand: 2,
          reserved: 2,
          available: 0,
        });
        expect(await store.setStock(admin, { sku: 'MUG', quantity: 2 })).toMatchObject({ on_hand: 2 });
        clock.advance(TTL + 1);
        expect(await store.setStock(admin, { sku: 'MUG', quantity: 0 })).toMatchObject({
          on_hand: 0,
          reserved: 0,
        });
        await expectStockError(store.setStock(admin, { sku: 'NOPE', quantity: 1 }), 'UNKNOWN_SKU');
        await expectAuditOk(store);
      });

      it('upsertProduct creates, updates and deactivates a product', async () => {
        const { store } = await setup();
        const created = await store.upsertProduct(admin, {
          sku: 'BOWL',
          name: 'Cereal bowl',
          description: 'Glazed',
          price_minor: 900,
          currency: 'EUR',
        });
        expect(created).toEqual({
          sku: 'BOWL',
          name: 'Cereal bowl',
          description: 'Glazed',
          price_minor: 900,
          currency: 'EUR',
          price_display: '9.00 EUR',
          available: 0,
          in_stock: false,
        });
        await store.restock(admin, { sku: 'BOWL', quantity: 4 });
        const updated = await store.upsertProduct(admin, {
          sku: 'BOWL',
          name: 'Large cereal bowl',
          price_minor: 1100,
          currency: 'EUR',
        });
        expect(updated).toMatchObject({
          name: 'Large cereal bowl',
          price_minor: 1100,
          available: 4,
          // Left out, so kept.
          description: 'Glazed',
        });
        await store.addToCart(web, { sku: 'BOWL', quantity: 1 });

        await store.upsertProduct(admin, {
          sku: 'BOWL',
          name: 'Large cereal bowl',
          price_minor: 1100,
          currency: 'EUR',
          active: false,
        });
        expect((await store.checkStock(['BOWL'])).unknown_skus).toEqual(['BOWL']);
        expect(await store.searchProducts({ query: 'bowl', limit: 10, inStockOnly: false })).toEqual([]);
        await expectStockError(store.addToCart(web, { sku: 'BOWL', quantity: 1 }), 'UNKNOWN_SKU');
        expect(await level(store, 'BOWL')).toMatchObject({ on_hand: 4, reserved: 1, active: false });
        await expectAuditOk(store);
      });

      it('upsertProduct cannot toggle track_stock while carts hold the product', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        const mug = { sku: 'MUG', name: 'Coffee mug', price_minor: 1250, currency: 'EUR' };
        const error = await expectStockError(
          store.upsertProduct(admin, { ...mug, track_stock: false }),
          'INVALID_INPUT',
        );
        expect(error.message).toMatch(/track_stock/);
        expect((await store.checkStock(['MUG'])).products[0]).toMatchObject({ available: 4 });

        await store.releaseCart(web, { cartId: cart_id });
        expect(await store.upsertProduct(admin, { ...mug, track_stock: false })).toMatchObject({
          available: null,
          in_stock: true,
        });
        expect(await store.upsertProduct(admin, { ...mug, track_stock: true })).toMatchObject({
          available: 5,
        });
        await expectAuditOk(store);
      });

      it('upsertProduct cannot change the currency while a cart could still sell the product', async () => {
        const { store, clock } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 2 });
        const mug = { sku: 'MUG', name: 'Coffee mug', price_minor: 1500, currency: 'JPY' };
        const error = await expectStockError(store.upsertProduct(admin, mug), 'INVALID_INPUT', {
          field: 'currency',
        });
        expect(error.message).toMatch(/currency: cannot change while 1 open or revivable carts hold "MUG"/);
        // An expired cart can be revived, so it still counts, swept or not.
        clock.advance(TTL + 1);
        await store.sweepExpired();
        await expectStockError(store.upsertProduct(admin, mug), 'INVALID_INPUT', { field: 'currency' });
        const order = await store.checkout(web, { cartId: cart_id });
        expect(order).toMatchObject({ currency: 'EUR', total_minor: 2500 });
        expect(await store.upsertProduct(admin, mug)).toMatchObject({
          currency: 'JPY',
          price_display: '1500 JPY',
        });
        await expectAuditOk(store);
      });

      it('upsertProduct keeps the description and active flag it is not given', async () => {
        const { store } = await setup();
        const mug = { sku: 'MUG', name: 'Coffee mug', price_minor: 1250, currency: 'EUR' };
        await store.upsertProduct(admin, { ...mug, description: 'Stoneware', active: false });
        await store.upsertProduct(admin, { ...mug, price_minor: 1300 });
        expect(await level(store, 'MUG')).toMatchObject({ active: false });
        await store.upsertProduct(admin, { ...mug, active: true });
        expect((await store.checkStock(['MUG'])).products[0]).toMatchObject({
          description: 'Stoneware',
          price_minor: 1250,
        });
        await expectAuditOk(store);
      });

      it('upsertProduct may toggle track_stock once the only holds have expired', async () => {
        const { store, clock } = await setup();
        await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        clock.advance(TTL + 1);
        const mug = { sku: 'MUG', name: 'Coffee mug', price_minor: 1250, currency: 'EUR' };
        expect(await store.upsertProduct(admin, { ...mug, track_stock: false })).toMatchObject({
          available: null,
        });
        await expectAuditOk(store);
      });

      it('stockLevels lists every product, or the ones asked for', async () => {
        const { store } = await setup();
        await store.addToCart(web, { sku: 'TSHIRT-M', quantity: 2 });
        const all = await store.stockLevels();
        expect(all.map((l) => l.sku).sort()).toEqual(CONTRACT_CATALOG.map((r) => r.sku).sort());
        const bySku = new Map(all.map((l) => [l.sku, l]));
        expect(bySku.get('TSHIRT-M')).toEqual({
          sku: 'TSHIRT-M',
          name: 'Cotton T-shirt, size M',
          on_hand: 10,
          reserved: 2,
          available: 8,
          track_stock: true,
          active: true,
        });
        expect(bySku.get('EBOOK')).toMatchObject({ available: null, track_stock: false });
        expect(bySku.get('RETIRED')).toMatchObject({ on_hand: 4, active: false });

        const some = await store.stockLevels(['MUG', 'NOPE', 'LAST-ONE']);
        expect(some.map((l) => l.sku).sort()).toEqual(['LAST-ONE', 'MUG']);
        await expectAuditOk(store);
      });
    });

    // ------------------------------------------------------------ tokens

    describe('tokens', () => {
      it('creates a token whose secret is shown once and never listed', async () => {
        const { store, clock } = await setup({ seed: false });
        const issued = await store.createToken('web', false, 'storefront');
        expect(issued.token.length).toBeGreaterThanOrEqual(32);
        expect(issued.record).toEqual({
          id: issued.record.id,
          channel: 'web',
          admin: false,
          label: 'storefront',
          created_at: iso(T0),
          revoked_at: null,
          last_used_at: null,
        });
        clock.advance(1_000);
        const ops = await store.createToken('ops', true);
        expect(ops.token).not.toBe(issued.token);
        expect(ops.record).toMatchObject({ channel: 'ops', admin: true, label: null });

        const listed = await store.listTokens();
        expect(listed.map((t) => t.id).sort()).toEqual([issued.record.id, ops.record.id].sort());
        const text = JSON.stringify(listed);
        for (const secret of [issued.token, ops.token]) {
          expect(text).not.toContain(secret);
          expect(text).not.toContain(createHash('sha256').update(secret, 'utf8').digest('hex'));
          expect(text).not.toContain(createHash('sha256').update(secret, 'utf8').digest('base64url'));
        }
        for (const record of listed) {
          expect(Object.keys(record).sort()).toEqual(
            ['admin', 'channel', 'created_at', 'id', 'label', 'last_used_at', 'revoked_at'].sort(),
          );
        }
      });

      it('verifies a live token, not a wrong one, and not after revocation', async () => {
        const { store } = await setup({ seed: false });
        const web1 = await store.createToken('web', false);
        const ops = await store.createToken('ops', true);
        expect(await store.verifyToken(web1.token)).toMatchObject({
          id: web1.record.id,
          channel: 'web',
          admin: false,
        });
        expect(await store.verifyToken(ops.token)).toMatchObject({
          id: ops.record.id,
          channel: 'ops',
          admin: true,
        });
        expect(await store.verifyToken('slk_wrong')).toBeUndefined();
        expect(await store.verifyToken('')).toBeUndefined();
        expect(await store.verifyToken(`${web1.token}x`)).toBeUndefined();
        expect(await store.verifyToken(web1.token.slice(0, -1))).toBeUndefined();

        expect(await store.revokeToken(web1.record.id)).toBe(true);
        expect(await store.verifyToken(web1.token)).toBeUndefined();
        expect(await store.revokeToken(web1.record.id)).toBe(false);
        expect(await store.revokeToken('tok_nosuchtoken')).toBe(false);
        expect(await store.verifyToken(ops.token)).toMatchObject({ channel: 'ops' });
        const revoked = (await store.listTokens()).find((t) => t.id === web1.record.id);
        expect(revoked?.revoked_at).not.toBeNull();
      });
    });

    // ------------------------------------------------------------ invalid input

    describe('invalid input', () => {
      const badQuantities = [0, -1, 1.5, 1e12, Number.NaN, Number.POSITIVE_INFINITY];
      const badSkus = ['', 'x'.repeat(65), 'a b', 'ü', 'a/b', "a'b", '%'];

      it('add_to_cart refuses bad quantities and SKUs with INVALID_INPUT and changes nothing', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        const before = await snapshot(store);
        for (const quantity of badQuantities) {
          const error = await expectStockError(
            store.addToCart(web, { sku: 'MUG', quantity }),
            'INVALID_INPUT',
            {
              field: 'quantity',
            },
          );
          expect(error.message).toMatch(/quantity/);
          await expectStockError(
            store.addToCart(web, { sku: 'MUG', quantity, cartId: cart_id }),
            'INVALID_INPUT',
          );
        }
        for (const sku of badSkus) {
          await expectStockError(store.addToCart(web, { sku, quantity: 1 }), 'INVALID_INPUT', {
            field: 'sku',
          });
        }
        expect(
          await store.addToCart(web, { sku: 'x'.repeat(64), quantity: 1 }).catch((e: StockError) => e.code),
        ).toBe('UNKNOWN_SKU');
        expect(await snapshot(store)).toEqual(before);
        expect((await store.getCart(web, cart_id)).item_count).toBe(1);
        await expectAuditOk(store);
      });

      it('restock, setStock and releaseCart refuse bad input with INVALID_INPUT and change nothing', async () => {
        const { store } = await setup();
        const { cart_id } = await store.addToCart(web, { sku: 'MUG', quantity: 1 });
        const before = await snapshot(store);
        for (const quantity of badQuantities) {
          await expectStockError(store.restock(admin, { sku: 'MUG', quantity }), 'INVALID_INPUT');
          if (quantity !== 0)
            await expectStockError(store.setStock(admin, { sku: 'MUG', quantity }), 'INVALID_INPUT');
        }
        for (const sku of badSkus) {
          await expectStockError(store.restock(admin, { sku, quantity: 1 }), 'INVALID_INPUT');
          await expectStockError(store.setStock(admin, { sku, quantity: 1 }), 'INVALID_INPUT');
          await expectStockError(store.releaseCart(web, { cartId: cart_id, sku }), 'INVALID_INPUT');
        }
        expect(await snapshot(store)).toEqual(before);
        expect((await store.getCart(web, cart_id)).status).toBe('open');
        await expectAuditOk(store);
      });

      it('upsertProduct refuses bad products with INVALID_INPUT', async () => {
        const { store } = await setup();
        const good = { sku: 'BOWL', name: 'Cereal bowl', price_minor: 900, currency: 'EUR' };
        const bad = [
          { ...good, sku: 'a b' },
          { ...good, sku: '' },
          { ...good, name: '' },
          { ...good, name: '   ' },
          { ...good, name: 'n'.repeat(201) },
          { ...good, price_minor: -1 },
          { ...good, price_minor: 9.5 },
          { ...good, price_minor: Number.NaN },
          { ...good, currency: 'eur' },
          { ...good, currency: 'EURO' },
          { ...good, currency: 'QQQ' },
        ];
        for (const product of bad) {
          await expectStockError(store.upsertProduct(admin, product), 'INVALID_INPUT');
        }
        expect(await store.stockLevels(['BOWL'])).toEqual([]);
        await expectAuditOk(store);
      });
    });
  });
}
