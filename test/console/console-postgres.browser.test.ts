// The console on PostgreSQL: a page open on one server shows a sale made through another server on the database.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Browser, launchBrowser } from '../helpers/browser.js';
import { CLI, ROOT, type RunningCli, spawnCli, waitHealthy } from '../helpers/cli.js';
import { call, connectClient, firstText, freePort } from '../helpers/http.js';
import {
  connectWithOAuth,
  MemoryOAuthProvider,
  signIn as oauthSignIn,
  publicClientMetadata,
  tokenRequest,
} from '../helpers/oauth.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { chromium, describeWith, postgres } from '../helpers/requirements.js';

const run = promisify(execFile);
const DEMO = join(ROOT, 'examples', 'demo-catalog.json');
const WAIT = { timeout: 15_000, interval: 50 };
const REDIRECT = 'http://127.0.0.1:9/callback';
const text = (locator: Locator) => async () => (await locator.allTextContents()).join(' ').trim();

describeWith([chromium, postgres], 'the console on PostgreSQL', () => {
  let db: TestDatabase;
  interface Served extends RunningCli {
    url: string;
  }
  let servers: Served[] = [];
  let admin = '';
  const consoleUrl = (server: Served) => server.url.replace(/\/mcp$/, '/console/');
  let browser: Browser | undefined;

  async function cli(...args: string[]): Promise<string> {
    const { stdout } = await run(process.execPath, [CLI, ...args, '--db', db.url], {
      env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn' },
    });
    return stdout.trim();
  }

  async function serve(): Promise<string> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    const server = { ...spawnCli(['serve', '--http', '--port', String(port), '--db', db.url]), url };
    servers.push(server);
    await waitHealthy(url, server);
    return url;
  }

  beforeAll(async () => {
    db = await createTestDatabase('stocklock_console_e2e');
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all(servers.map((server) => server.kill()));
    servers = [];
    await db?.drop();
  });

  it('shows a sale made through another server within the page, without a reload', async () => {
    await cli('import', DEMO);
    admin = await cli('token', 'create', '--channel', 'ops', '--admin');
    const customer = await cli('token', 'create', '--channel', 'voice');
    const [consoleServer, otherServer] = await Promise.all([serve(), serve()]);

    browser = await launchBrowser();
    const page = await browser.context.newPage();
    await page.goto((consoleServer as string).replace(/\/mcp$/, '/console/'));
    await page.getByLabel('Admin token').fill(admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    const available = page.locator('#stock-table tr[data-sku="HOODIE-GRY-M"] td[data-label="Available"]');
    await expect.poll(text(available), WAIT).toBe('12');
    const loaded = await page.evaluate(() => performance.timeOrigin);

    const client = await connectClient(otherServer as string, customer);
    try {
      const cart = await call(client, 'add_to_cart', { sku: 'HOODIE-GRY-M', quantity: 3 });
      expect(cart.isError, firstText(cart)).toBeFalsy();
      await expect.poll(text(available), WAIT).toBe('9');
      const order = await call(client, 'checkout', {
        cart_id: (cart.structuredContent as { cart_id: string }).cart_id,
      });
      expect(order.isError, firstText(order)).toBeFalsy();
      await page.getByRole('link', { name: 'Channels' }).click();
      const voice = page.locator('section[data-channel="voice"] [data-stat="today"]');
      await expect.poll(text(voice), WAIT).toBe('1 paid order, 177.00 EUR');
    } finally {
      await client.close();
    }
    expect(await page.evaluate(() => performance.timeOrigin)).toBe(loaded);
  });

  it('accepts a session made on one server on the other; a sign-out there ends the page open on the first', async () => {
    const [first, second] = servers.slice(0, 2).map((server) => consoleUrl(server));
    const page = await (browser as Browser).context.newPage();
    await page.goto(first as string);
    // Still signed in from the test above, on the first server.
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    const other = await (browser as Browser).context.newPage();
    await other.goto(second as string);
    await expect.poll(text(other.locator('#live')), WAIT).toBe('live');
    const sessions = await db.query<{ id_hash: string }>('SELECT id_hash FROM console_sessions');
    expect(sessions).toHaveLength(1);
    await other.getByRole('button', { name: 'Sign out' }).click();
    await other.getByLabel('Admin token').waitFor();
    // The row's deletion is a NOTIFY: the first server's open page goes back to sign-in.
    await page.getByLabel('Admin token').waitFor({ timeout: 20_000 });
    expect(await db.query('SELECT id_hash FROM console_sessions')).toEqual([]);
    await other.close();
    await page.close();
  });

  it('lists an OAuth grant made through the other server, and revokes it so its refresh is refused', async () => {
    await cli('oauth', 'allow', '127.0.0.1', '--channel', 'agents');
    const otherMcp = servers[1]?.url as string;
    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT, 'Pool agent'));
    await oauthSignIn(provider, otherMcp);
    const client = await connectWithOAuth(otherMcp, provider);
    const added = await call(client, 'add_to_cart', { sku: 'HOODIE-GRY-M', quantity: 1 });
    expect(added.isError, firstText(added)).toBeFalsy();
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;

    const page = await (browser as Browser).context.newPage();
    await page.goto(consoleUrl(servers[0] as Served));
    await page.getByLabel('Admin token').fill(admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    await page.getByRole('link', { name: 'Holds' }).click();
    await expect
      .poll(text(page.locator(`#holds-table tr[data-cart="${cartId}"] td[data-label="Holder"]`)), WAIT)
      .toContain('Pool agent');
    await page.getByRole('link', { name: 'Channels' }).click();
    const row = page.locator('#grants-table tr', { hasText: 'Pool agent' });
    await expect.poll(text(row.locator('td[data-label="Channel"]')), WAIT).toBe('agents');
    await row.getByRole('button', { name: /^Revoke grant/ }).click();
    await row.getByRole('button', { name: /^Confirm: Revoke grant/ }).click();
    await expect.poll(text(row.locator('td[data-label="Status"]')), WAIT).toContain('revoked');
    const refreshed = await tokenRequest(otherMcp, {
      grant_type: 'refresh_token',
      refresh_token: provider.saved?.refresh_token as string,
      client_id: provider.client?.client_id as string,
    });
    expect(refreshed.body.error).toBe('invalid_grant');
    await client.close().catch(() => undefined);
    await page.close();
  });

  it('shows an order awaiting payment made through the other server live; confirmed there, it counts as a sale', async () => {
    const kiosk = await cli('token', 'create', '--channel', 'kiosk');
    await cli('channel', 'set', 'kiosk', '--checkout', 'payment');
    const page = await (browser as Browser).context.newPage();
    await page.goto(consoleUrl(servers[0] as Served));
    // Signed in already if the test above left its session.
    await page.locator('#live, #token').first().waitFor();
    if ((await page.locator('#token').count()) > 0) {
      await page.getByLabel('Admin token').fill(admin);
      await page.getByRole('button', { name: 'Sign in' }).click();
    }
    await expect.poll(text(page.locator('#live')), WAIT).toBe('live');
    await page.getByRole('link', { name: 'Orders' }).click();
    await page.locator('#orders-count').waitFor();
    const loaded = await page.evaluate(() => performance.timeOrigin);

    const client = await connectClient(servers[1]?.url as string, kiosk);
    let orderId = '';
    try {
      const cart = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
      expect(cart.isError, firstText(cart)).toBeFalsy();
      const order = await call(client, 'checkout', {
        cart_id: (cart.structuredContent as { cart_id: string }).cart_id,
      });
      expect(order.structuredContent).toMatchObject({ status: 'awaiting_payment' });
      orderId = (order.structuredContent as { order_id: string }).order_id;
    } finally {
      await client.close();
    }
    const row = page.locator(`#orders-table tr[data-order="${orderId}"]`);
    await expect.poll(text(row.locator('td[data-label="Status"]')), WAIT).toContain('awaiting payment');
    await page.getByRole('button', { name: `Show order ${orderId}` }).click();
    await page.getByLabel('Payment reference').fill('till 7');
    await page.getByRole('button', { name: 'Confirm payment' }).click();
    await expect.poll(text(row.locator('td[data-label="Status"]')), WAIT).toContain('paid');
    expect(JSON.parse(await cli('order', 'show', orderId, '--json'))).toMatchObject({
      status: 'paid',
      payment_reference: 'till 7',
    });
    await page.getByRole('link', { name: 'Channels' }).click();
    const card = page.locator('section[data-channel="kiosk"]');
    await expect.poll(text(card.locator('[data-stat="checkout"]')), WAIT).toContain('payment');
    await expect.poll(text(card.locator('[data-stat="today"]')), WAIT).toBe('1 paid order, 29.00 EUR');
    expect(await page.evaluate(() => performance.timeOrigin)).toBe(loaded);
    await page.close();
  });
});
