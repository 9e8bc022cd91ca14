// The Orders page's API over HTTP: listing with filters, one order, confirming and cancelling through the store,
// CSRF refusals and bad input (a specific error, nothing changed).
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createConsole } from '../../src/console/console.js';
import { ManualClock } from '../../src/domain/clock.js';
import type { OrderView } from '../../src/domain/types.js';
import { silentLogger } from '../../src/logger.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { serveHttp } from '../../src/transports/http.js';
import { HTTP_CATALOG } from '../helpers/catalog.js';
import { defaultHttpOptions, storeOptions } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';

const WINDOW = 30 * 60_000;
const shopper = { channel: 'claude', holder: 'grant_orders_test' };
const web = { channel: 'web' };

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Signed {
  base: string;
  cookie: string;
  csrf: string;
}

async function start() {
  const tmp = tempDir('stocklock-console-orders-');
  cleanups.push(tmp.remove);
  const db = join(tmp.dir, 'stocklock.db');
  const clock = new ManualClock(Date.UTC(2026, 2, 4, 10));
  const store = openSqliteStore(db, storeOptions({ clock }));
  cleanups.push(() => store.close());
  await store.importProducts({ channel: 'cli' }, HTTP_CATALOG);
  await store.setCheckoutMode('claude', 'payment');
  const queries = await openConsoleQueries(db, clock);
  cleanups.push(() => queries.close());
  const handle = createConsole({ store, queries, logger: silentLogger });
  const server = await serveHttp(store, defaultHttpOptions({ console: handle }), silentLogger);
  cleanups.push(() => server.close());
  cleanups.push(() => handle.close());
  const { token } = await store.createToken('ops', true);
  const base = server.url.replace(/\/mcp$/, '/console/');
  const form = await fetch(base);
  const preCookie = (form.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const formCsrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
  const response = await fetch(`${base}sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: preCookie },
    body: new URLSearchParams({ token, _csrf: formCsrf }).toString(),
  });
  const cookie = response.headers
    .getSetCookie()
    .map((c) => c.split(';')[0] ?? '')
    .find((c) => c.startsWith('stocklock_console=') && c.length > 'stocklock_console='.length);
  if (!cookie) throw new Error('sign-in failed');
  const shell = await (await fetch(base, { headers: { Cookie: cookie } })).text();
  const csrf = /name="csrf-token" content="([^"]+)"/.exec(shell)?.[1] ?? '';
  const signed: Signed = { base, cookie, csrf };
  const buy = async (ctx: { channel: string; holder?: string }, sku: string, quantity: number) => {
    const cart = await store.addToCart(ctx, { sku, quantity });
    return store.checkout(ctx, { cartId: cart.cart_id });
  };
  return { store, clock, signed, buy };
}

function post(s: Signed, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${s.base}api/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Cookie: s.cookie, 'X-CSRF-Token': s.csrf, ...headers },
    body: JSON.stringify(body),
  });
}

async function get(s: Signed, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${s.base}api/${path}`, { headers: { Cookie: s.cookie } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const listed = async (s: Signed, query: string) =>
  ((await get(s, `orders?${query}`)).body.orders as OrderView[]).map((o) => o.order_id);

describe('the Orders page over HTTP', () => {
  it('lists orders with filters, shows one, and says when a payment needs a refund', async () => {
    const { signed, clock, store, buy } = await start();
    const sale = await buy(web, 'MUG-WHT', 2);
    const late = await buy(shopper, 'LAST-FIVE', 5);
    clock.advance(WINDOW + 1);
    await store.sweepOverdueOrders();
    await buy(web, 'LAST-FIVE', 5);
    const waiting = await buy(shopper, 'TEE-BLK-M', 1);

    const first = await get(signed, 'orders');
    expect(first.status).toBe(200);
    expect(first.body.refunds_due).toBe(false);
    expect((first.body.orders as OrderView[]).length).toBe(4);
    expect(await listed(signed, 'status=awaiting_payment')).toEqual([waiting.order_id]);
    expect(await listed(signed, 'status=cancelled')).toEqual([late.order_id]);
    expect(await listed(signed, 'channel=claude&status=paid')).toEqual([]);
    expect(await listed(signed, 'from=2026-03-04&to=2026-03-04')).toHaveLength(4);
    expect(await listed(signed, 'to=2026-03-03')).toEqual([]);

    // The late payment finds the stock gone: nothing is sold, the order needs a refund.
    const paid = await post(signed, `orders/${late.order_id}/paid`, { reference: 'pi_late_1' });
    expect(paid.status).toBe(200);
    expect(await paid.json()).toMatchObject({ status: 'cancelled', needs_refund: true });
    expect(await listed(signed, 'needs_refund=true')).toEqual([late.order_id]);
    expect((await get(signed, 'orders?status=paid')).body.refunds_due).toBe(true);
    expect((await store.stockLevels(['LAST-FIVE']))[0]).toMatchObject({ on_hand: 0, reserved: 0 });

    const one = await get(signed, `orders/${sale.order_id}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({
      order_id: sale.order_id,
      status: 'paid',
      lines: [{ sku: 'MUG-WHT', quantity: 2 }],
    });
    const none = await get(signed, 'orders/ord_nope');
    expect(none.status).toBe(404);
    expect(none.body).toMatchObject({ error: { code: 'ORDER_NOT_FOUND' } });
    expect((await store.audit()).ok).toBe(true);
  });

  it('confirms a payment and cancels with and without restock, through the same store calls', async () => {
    const { signed, store, buy } = await start();
    const waiting = await buy(shopper, 'MUG-WHT', 3);
    expect((await store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ on_hand: 60, reserved: 3 });
    const paid = await post(signed, `orders/${waiting.order_id}/paid`, { reference: 'bank 2026-03-04' });
    expect(await paid.json()).toMatchObject({ status: 'paid', payment_reference: 'bank 2026-03-04' });
    expect((await store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ on_hand: 57, reserved: 0 });
    // Confirming again changes nothing.
    const again = await post(signed, `orders/${waiting.order_id}/paid`, {});
    expect(await again.json()).toMatchObject({ status: 'paid', payment_reference: 'bank 2026-03-04' });

    const restocked = await post(signed, `orders/${waiting.order_id}/cancel`, { restock: true });
    expect(await restocked.json()).toMatchObject({ status: 'cancelled', cancel_reason: 'merchant' });
    expect((await store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ on_hand: 60, reserved: 0 });

    const sale = await buy(web, 'TEE-BLK-M', 2);
    const written = await post(signed, `orders/${sale.order_id}/cancel`, { restock: false });
    expect(await written.json()).toMatchObject({ status: 'cancelled' });
    expect((await store.stockLevels(['TEE-BLK-M']))[0]).toMatchObject({ on_hand: 498 });

    const unpaid = await buy(shopper, 'LAST-FIVE', 2);
    await post(signed, `orders/${unpaid.order_id}/cancel`, { restock: false });
    expect((await store.stockLevels(['LAST-FIVE']))[0]).toMatchObject({ on_hand: 5, reserved: 0 });
    // A payment for an order the merchant cancelled is refused: refund it at the provider.
    const closed = await post(signed, `orders/${unpaid.order_id}/paid`, { reference: 'pi_x' });
    expect(closed.status).toBe(409);
    expect(await closed.json()).toMatchObject({ error: { code: 'ORDER_CLOSED' } });
    expect((await store.getOrder({ channel: 'cli', admin: true }, unpaid.order_id)).status).toBe('cancelled');
    expect((await store.audit()).ok).toBe(true);
  });

  it('pages back by the last order shown: fifty a page, none twice, none missed', async () => {
    const { signed, buy, clock } = await start();
    const made: string[] = [];
    for (let i = 0; i < 52; i++) {
      // Several orders share a millisecond: the id breaks the tie.
      if (i % 3 === 0) clock.advance(1);
      made.push((await buy(web, 'MUG-WHT', 1)).order_id);
    }
    const first = (await get(signed, 'orders')).body as { orders: OrderView[]; page: number };
    expect(first.page).toBe(50);
    expect(first.orders).toHaveLength(50);
    const last = first.orders.at(-1) as OrderView;
    const older = await listed(
      signed,
      `before_at=${Date.parse(last.created_at)}&before_id=${encodeURIComponent(last.order_id)}`,
    );
    expect(older).toHaveLength(2);
    const all = [...first.orders.map((o) => o.order_id), ...older];
    expect(new Set(all)).toEqual(new Set(made));
    expect(all).toHaveLength(52);
  });

  it('refuses bad input and a missing CSRF token with a clear error, and changes nothing', async () => {
    const { signed, store, buy } = await start();
    const waiting = await buy(shopper, 'MUG-WHT', 1);
    const before = await store.stockLevels();
    const badQueries: [string, string][] = [
      ['status=lost', 'status must be one of awaiting_payment, paid, cancelled'],
      ['channel=Not%20A%20Channel', 'channel must be'],
      ['needs_refund=yes', 'needs_refund must be true'],
      ['from=2026-13-40', 'must be a real date'],
      ['from=yesterday', 'must be a date as YYYY-MM-DD'],
      ['from=2026-03-05&to=2026-03-04', 'from must not be after to'],
      ['before_at=5', 'before_at and before_id go together'],
      ['before_at=soon&before_id=ord_x', 'before_at must be a time in ms'],
      ['status=paid&status=cancelled', 'status must be one of'],
      ['colour=red', 'colour'],
    ];
    for (const [query, words] of badQueries) {
      const { status, body } = await get(signed, `orders?${query}`);
      expect(status, query).toBe(400);
      expect(JSON.stringify(body), query).toContain(words);
      expect(body, query).toMatchObject({ error: { code: 'INVALID_INPUT' } });
    }
    const badPosts: [string, unknown, number, string][] = [
      [`orders/${waiting.order_id}/paid`, { reference: 'two\nlines' }, 400, 'plain text on one line'],
      [`orders/${waiting.order_id}/paid`, { reference: 'x'.repeat(201) }, 400, 'at most 200'],
      [`orders/${waiting.order_id}/paid`, { reference: 'ok', amount: 5 }, 400, 'amount'],
      [`orders/${waiting.order_id}/cancel`, {}, 400, 'restock must be true or false'],
      [`orders/${waiting.order_id}/cancel`, { restock: 'yes' }, 400, 'restock must be true or false'],
      ['orders/ord_nope/paid', { reference: 'x' }, 404, 'ORDER_NOT_FOUND'],
      ['orders/ord_nope/cancel', { restock: true }, 404, 'ORDER_NOT_FOUND'],
    ];
    for (const [path, body, status, words] of badPosts) {
      const response = await post(signed, path, body);
      const text = await response.text();
      expect(response.status, `${path} ${text}`).toBe(status);
      expect(text, path).toContain(words);
    }
    const noCsrf = await post(signed, `orders/${waiting.order_id}/paid`, {}, { 'X-CSRF-Token': '' });
    expect(noCsrf.status).toBe(403);
    const wrongCsrf = await post(
      signed,
      `orders/${waiting.order_id}/cancel`,
      { restock: true },
      { 'X-CSRF-Token': 'not-the-token' },
    );
    expect(wrongCsrf.status).toBe(403);
    const crossSite = await post(
      signed,
      `orders/${waiting.order_id}/paid`,
      {},
      { 'Sec-Fetch-Site': 'cross-site' },
    );
    expect(crossSite.status).toBe(403);
    const anonymous = await fetch(`${signed.base}api/orders`);
    expect(anonymous.status).toBe(401);

    expect(await store.stockLevels()).toEqual(before);
    const order = await store.getOrder({ channel: 'cli', admin: true }, waiting.order_id);
    expect(order).toMatchObject({ status: 'awaiting_payment', payment_reference: null });
  });
});
