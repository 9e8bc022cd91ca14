// The merchant console in a real browser against the built CLI's HTTP server on a SQLite file.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { hashToken } from '../../src/storage/shared.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import { type Browser, launchBrowser } from '../helpers/browser.js';
import { CLI, ROOT, type RunningCli, spawnCli, stdioClient, waitHealthy } from '../helpers/cli.js';
import {
  bearer,
  call,
  connectClient,
  firstText,
  freePort,
  INITIALIZE,
  MCP_HEADERS,
  raw,
  waitFor,
} from '../helpers/http.js';
import {
  connectWithOAuth,
  MemoryOAuthProvider,
  signIn as oauthSignIn,
  publicClientMetadata,
  tokenRequest,
} from '../helpers/oauth.js';
import { describeBrowser } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const DEMO = join(ROOT, 'examples', 'demo-catalog.json');
/** Nothing listens there: the OAuth helper reads the code from the redirect without following it. */
const OAUTH_REDIRECT = 'http://127.0.0.1:9/callback';

let tmp: { dir: string; remove: () => void };
let db: string;
let server: RunningCli;
let base: string;
let mcpUrl: string;
let adminToken: string;
let customerToken: string;
let browser: Browser;
let page: Page;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

async function cli(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--db', db], {
    env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn' },
  });
  return stdout.trim();
}

async function available(sku: string): Promise<number | null> {
  const client = await connectClient(mcpUrl, customerToken);
  try {
    const result = await call(client, 'check_stock', { skus: [sku] });
    return (result.structuredContent as { products: { available: number | null }[] }).products[0]
      ?.available as number | null;
  } finally {
    await client.close();
  }
}

/** Bounds every wait for the page by the condition: generous, because the machine may be loaded. */
const WAIT = { timeout: 15_000, interval: 50 };

/** What the merchant reads in the matching elements now (empty when none), for expect.poll. */
function text(locator: Locator): () => Promise<string> {
  return async () => (await locator.allTextContents()).join(' ').trim();
}

/** The stock table's cell for one SKU and column, as the merchant reads it. */
function cell(sku: string, label: string) {
  return page.locator(`#stock-table tr[data-sku="${sku}"] td[data-label="${label}"]`);
}

async function signIn(token = adminToken): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Either the console or the sign-in form with its reason: whichever, the navigation is over.
  await page.locator('#live, #sign-in-problem').first().waitFor({ timeout: 30_000 });
}

beforeAll(async () => {
  tmp = tempDir('stocklock-console-');
  db = join(tmp.dir, 'stocklock.db');
  await cli('import', DEMO);
  adminToken = await cli('token', 'create', '--channel', 'ops', '--admin');
  customerToken = await cli('token', 'create', '--channel', 'web');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  mcpUrl = `${base}/mcp`;
  server = spawnCli(['serve', '--http', '--port', String(port), '--db', db]);
  await waitHealthy(mcpUrl, server);
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.kill();
  tmp?.remove();
});

beforeEach(async () => {
  page = await browser.context.newPage();
  // A page that reloads loses this marker: "appears without a reload" is checked with it.
  await page.addInitScript(() => {
    (window as unknown as { bootedAt: number }).bootedAt =
      (window as unknown as { bootedAt?: number }).bootedAt ?? Math.random();
  });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await page.close();
  await browser.context.clearCookies();
});

describeBrowser('the merchant console in Chromium', () => {
  it('refuses a customer token and an unknown token, and keeps no session for them', async () => {
    await signIn(customerToken);
    await expect.poll(text(page.getByRole('alert')), WAIT).toContain('customer token (channel "web")');
    await signIn('slk_not-a-real-token');
    await expect.poll(text(page.getByRole('alert')), WAIT).toContain('unknown or revoked');
    const cookies = await browser.context.cookies();
    expect(cookies.map((c) => c.name)).not.toContain('stocklock_console');
    const api = await page.request.get(`${base}/console/api/stock`);
    expect(api.status()).toBe(401);
  });

  it('signs in with an HttpOnly, SameSite=Strict cookie and signs out', async () => {
    await signIn();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    const session = (await browser.context.cookies()).find((c) => c.name === 'stocklock_console');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/console', secure: false });
    // HttpOnly: the page's script cannot read it.
    expect(await page.evaluate(() => document.cookie)).not.toContain('stocklock_console=');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    expect((await page.request.get(`${base}/console/api/stock`)).status()).toBe(401);
    expect(server.stderr()).not.toContain(adminToken);
  });

  it("ends an open page's session when its admin token is revoked", async () => {
    const second = await cli('token', 'create', '--channel', 'backoffice', '--admin');
    await signIn(second);
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    const tokens = await cli('token', 'list');
    const id = /tok_\w+(?=\s+backoffice)/.exec(tokens)?.[0] ?? '';
    expect(id, tokens).toMatch(/^tok_/);
    // Revoked by another process: the revocation is itself a change, and the page goes back to sign-in.
    await cli('token', 'revoke', id);
    await page.getByLabel('Admin token').waitFor({ timeout: 20_000 });
    expect((await page.request.get(`${base}/console/api/stock`)).status()).toBe(401);
  });

  it('shows a sale made through the HTTP server and one made by another process on the file, without a reload', async () => {
    await signIn();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    await expect.poll(text(cell('POSTER-A2', 'Available')), WAIT).toBe('7');
    const booted = await page.evaluate(() => (window as unknown as { bootedAt: number }).bootedAt);

    // An MCP client over HTTP, in this process; the server is another process.
    const http = await connectClient(mcpUrl, customerToken);
    cleanups.push(() => http.close());
    const cart = await call(http, 'add_to_cart', { sku: 'POSTER-A2', quantity: 2 });
    expect(cart.isError, firstText(cart)).toBeFalsy();
    await expect.poll(text(cell('POSTER-A2', 'Reserved')), WAIT).toBe('2');
    const order = await call(http, 'checkout', {
      cart_id: (cart.structuredContent as { cart_id: string }).cart_id,
    });
    expect(order.isError, firstText(order)).toBeFalsy();
    await expect.poll(text(cell('POSTER-A2', 'On hand')), WAIT).toBe('5');
    await expect.poll(text(cell('POSTER-A2', 'Available')), WAIT).toBe('5');

    // An MCP server over stdio: a separate process writing the same SQLite file, unknown to the HTTP server.
    const stdio = await stdioClient(['--db', db, '--channel', 'telegram']);
    cleanups.push(() => stdio.close());
    const other = await call(stdio, 'add_to_cart', { sku: 'POSTER-A2', quantity: 1 });
    expect(other.isError, firstText(other)).toBeFalsy();
    await call(stdio, 'checkout', { cart_id: (other.structuredContent as { cart_id: string }).cart_id });
    await expect.poll(text(cell('POSTER-A2', 'Available')), WAIT).toBe('4');

    expect(await page.evaluate(() => (window as unknown as { bootedAt: number }).bootedAt)).toBe(booted);
  });

  it('restocks through the form: check_stock sees it and the ledger records the note', async () => {
    await signIn();
    const before = await available('SOCKS-3PK');
    const row = page.locator('#stock-table tr[data-sku="SOCKS-3PK"]');
    await row.getByLabel('Units for SOCKS-3PK').fill('15');
    await row.getByLabel('Note for SOCKS-3PK').fill('delivery 4711');
    await row.getByRole('button', { name: 'Restock SOCKS-3PK' }).click();
    await page.getByRole('status').filter({ hasText: 'Restocked SOCKS-3PK' }).waitFor();
    expect(await available('SOCKS-3PK')).toBe((before ?? 0) + 15);

    await row.getByLabel('Units for SOCKS-3PK').fill('3');
    await row.getByRole('button', { name: 'Set stock of SOCKS-3PK' }).click();
    await expect.poll(text(cell('SOCKS-3PK', 'On hand')), WAIT).toBe('3');
    expect(await available('SOCKS-3PK')).toBe(3);

    await page.getByRole('link', { name: 'Ledger' }).click();
    await page.getByLabel('SKU').fill('SOCKS-3PK');
    await page.getByRole('button', { name: 'Filter' }).click();
    const ledger = page.locator('#ledger-table tbody tr');
    await expect.poll(text(ledger.first()), WAIT).toContain('adjust');
    await expect.poll(text(ledger.nth(1)), WAIT).toContain('restock');
    await expect.poll(text(ledger.nth(1)), WAIT).toContain('delivery 4711');
    await expect.poll(text(ledger.nth(1)), WAIT).toContain('console');

    const csv = await page.evaluate(async () =>
      (await fetch('api/ledger.csv?sku=SOCKS-3PK&kind=restock')).text(),
    );
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).toBe(
      'id,at,sku,kind,quantity,on_hand_delta,reserved_delta,channel,cart_id,order_id,note',
    );
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/,SOCKS-3PK,restock,15,15,0,console,,,delivery 4711$/);
  });

  it('refuses a set-stock below what carts hold, with the reason, and changes nothing', async () => {
    await signIn();
    const http = await connectClient(mcpUrl, customerToken);
    cleanups.push(() => http.close());
    const cart = await call(http, 'add_to_cart', { sku: 'CAP-NVY', quantity: 4 });
    expect(cart.isError, firstText(cart)).toBeFalsy();
    cleanups.push(() =>
      call(http, 'release_cart', { cart_id: (cart.structuredContent as { cart_id: string }).cart_id }),
    );
    await expect.poll(text(cell('CAP-NVY', 'Reserved')), WAIT).toBe('4');
    const before = await available('CAP-NVY');
    const row = page.locator('#stock-table tr[data-sku="CAP-NVY"]');
    await row.getByLabel('Units for CAP-NVY').fill('2');
    await row.getByRole('button', { name: 'Set stock of CAP-NVY' }).click();
    await page.getByRole('status').filter({ hasText: 'BELOW_RESERVED' }).waitFor();
    expect(await available('CAP-NVY')).toBe(before);
  });

  it('releases a hold from the holds page: the channel sees its cart released and the units back', async () => {
    const http = await connectClient(mcpUrl, customerToken);
    cleanups.push(() => http.close());
    const before = await available('TOTE-NAT');
    const added = await call(http, 'add_to_cart', { sku: 'TOTE-NAT', quantity: 3 });
    expect(added.isError, firstText(added)).toBeFalsy();
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;
    expect(await available('TOTE-NAT')).toBe((before ?? 0) - 3);

    await signIn();
    await page.getByRole('link', { name: 'Holds' }).click();
    const row = page.locator(`#holds-table tr[data-cart="${cartId}"]`);
    await expect.poll(text(row), WAIT).toContain('TOTE-NAT');
    await expect.poll(text(row.locator('.countdown')), WAIT).toMatch(/^1[45]:\d\d$/);
    await row.getByRole('button', { name: `Release cart ${cartId} of web` }).click();
    await expect.poll(() => row.count(), WAIT).toBe(0);

    const cart = await call(http, 'get_cart', { cart_id: cartId });
    expect((cart.structuredContent as { status: string }).status).toBe('released');
    expect(await available('TOTE-NAT')).toBe(before);
  });

  it('creates a token (shown once) that works, and revokes it so it stops working', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Channels' }).click();
    await page.getByLabel('Channel', { exact: true }).fill('telegram');
    await page.getByLabel('Label (optional)').fill('bot backend');
    await page.getByRole('button', { name: 'Create token' }).click();
    const shown = page.locator('#new-token');
    await expect.poll(text(shown), WAIT).toMatch(/^slk_/);
    const token = (await shown.textContent()) ?? '';
    expect(server.stderr()).not.toContain(token);

    const client = await connectClient(mcpUrl, token);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toContain('add_to_cart');
    expect(tools).not.toContain('restock');
    await client.close();

    const tokens = await run(process.execPath, [CLI, 'token', 'list', '--db', db]);
    const id = /tok_\w+(?=\s+telegram)/.exec(tokens.stdout)?.[0];
    expect(id, tokens.stdout).toBeDefined();
    // Shown once: a reload lists the token by id only.
    await page.reload();
    await expect
      .poll(text(page.locator(`#tokens-table tr[data-token="${id}"]`)), WAIT)
      .toContain('bot backend');
    await expect.poll(() => page.locator('#new-token').count(), WAIT).toBe(0);

    // A confirm step: the first press only asks; "Keep" backs out and nothing is revoked.
    await page.getByRole('button', { name: `Revoke ${id} (telegram)` }).click();
    await page.getByRole('button', { name: 'Keep' }).click();
    expect(await text(page.locator(`#tokens-table tr[data-token="${id}"]`))()).not.toContain('revoked');
    await page.getByRole('button', { name: `Revoke ${id} (telegram)` }).click();
    await page.getByRole('button', { name: `Confirm: Revoke ${id} (telegram)` }).click();
    await expect.poll(text(page.locator(`#tokens-table tr[data-token="${id}"]`)), WAIT).toContain('revoked');
    // The server trusts a verified token for up to 5 s; a new connection is refused once that passes.
    await waitFor(
      () =>
        connectClient(mcpUrl, token).then(
          (c) => c.close().then(() => false),
          (error: { code?: number }) => error.code === 401,
        ),
      20_000,
      250,
    );
  });

  it('refuses a state-changing request without the CSRF token and changes nothing', async () => {
    await signIn();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    const before = await available('MUG-WHT');
    const refused = await page.evaluate(async () => {
      const res = await fetch('api/stock/MUG-WHT/restock', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ quantity: 5 }),
      });
      return { status: res.status, body: await res.json() };
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('CSRF');
    const wrong = await page.evaluate(async () => {
      const res = await fetch('api/tokens', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'guessed' },
        body: JSON.stringify({ channel: 'evil', admin: true }),
      });
      return res.status;
    });
    expect(wrong).toBe(403);
    // A form post from elsewhere (no _csrf field) cannot sign the merchant out either.
    const signOut = await page.evaluate(async () => (await fetch('sign-out', { method: 'POST' })).status);
    expect(signOut).toBe(403);
    expect(await available('MUG-WHT')).toBe(before);
    const tokens = await run(process.execPath, [CLI, 'token', 'list', '--db', db]);
    expect(tokens.stdout).not.toContain('evil');
    // Still signed in: the refused sign-out changed nothing.
    expect((await page.request.get(`${base}/console/api/stock`)).status()).toBe(200);
  });

  it('imports all or nothing, listing every failing line, then imports a good file', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Import' }).click();
    const bad = [
      'sku,name,price,currency,stock',
      'NEW-ONE,First new product,10.00,EUR,5',
      'bad sku!,Broken,1.00,EUR,1',
      'NEW-TWO,Second new product,abc,EUR,2',
      '',
    ].join('\n');
    await page
      .getByLabel('Catalog file (CSV or JSON)')
      .setInputFiles({ name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
    await page.getByRole('button', { name: 'Import' }).click();
    const result = page.locator('#import-result');
    await expect.poll(text(result), WAIT).toContain('Nothing was imported: 2 line(s) failed');
    await expect.poll(() => result.locator('li').count(), WAIT).toBe(2);
    await expect.poll(text(result.locator('li').first()), WAIT).toContain('line 3');
    await expect.poll(text(result.locator('li').nth(1)), WAIT).toContain('line 4');
    expect(await available('NEW-ONE')).toBeUndefined();

    const good = JSON.stringify([
      { sku: 'NEW-ONE', name: 'First new product', price: '10.00', currency: 'EUR', stock: 5 },
    ]);
    await page
      .getByLabel('Catalog file (CSV or JSON)')
      .setInputFiles({ name: 'good.json', mimeType: 'application/json', buffer: Buffer.from(good) });
    await page.getByRole('button', { name: 'Import' }).click();
    await expect.poll(text(result), WAIT).toContain('Imported 1 products from good.json: 1 new, 0 updated.');
    expect(await available('NEW-ONE')).toBe(5);
  });

  it('imports a large catalog in one go; the progress bar is gone once it is done', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Import' }).click();
    const rows = Array.from(
      { length: 10_000 },
      (_, i) =>
        `BULK-${String(i).padStart(5, '0')},Bulk product number ${i} with a longer name,${(i % 90) + 10}.50,EUR,${i % 7}`,
    );
    const csv = ['sku,name,price,currency,stock', ...rows, ''].join('\n');
    await page.getByLabel('Catalog file (CSV or JSON)').setInputFiles({
      name: 'bulk.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv),
    });
    await page.getByRole('button', { name: 'Import' }).click();
    await expect
      .poll(text(page.locator('#import-result')), { timeout: 60_000, interval: 100 })
      .toBe('Imported 10000 products from bulk.csv: 10000 new, 0 updated.');
    expect(await page.locator('#import-form progress').isHidden()).toBe(true);
    expect(await available('BULK-09999')).toBe(9_999 % 7);
  });

  it('runs the audit and shows that the books balance', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('button', { name: 'Run the audit' }).click();
    await page.getByRole('status').filter({ hasText: 'The books balance' }).waitFor();
    await expect.poll(text(page.locator('#audit-result')), WAIT).toMatch(/Checked \d+ products/);
    // The first clean audit saved a checkpoint: the next one starts from it and says so.
    await page.getByRole('button', { name: 'Run the audit' }).click();
    await expect
      .poll(text(page.locator('#audit-result')), WAIT)
      .toMatch(/Incremental: from the last clean audit's checkpoint \(ledger movement \d+/);
  });

  it('lists an OAuth sign-in as a grant and as the holder of its cart; revoking it from the page refuses the client', async () => {
    await cli('oauth', 'allow', '127.0.0.1', '--channel', 'agents');
    const provider = new MemoryOAuthProvider(
      OAUTH_REDIRECT,
      publicClientMetadata(OAUTH_REDIRECT, 'Console test agent'),
    );
    await oauthSignIn(provider, mcpUrl);
    const client = await connectWithOAuth(mcpUrl, provider);
    cleanups.push(() => client.close());
    const added = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    expect(added.isError, firstText(added)).toBeFalsy();
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;

    await signIn();
    await page.getByRole('link', { name: 'Holds' }).click();
    const hold = page.locator(`#holds-table tr[data-cart="${cartId}"] td[data-label="Holder"]`);
    await expect.poll(text(hold), WAIT).toMatch(/^Console test agent\s*OAuth via 127\.0\.0\.1 · grt_\w+$/);
    const grantId = /grt_\w+/.exec(await text(hold)())?.[0] as string;

    await page.getByRole('link', { name: 'Channels' }).click();
    const row = page.locator(`#grants-table tr[data-grant="${grantId}"]`);
    await expect.poll(text(row), WAIT).toContain('Console test agent');
    const cells = async (label: string) => text(row.locator(`td[data-label="${label}"]`))();
    expect(await cells('Client')).toMatch(/^Console test agent\s*registered cli_\w+\s*grt_\w+$/);
    expect(await cells('Signed in via')).toBe('127.0.0.1');
    expect(await cells('Channel')).toBe('agents');
    expect(await cells('Scopes')).toBe('stock:shop');
    expect(await cells('Last used')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
    expect(await cells('Expires')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
    // The host map, as `oauth list` shows it: the presets and the rule made above.
    await expect
      .poll(text(page.locator('#hosts-table tr[data-host="127.0.0.1"]')), WAIT)
      .toBe('127.0.0.1agentsyour rule');
    expect(await text(page.locator('#hosts-table tr[data-host="chatgpt.com"]'))()).toBe(
      'chatgpt.comchatgptpreset',
    );
    // Never a token or a hash on the page.
    const html = await page.content();
    for (const secret of [provider.saved?.access_token, provider.saved?.refresh_token]) {
      expect(html).not.toContain(secret as string);
    }

    await row.getByRole('button', { name: new RegExp(`^Revoke grant ${grantId}`) }).click();
    await row.getByRole('button', { name: new RegExp(`^Confirm: Revoke grant ${grantId}`) }).click();
    await expect
      .poll(text(row.locator('td[data-label="Status"]')), WAIT)
      .toBe('revokedrevoked in the console');
    // The refresh token is refused at once: the client cannot get a new access token.
    const refreshed = await tokenRequest(mcpUrl, {
      grant_type: 'refresh_token',
      refresh_token: provider.saved?.refresh_token as string,
      client_id: provider.client?.client_id as string,
    });
    expect(refreshed.status).toBe(400);
    expect(refreshed.body.error).toBe('invalid_grant');
    // The access token is refused once the server's few-second verification cache lets go of it.
    await waitFor(
      async () =>
        (
          await raw(mcpUrl, {
            headers: { ...MCP_HEADERS, ...bearer(provider.saved?.access_token as string) },
            body: INITIALIZE,
          })
        ).status === 401,
      20_000,
      250,
    );
    // And the signed-in client's next tool call is refused.
    await expect(call(client, 'check_stock', { skus: ['MUG-WHT'] })).rejects.toThrow();
    expect(server.stderr()).not.toContain(provider.saved?.access_token as string);
  });

  it('edits the OAuth host map with the same rules as the CLI', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Channels' }).click();
    await page.getByLabel('Host', { exact: true }).fill('https://shop.example.com/x');
    await page.getByLabel('Sells as channel').fill('assistant');
    await page.getByRole('button', { name: 'Allow host' }).click();
    await expect.poll(text(page.locator('#host-form + .status')), WAIT).toContain('not a bare host name');
    await page.getByLabel('Host', { exact: true }).fill('Shop.Example.com');
    await page.getByRole('button', { name: 'Allow host' }).click();
    await expect
      .poll(text(page.locator('#hosts-table tr[data-host="shop.example.com"]')), WAIT)
      .toBe('shop.example.comassistantyour rule');
    await page.getByLabel('Host', { exact: true }).fill('claude.ai');
    await page.getByRole('button', { name: 'Deny host' }).click();
    await expect
      .poll(text(page.locator('#hosts-table tr[data-host="claude.ai"]')), WAIT)
      .toBe('claude.aideniedyour rule');
    // The CLI reads the same map.
    const listed = await cli('oauth', 'list');
    expect(listed).toContain('shop.example.com  channel assistant');
    expect(listed).toContain('claude.ai  denied  (preset, changed)');
    await cli('oauth', 'allow', 'claude.ai', '--channel', 'claude');
  });

  it('a session made on one server works on a second server on the same file; signing out there ends it on both', async () => {
    const port = await freePort();
    const otherBase = `http://127.0.0.1:${port}`;
    const other = spawnCli(['serve', '--http', '--port', String(port), '--db', db]);
    cleanups.push(() => other.kill());
    await waitHealthy(`${otherBase}/mcp`, other);

    await signIn();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    const cookie = (await browser.context.cookies()).find((c) => c.name === 'stocklock_console');
    expect(cookie?.value).toBeTruthy();
    // Cookies are per host, not per port: the same browser carries the cookie to the second server.
    const second = await browser.context.newPage();
    cleanups.push(() => second.close());
    await second.goto(`${otherBase}/console/#stock`);
    await expect.poll(text(second.locator('#live')), WAIT).toBe('live');
    // Searched for: an earlier test's large import pushes it past the first page of the table.
    await second.locator('#stock-search').fill('MUG-WHT');
    await expect.poll(text(second.locator('#stock-table tr[data-sku="MUG-WHT"]')), WAIT).toContain('MUG-WHT');
    // A state-changing request with the page's CSRF token works there too.
    const before = await available('MUG-WHT');
    const restocked = await second.evaluate(async () => {
      const token = document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')?.content ?? '';
      const res = await fetch('api/stock/MUG-WHT/restock', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
        body: JSON.stringify({ quantity: 2, note: 'second server' }),
      });
      return res.status;
    });
    expect(restocked).toBe(200);
    expect(await available('MUG-WHT')).toBe((before ?? 0) + 2);

    // The file keeps the session under the hash of the cookie's secret, and neither secret itself.
    const file = new Database(db, { readonly: true });
    const stored = file.prepare('SELECT * FROM console_sessions').all() as Record<string, unknown>[];
    file.close();
    expect(stored.map((row) => row.id_hash)).toContain(hashToken(cookie?.value as string));
    const csrf = await second.locator('meta[name="csrf-token"]').getAttribute('content');
    expect(JSON.stringify(stored)).not.toContain(cookie?.value as string);
    expect(JSON.stringify(stored)).not.toContain(csrf as string);

    // Signed out on B: the page open on A is signed out too, and the old cookie is refused by both.
    await second.getByRole('button', { name: 'Sign out' }).click();
    await second.getByLabel('Admin token').waitFor();
    await page.getByLabel('Admin token').waitFor({ timeout: 20_000 });
    await browser.context.addCookies([cookie as NonNullable<typeof cookie>]);
    expect((await page.request.get(`${base}/console/api/stock`)).status()).toBe(401);
    expect((await page.request.get(`${otherBase}/console/api/stock`)).status()).toBe(401);
    expect(other.stderr()).not.toContain(cookie?.value as string);
  });

  it('keeps a session across a restart of the server', async () => {
    await signIn();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    await server.kill();
    server = spawnCli(['serve', '--http', '--port', new URL(base).port, '--db', db]);
    await waitHealthy(mcpUrl, server);
    await page.reload();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
  });

  it("passes axe-core's accessibility checks on every page, at desktop and phone width", async () => {
    await signIn();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    const found: string[] = [];
    for (const viewport of [
      { width: 1280, height: 800 },
      { width: 390, height: 844 },
    ]) {
      await page.setViewportSize(viewport);
      for (const name of ['stock', 'holds', 'orders', 'channels', 'ledger', 'import', 'audit']) {
        await page.goto(`${base}/console/#${name}`);
        await page.locator('h1').waitFor();
        // Connected means the page has fetched what it shows once (it refreshes on the stream's "ready").
        await page.locator('#live.on').waitFor();
        // Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not govern.
        await page.evaluate(AXE);
        const violations = await page.evaluate(async () => {
          const axe = (
            window as unknown as {
              axe: {
                run: (
                  ctx: Document,
                ) => Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }>;
              };
            }
          ).axe;
          const result = await axe.run(document);
          return result.violations.map(
            (v) =>
              `${v.impact} ${v.id}: ${v.nodes
                .map((n) => n.target.join(' '))
                .slice(0, 3)
                .join(', ')}`,
          );
        });
        found.push(...violations.map((v) => `${name} @${viewport.width}px: ${v}`));
      }
    }
    const signInPage = await browser.context.newPage();
    await signInPage.goto(`${base}/console/`);
    await signInPage.evaluate(AXE);
    const signInViolations = await signInPage.evaluate(async () => {
      const axe = (
        window as unknown as { axe: { run: (ctx: Document) => Promise<{ violations: { id: string }[] }> } }
      ).axe;
      return (await axe.run(document)).violations.map((v) => v.id);
    });
    await signInPage.close();
    expect([...found, ...signInViolations.map((v) => `sign-in: ${v}`)]).toEqual([]);
  }, 240_000);
});
