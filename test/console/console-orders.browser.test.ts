// The Orders page in Chromium against the built CLI's HTTP server on a SQLite file: live, filtered, confirmed,
// cancelled with restock, a payment that needs a refund standing out, and axe-core clean.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { OrderView } from '../../src/domain/types.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { type Browser, launchBrowser } from '../helpers/browser.js';
import { CLI, ROOT, type RunningCli, spawnCli, waitHealthy } from '../helpers/cli.js';
import { call, connectClient, firstText, freePort } from '../helpers/http.js';
import { describeBrowser } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const DEMO = join(ROOT, 'examples', 'demo-catalog.json');
const WAIT = { timeout: 15_000, interval: 50 };

let tmp: { dir: string; remove: () => void };
let db: string;
let server: RunningCli;
let base: string;
let mcpUrl: string;
let adminToken: string;
let botToken: string;
let browser: Browser;
let page: Page;

async function cli(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--db', db], {
    env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn' },
  });
  return stdout.trim();
}

const orderOf = async (id: string) => JSON.parse(await cli('order', 'show', id, '--json')) as OrderView;
const onHand = async (sku: string) =>
  (JSON.parse(await cli('stock', sku, '--json')) as { on_hand: number }[])[0]?.on_hand ?? Number.NaN;

/** A shopper's checkout through the HTTP server on the bot's channel, which checks out in payment mode. */
async function checkout(lines: [string, number][]): Promise<string> {
  const client = await connectClient(mcpUrl, botToken);
  try {
    let cartId: string | undefined;
    for (const [sku, quantity] of lines) {
      const cart = await call(client, 'add_to_cart', { sku, quantity, cart_id: cartId });
      expect(cart.isError, firstText(cart)).toBeFalsy();
      cartId = (cart.structuredContent as { cart_id: string }).cart_id;
    }
    const order = await call(client, 'checkout', { cart_id: cartId });
    expect(order.isError, firstText(order)).toBeFalsy();
    expect(order.structuredContent).toMatchObject({ status: 'awaiting_payment' });
    return (order.structuredContent as { order_id: string }).order_id;
  } finally {
    await client.close();
  }
}

function text(locator: Locator): () => Promise<string> {
  return async () => (await locator.allTextContents()).join(' ').trim();
}

const row = (id: string) => page.locator(`#orders-table tr[data-order="${id}"]`);

async function openOrders(): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.getByLabel('Admin token').fill(adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#live.on').waitFor({ timeout: 30_000 });
  await page.getByRole('link', { name: 'Orders' }).click();
  await page.locator('#orders-count').waitFor();
}

beforeAll(async () => {
  tmp = tempDir('stocklock-console-orders-');
  db = join(tmp.dir, 'stocklock.db');
  await cli('import', DEMO);
  adminToken = await cli('token', 'create', '--channel', 'ops', '--admin');
  botToken = await cli('token', 'create', '--channel', 'telegram');
  await cli('channel', 'set', 'telegram', '--checkout', 'payment');
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
  await page.addInitScript(() => {
    (window as unknown as { bootedAt: number }).bootedAt =
      (window as unknown as { bootedAt?: number }).bootedAt ?? Math.random();
  });
});

afterEach(async () => {
  await page.close();
  await browser.context.clearCookies();
});

describeBrowser('the Orders page in Chromium', () => {
  it('shows new orders live, filters them, and confirms a payment', async () => {
    await openOrders();
    const booted = await page.evaluate(() => (window as unknown as { bootedAt: number }).bootedAt);
    const first = await checkout([
      ['TEE-BLK-M', 2],
      ['SOCKS-3PK', 1],
    ]);
    await expect
      .poll(text(row(first).locator('td[data-label="Status"]')), WAIT)
      .toContain('awaiting payment');
    const second = await checkout([['MUG-WHT', 1]]);
    await expect.poll(text(row(second)), WAIT).toContain('1 × MUG-WHT');

    await page.getByLabel('Status').selectOption('paid');
    await expect.poll(text(page.locator('#orders-count')), WAIT).toBe('No orders match.');
    await page.getByLabel('Status').selectOption('awaiting_payment');
    await expect.poll(async () => page.locator('#orders-table tbody tr').count(), WAIT).toBe(2);
    await page.getByLabel('Channel').fill('web');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(text(page.locator('#orders-count')), WAIT).toBe('No orders match.');
    await page.getByLabel('Channel').fill('telegram');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(async () => page.locator('#orders-table tbody tr').count(), WAIT).toBe(2);

    const teeBefore = await onHand('TEE-BLK-M');
    await page.getByRole('button', { name: `Show order ${first}` }).click();
    const detail = page.locator('#order-detail');
    await expect.poll(text(detail.locator('#order-lines')), WAIT).toContain('SOCKS-3PK');
    expect(await detail.textContent()).toContain('Pay by');
    await page.getByLabel('Payment reference').fill('bank transfer 42');
    await page.getByRole('button', { name: 'Confirm payment' }).click();
    await expect.poll(text(page.getByRole('status')), WAIT).toContain(`Order ${first} is paid.`);
    expect(await orderOf(first)).toMatchObject({ status: 'paid', payment_reference: 'bank transfer 42' });
    expect(await onHand('TEE-BLK-M')).toBe(teeBefore - 2);
    // Filtered to orders awaiting payment, the paid one leaves the list.
    await expect.poll(async () => row(first).count(), WAIT).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { bootedAt: number }).bootedAt)).toBe(booted);
  });

  it('cancels a paid order with restock: its units are back on hand', async () => {
    const id = await checkout([['POSTER-A2', 2]]);
    await cli('order', 'paid', id, '--reference', 'pi_cli');
    const before = await onHand('POSTER-A2');
    await openOrders();
    await page.getByRole('button', { name: `Show order ${id}` }).click();
    await page.getByRole('button', { name: `Cancel and restock order ${id}`, exact: true }).click();
    await page.getByRole('button', { name: `Confirm: Cancel and restock order ${id}` }).click();
    await expect.poll(text(page.getByRole('status')), WAIT).toContain('its units are back in stock');
    await expect.poll(text(row(id).locator('td[data-label="Status"]')), WAIT).toContain('cancelled');
    expect(await orderOf(id)).toMatchObject({ status: 'cancelled', cancel_reason: 'merchant' });
    expect(await onHand('POSTER-A2')).toBe(before + 2);
  });

  it('makes a payment that arrived too late stand out, live, and filters to those orders', async () => {
    await openOrders();
    const booted = await page.evaluate(() => (window as unknown as { bootedAt: number }).bootedAt);
    const late = await checkout([['JACKET-LTD', 1]]);
    await expect.poll(async () => row(late).count(), WAIT).toBe(1);
    // Another process on the file, its clock past the order's pay_by: the order times out, the last jacket is
    // sold on another channel, and then the shopper's payment arrives.
    const other = openSqliteStore(db, {
      clock: new ManualClock(Date.now() + 31 * 60_000),
      reservationTtlMs: 15 * 60_000,
      limits: DEFAULT_LIMITS,
      lockTimeoutMs: 5_000,
    });
    try {
      await other.sweepOverdueOrders();
      const cart = await other.addToCart({ channel: 'web' }, { sku: 'JACKET-LTD', quantity: 1 });
      await other.checkout({ channel: 'web' }, { cartId: cart.cart_id });
      const paid = await other.confirmPayment(
        { channel: 'cli', admin: true },
        { orderId: late, reference: 'pi_too_late' },
      );
      expect(paid).toMatchObject({ status: 'cancelled', needs_refund: true });
    } finally {
      await other.close();
    }
    await expect.poll(text(row(late).locator('.refund-tag')), WAIT).toBe('needs refund');
    expect(await row(late).getAttribute('class')).toContain('refund');
    const background = await row(late)
      .locator('td')
      .first()
      .evaluate((td) => getComputedStyle(td).backgroundColor);
    expect(background).not.toBe('rgba(0, 0, 0, 0)');
    await expect.poll(text(page.locator('#refund-banner')), WAIT).toContain('need a refund');
    await page.getByRole('button', { name: 'Show orders that need a refund' }).click();
    await expect.poll(async () => page.locator('#orders-table tbody tr').count(), WAIT).toBe(1);
    expect(await page.locator('#orders-table tbody tr').getAttribute('data-order')).toBe(late);
    await page.getByRole('button', { name: `Show order ${late}` }).click();
    await expect.poll(text(page.locator('#order-detail')), WAIT).toContain('pi_too_late');
    // Nothing to confirm or cancel: the refund happens at the payment provider.
    expect(await page.getByRole('button', { name: 'Confirm payment' }).count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { bootedAt: number }).bootedAt)).toBe(booted);
  });

  it("passes axe-core's checks with an order open, at desktop and phone width", async () => {
    await openOrders();
    const found: string[] = [];
    for (const viewport of [
      { width: 1280, height: 800 },
      { width: 390, height: 844 },
    ]) {
      await page.setViewportSize(viewport);
      await page.locator('#orders-table tbody tr').first().waitFor();
      const id = await page.locator('#orders-table tbody tr').first().getAttribute('data-order');
      await page.getByRole('button', { name: `Show order ${id}` }).click();
      await page.locator('#order-lines').waitFor();
      await page.evaluate(AXE);
      const violations = await page.evaluate(async () => {
        const axe = (
          window as unknown as {
            axe: {
              run: (
                ctx: Document,
              ) => Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }>;
            };
          }
        ).axe;
        const result = await axe.run(document);
        return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
      });
      found.push(...violations.map((v) => `@${viewport.width}px: ${v}`));
    }
    expect(found).toEqual([]);
  }, 120_000);
});
