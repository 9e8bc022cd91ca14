// The console's HTTP contract without a browser: cookies, cross-site refusals, expiry, refusals that change nothing.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createConsole } from '../../src/console/console.js';
import { silentLogger } from '../../src/logger.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { serveHttp } from '../../src/transports/http.js';
import { HTTP_CATALOG } from '../helpers/catalog.js';
import { defaultHttpOptions, storeOptions, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Signed {
  base: string;
  cookie: string;
  csrf: string;
}

async function start(consoleOptions: { publicUrl?: string; ttlMs?: number } = {}) {
  const tmp = tempDir('stocklock-console-http-');
  cleanups.push(tmp.remove);
  const db = join(tmp.dir, 'stocklock.db');
  const store = openSqliteStore(db, storeOptions());
  cleanups.push(() => store.close());
  await store.importProducts({ channel: 'cli' }, HTTP_CATALOG);
  const queries = await openConsoleQueries(db, store.options.clock);
  cleanups.push(() => queries.close());
  const handle = createConsole({
    store,
    queries,
    logger: silentLogger,
    publicUrl: consoleOptions.publicUrl,
    sessions: consoleOptions.ttlMs ? { ttlMs: consoleOptions.ttlMs } : undefined,
  });
  const server = await serveHttp(store, defaultHttpOptions({ console: handle }), silentLogger);
  cleanups.push(() => server.close());
  cleanups.push(() => handle.close());
  const { token: admin } = await store.createToken('ops', true);
  return { store, admin, base: server.url.replace(/\/mcp$/, '/console/') };
}

async function signIn(base: string, token: string): Promise<{ response: Response; signed?: Signed }> {
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
  if (!cookie) return { response };
  const shell = await (await fetch(base, { headers: { Cookie: cookie } })).text();
  const csrf = /name="csrf-token" content="([^"]+)"/.exec(shell)?.[1] ?? '';
  return { response, signed: { base, cookie, csrf } };
}

function post(s: Signed, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${s.base}api/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Cookie: s.cookie, 'X-CSRF-Token': s.csrf, ...headers },
    body: JSON.stringify(body),
  });
}

describe('the console over HTTP', () => {
  it('marks the session cookie Secure when the public URL is https', async () => {
    const { base, admin } = await start({ publicUrl: 'https://shop.example.com' });
    const { response } = await signIn(base, admin);
    const session = response.headers.getSetCookie().find((c) => c.startsWith('stocklock_console='));
    expect(session).toMatch(/; Secure/);
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; SameSite=Strict/);
    expect(session).toMatch(/; Path=\/console/);
  });

  it('ends a session past its lifetime', async () => {
    const { base, admin } = await start({ ttlMs: 1_000 });
    const { signed } = await signIn(base, admin);
    if (!signed) throw new Error('sign-in failed');
    expect((await fetch(`${base}api/stock`, { headers: { Cookie: signed.cookie } })).status).toBe(200);
    await waitFor(
      async () => (await fetch(`${base}api/stock`, { headers: { Cookie: signed.cookie } })).status === 401,
      10_000,
      100,
    );
  });

  it('refuses a bad host, a bad channel and an unknown grant, and changes nothing', async () => {
    const { base, admin, store } = await start();
    const { signed } = await signIn(base, admin);
    if (!signed) throw new Error('sign-in failed');
    const before = await store.oauth.hostRules();
    const badHost = await post(signed, 'oauth-hosts', { host: 'https://x.example/cb', channel: 'web' });
    expect(badHost.status).toBe(400);
    expect(((await badHost.json()) as { error: { message: string } }).error.message).toMatch(
      /bare host name/,
    );
    const badChannel = await post(signed, 'oauth-hosts', { host: 'x.example', channel: 'Not A Channel' });
    expect(badChannel.status).toBe(400);
    expect(((await badChannel.json()) as { error: { message: string } }).error.message).toMatch(/channel/);
    expect(await store.oauth.hostRules()).toEqual(before);
    const noGrant = await post(signed, 'grants/grt_nope/revoke', {});
    expect(noGrant.status).toBe(404);
    const notAGrant = await post(signed, 'grants/tok_nope/revoke', {});
    expect(notAGrant.status).toBe(404);
    // Without the CSRF token nothing is allowed either.
    const noCsrf = await post(
      signed,
      'oauth-hosts',
      { host: 'x.example', channel: 'web' },
      { 'X-CSRF-Token': '' },
    );
    expect(noCsrf.status).toBe(403);
    expect(await store.oauth.hostRules()).toEqual(before);
    const allowed = await post(signed, 'oauth-hosts', { host: 'X.Example', channel: 'web' });
    expect(await allowed.json()).toEqual({ host: 'x.example', channel: 'web' });
    expect((await store.oauth.hostRules()).map((r) => [r.host, r.channel])).toEqual([['x.example', 'web']]);
  });

  it('refuses cross-site and foreign-origin requests even with the CSRF token', async () => {
    const { base, admin, store } = await start();
    const { signed } = await signIn(base, admin);
    if (!signed) throw new Error('sign-in failed');
    const crossSite = await post(
      signed,
      'stock/MUG-WHT/restock',
      { quantity: 5 },
      { 'Sec-Fetch-Site': 'cross-site' },
    );
    expect(crossSite.status).toBe(403);
    const foreign = await post(
      signed,
      'stock/MUG-WHT/restock',
      { quantity: 5 },
      { Origin: 'https://evil.example' },
    );
    expect(foreign.status).toBe(403);
    expect((await store.stockLevels(['MUG-WHT']))[0]?.on_hand).toBe(60);
  });

  it("releases a hold an OAuth grant's cart has, as that cart's channel and holder", async () => {
    const { base, admin, store } = await start();
    const { signed } = await signIn(base, admin);
    if (!signed) throw new Error('sign-in failed');
    const shopper = { channel: 'claude', holder: 'grant_console_test' };
    const cart = await store.addToCart(shopper, { sku: 'MUG-WHT', quantity: 2 });
    const response = await post(signed, `holds/${cart.cart_id}/release`, {});
    const text = await response.text();
    expect(response.status, text).toBe(200);
    expect(JSON.parse(text)).toMatchObject({
      cart: { status: 'released' },
      released: [{ sku: 'MUG-WHT', quantity: 2 }],
    });
    expect((await store.stockLevels(['MUG-WHT']))[0]?.reserved).toBe(0);
    expect((await store.getCart(shopper, cart.cart_id)).status).toBe('released');
    expect((await store.audit()).ok).toBe(true);
  });

  it('refuses bad input with a specific error and changes nothing', async () => {
    const { base, admin, store } = await start();
    const { signed } = await signIn(base, admin);
    if (!signed) throw new Error('sign-in failed');
    const before = await store.stockLevels();
    const cases: [string, unknown, number, string][] = [
      ['stock/MUG-WHT/restock', { quantity: -1 }, 400, 'quantity must be at least 1'],
      ['stock/MUG-WHT/restock', { quantity: 1.5 }, 400, 'quantity must be a whole number'],
      ['stock/MUG-WHT/restock', { quantity: '3' }, 400, 'quantity must be a whole number'],
      ['stock/MUG-WHT/set', { quantity: 1, channel: 'web' }, 400, 'channel'],
      ['stock/NO-SUCH/restock', { quantity: 1 }, 404, 'UNKNOWN_SKU'],
      ['holds/cart_nope/release', {}, 404, 'cart_nope'],
      ['tokens', { channel: 'Bad Channel' }, 400, 'channel must be'],
      ['tokens/tok_nope/revoke', {}, 404, 'tok_nope'],
    ];
    for (const [path, body, status, words] of cases) {
      const response = await post(signed, path, body);
      const text = await response.text();
      expect(response.status, `${path} ${text}`).toBe(status);
      expect(text, path).toContain(words);
    }
    const broken = await fetch(`${base}api/stock/MUG-WHT/restock`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: signed.cookie, 'X-CSRF-Token': signed.csrf },
      body: '{"quantity": ',
    });
    expect(broken.status).toBe(400);
    expect(await store.stockLevels()).toEqual(before);
    expect((await store.listTokens()).map((t) => t.channel)).toEqual(['ops']);
  });

  it('exports the ledger as CSV with formula-like text defused', async () => {
    const { base, admin } = await start();
    const { signed } = await signIn(base, admin);
    if (!signed) throw new Error('sign-in failed');
    const restocked = await post(signed, 'stock/MUG-WHT/restock', {
      quantity: 2,
      note: '=HYPERLINK("x"), "quoted"',
    });
    expect(restocked.status).toBe(200);
    const csv = await (
      await fetch(`${base}api/ledger.csv?kind=restock`, { headers: { Cookie: signed.cookie } })
    ).text();
    const lines = csv.trim().split('\r\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/,MUG-WHT,restock,2,2,0,console,,,"'=HYPERLINK\(""x""\), ""quoted"""$/);
    const all = await (await fetch(`${base}api/ledger.csv`, { headers: { Cookie: signed.cookie } })).text();
    expect(all.trim().split('\r\n')).toHaveLength(1 + HTTP_CATALOG.length + 1);
  });
});
