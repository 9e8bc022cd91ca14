// The console on PostgreSQL: a page open on one server shows a sale made through another server on the database.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, launchBrowser } from '../helpers/browser.js';
import { CLI, ROOT, type RunningCli, spawnCli, waitHealthy } from '../helpers/cli.js';
import { call, connectClient, firstText, freePort } from '../helpers/http.js';
import { createTestDatabase, postgresUnavailable, type TestDatabase } from '../helpers/postgres.js';

const run = promisify(execFile);
const DEMO = join(ROOT, 'examples', 'demo-catalog.json');
const WAIT = { timeout: 15_000, interval: 50 };
const text = (locator: Locator) => async () => (await locator.allTextContents()).join(' ').trim();

const unavailable = await postgresUnavailable();

describe.skipIf(unavailable !== undefined && process.env.CI !== 'true')('the console on PostgreSQL', () => {
  let db: TestDatabase;
  let servers: RunningCli[] = [];
  let browser: Browser | undefined;

  async function cli(...args: string[]): Promise<string> {
    const { stdout } = await run(process.execPath, [CLI, ...args, '--db', db.url], {
      env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn' },
    });
    return stdout.trim();
  }

  async function serve(): Promise<string> {
    const port = await freePort();
    const server = spawnCli(['serve', '--http', '--port', String(port), '--db', db.url]);
    servers.push(server);
    const url = `http://127.0.0.1:${port}/mcp`;
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
    const admin = await cli('token', 'create', '--channel', 'ops', '--admin');
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
      await expect.poll(text(voice), WAIT).toBe('1 order, 177.00 EUR');
    } finally {
      await client.close();
    }
    expect(await page.evaluate(() => performance.timeOrigin)).toBe(loaded);
  });
});
