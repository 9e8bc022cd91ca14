// Writes docs/console/*.png: every console page at desktop and phone width, on a demo database with some trade.
// Run with `npm run screenshots` (builds first). Uses Debian's Chromium; downloads nothing.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ManualClock } from '../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../src/domain/rules.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { launchBrowser } from '../test/helpers/browser.js';
import {
  connectWithOAuth,
  MemoryOAuthProvider,
  signIn as oauthSignIn,
  publicClientMetadata,
} from '../test/helpers/oauth.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli.js');
const OUT = join(ROOT, 'docs', 'console');
const PAGES = ['stock', 'holds', 'orders', 'channels', 'ledger', 'import', 'audit'] as const;
const VIEWPORTS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

const dir = mkdtempSync(join(tmpdir(), 'stocklock-shots-'));
const db = join(dir, 'stocklock.db');
const cli = (...args: string[]) =>
  execFileSync(process.execPath, [CLI, ...args, '--db', db], { encoding: 'utf8' }).trim();

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

async function client(url: string, token: string): Promise<Client> {
  const c = new Client({ name: 'screenshots', version: '1.0.0' });
  await c.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  return c;
}

/** Fills a cart and checks it out when asked; the order's id, if one was made. */
async function sell(c: Client, lines: [string, number][], checkout: boolean): Promise<string | undefined> {
  let cartId: string | undefined;
  for (const [sku, quantity] of lines) {
    const result = await c.callTool({ name: 'add_to_cart', arguments: { sku, quantity, cart_id: cartId } });
    cartId = (result.structuredContent as { cart_id: string }).cart_id;
  }
  if (!checkout) return undefined;
  const order = await c.callTool({ name: 'checkout', arguments: { cart_id: cartId } });
  return (order.structuredContent as { order_id: string }).order_id;
}

/** Another process on the file whose clock is past every pay_by so far: it cancels those orders for timeout. */
async function timeOut(): Promise<void> {
  const later = openSqliteStore(db, {
    clock: new ManualClock(Date.now() + 31 * 60_000),
    reservationTtlMs: 15 * 60_000,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 5_000,
  });
  try {
    await later.sweepOverdueOrders();
  } finally {
    await later.close();
  }
}

cli('import', join(ROOT, 'examples', 'demo-catalog.json'));
const admin = cli('token', 'create', '--channel', 'ops', '--admin', '--label', 'merchant');
const tokens = {
  web: cli('token', 'create', '--channel', 'web', '--label', 'web store'),
  telegram: cli('token', 'create', '--channel', 'telegram', '--label', 'bot backend'),
  voice: cli('token', 'create', '--channel', 'voice'),
};
cli('restock', 'TEE-BLK-M', '24', '--note', 'delivery 4711');
// The bot's shoppers pay before the sale: its checkouts await payment.
cli('channel', 'set', 'telegram', '--checkout', 'payment');
// OAuth sign-ins from this machine sell as "assistant": two grants, one of which is revoked below.
cli('oauth', 'allow', '127.0.0.1', '--channel', 'assistant');
const OAUTH_REDIRECT = 'http://127.0.0.1:9/callback';
const port = await freePort();
const url = `http://127.0.0.1:${port}/mcp`;
const server = spawn(process.execPath, [CLI, 'serve', '--http', '--port', String(port), '--db', db], {
  stdio: 'ignore',
  env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn' },
});
try {
  for (let i = 0; ; i++) {
    if (await fetch(url.replace('/mcp', '/healthz')).then((r) => r.ok, () => false)) break;
    if (i > 200) throw new Error('the server did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const web = await client(url, tokens.web);
  const telegram = await client(url, tokens.telegram);
  const voice = await client(url, tokens.voice);
  // A payment that arrives after its order timed out and its last unit was sold on the web: a refund is owed.
  const late = (await sell(telegram, [['JACKET-LTD', 1]], true)) as string;
  await timeOut();
  await sell(web, [['JACKET-LTD', 1]], true);
  cli('order', 'paid', late, '--reference', 'pi_3QxLate');
  await sell(web, [['TEE-BLK-M', 2], ['SOCKS-3PK', 1]], true);
  await sell(web, [['MUG-WHT', 4]], true);
  await sell(telegram, [['STICKER-PACK', 10]], false);
  const paid = (await sell(telegram, [['CAP-NVY', 2], ['TOTE-NAT', 1]], true)) as string;
  cli('order', 'paid', paid, '--reference', 'transfer 2026-12-07');
  await sell(telegram, [['MUG-WHT', 2]], true);
  await sell(telegram, [['HOODIE-GRY-M', 1], ['SOCKS-3PK', 2]], true);
  await sell(voice, [['EBOOK-GUIDE', 1]], true);
  await sell(voice, [['POSTER-A2', 2]], false);
  await sell(web, [['HOODIE-GRY-M', 1], ['TEE-WHT-M', 2]], false);
  const shopper = new MemoryOAuthProvider(OAUTH_REDIRECT, publicClientMetadata(OAUTH_REDIRECT, 'Shopping assistant'));
  await oauthSignIn(shopper, url);
  const assistant = await connectWithOAuth(url, shopper);
  await sell(assistant, [['CAP-NVY', 1], ['MUG-WHT', 1]], false);
  const gone = new MemoryOAuthProvider(OAUTH_REDIRECT, publicClientMetadata(OAUTH_REDIRECT, 'Old laptop agent'));
  await oauthSignIn(gone, url);
  const grants = cli('token', 'list');
  const goneId = /grt_\w+(?=\s+assistant\s+OAuth "Old laptop agent")/.exec(grants)?.[0];
  if (!goneId) throw new Error(`no grant for the old agent in:\n${grants}`);
  cli('token', 'revoke', goneId);

  mkdirSync(OUT, { recursive: true });
  for (const [name, viewport] of Object.entries(VIEWPORTS)) {
    const browser = await launchBrowser(viewport);
    try {
      const page = await browser.context.newPage();
      const base = url.replace(/\/mcp$/, '/console/');
      await page.goto(base);
      await page.screenshot({ path: join(OUT, `sign-in-${name}.png`) });
      await page.getByLabel('Admin token').fill(admin);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#live.on').waitFor();
      for (const target of PAGES) {
        await page.goto(`${base}#${target}`);
        if (target === 'stock') await page.locator('#stock-table tbody tr').first().waitFor();
        if (target === 'holds') await page.locator('#holds-table tbody tr').first().waitFor();
        if (target === 'channels') {
          await page.locator('#channel-cards section').first().waitFor();
          await page.locator('#grants-table tbody tr').first().waitFor();
        }
        if (target === 'orders') {
          await page.locator('#orders-table tbody tr').first().waitFor();
          // The desktop shot shows an order awaiting payment opened, with its actions.
          if (name === 'desktop') {
            await page.locator('#orders-table tbody tr:has(.tag.warn) button.link').first().click();
            await page.locator('#order-lines').waitFor();
          }
        }
        if (target === 'ledger') await page.locator('#ledger-table tbody tr').first().waitFor();
        if (target === 'import') {
          const bad = 'sku,name,price,currency,stock\nNEW-1,New tee,24.00,EUR,5\nbad sku!,Broken,1.00,EUR,1\nNEW-2,New mug,abc,EUR,2\n';
          await page.getByLabel('Catalog file (CSV or JSON)').setInputFiles({
            name: 'catalog.csv',
            mimeType: 'text/csv',
            buffer: Buffer.from(bad),
          });
          await page.getByRole('button', { name: 'Import' }).click();
          await page.locator('#import-result li').first().waitFor();
        }
        if (target === 'audit') {
          await page.getByRole('button', { name: 'Run the audit' }).click();
          await page.locator('#audit-result p').waitFor();
        }
        await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
        // A phone shows one screenful; the desktop shot shows the whole page.
        await page.screenshot({ path: join(OUT, `${target}-${name}.png`), fullPage: name === 'desktop' });
      }
    } finally {
      await browser.close();
    }
  }
  await Promise.all([web.close(), telegram.close(), voice.close(), assistant.close()]);
  process.stdout.write(`Screenshots written to ${OUT}\n`);
} finally {
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
