// The MCP App in Debian's Chromium as a host runs it: a host page (test/app/host.ts, ext-apps' AppBridge and
// PostMessageTransport) renders the ui:// resource read from a live stocklock over HTTP in a sandboxed frame
// under the resource's CSP, and relays the frame's tool calls to a real MCP client. The server's clock and the
// browser's move together, so the hold's countdown and its end are driven without waiting.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { build } from 'esbuild';
import type { Frame, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../src/domain/clock.js';
import { silentLogger } from '../../src/logger.js';
import { APP_URI } from '../../src/mcp/app.js';
import { createLinkProvider } from '../../src/payments/link.js';
import { withPayments } from '../../src/payments/paying-store.js';
import { paymentSecretKey } from '../../src/payments/secret.js';
import { openSqliteStore, type SqliteStore } from '../../src/storage/sqlite/store.js';
import { type HttpServerHandle, serveHttp } from '../../src/transports/http.js';
import { type Browser, launchBrowser } from '../helpers/browser.js';
import { HTTP_CATALOG } from '../helpers/catalog.js';
import { call, connectClient, defaultHttpOptions, storeOptions } from '../helpers/http.js';
import { SECRET } from '../helpers/payments.js';
import { describeBrowser } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const ROOT = new URL('../../', import.meta.url).pathname;
let shots: string;
const PAY_TEMPLATE = 'https://pay.example/checkout?order={order_id}&total={total_minor}&sig={signature}';
/** The host's theme: the page must paint with these, not its own fallbacks. */
const HOST_STYLES = {
  '--color-background-primary': 'rgb(250, 248, 242)',
  '--color-text-primary': 'rgb(32, 33, 36)',
  '--font-sans': 'Georgia, serif',
};
const WAIT = { timeout: 15_000, interval: 50 };

let tmp: { dir: string; remove: () => void };
let store: SqliteStore;
let server: HttpServerHandle;
let clock: ManualClock;
let hostScript: string;
const clients: Client[] = [];

async function client(channel: string, admin = false): Promise<Client> {
  const connected = await connectClient(server.url, (await store.createToken(channel, admin)).token);
  clients.push(connected);
  return connected;
}

beforeAll(async () => {
  tmp = tempDir();
  // The README's screenshots are remade by `npm run screenshots:app`; other runs keep theirs in the temp folder.
  shots = process.env.STOCKLOCK_APP_SCREENSHOTS === 'docs' ? join(ROOT, 'docs') : tmp.dir;
  // An afternoon in UTC, so the times the page shows are the same on every machine.
  clock = new ManualClock(Date.UTC(2026, 11, 7, 14, 0, 0));
  store = openSqliteStore(join(tmp.dir, 'stocklock.db'), storeOptions({ clock }));
  await store.importProducts({ channel: 'cli' }, HTTP_CATALOG);
  await store.setCheckoutMode('chat', 'payment');
  const provider = createLinkProvider({ template: PAY_TEMPLATE, key: paymentSecretKey(SECRET) });
  // Sessions keep real time: only the stock's clock jumps.
  server = await serveHttp(
    withPayments(store, provider),
    defaultHttpOptions({ clock: systemClock }),
    silentLogger,
  );
  const bundle = await build({
    entryPoints: [join(ROOT, 'test', 'app', 'host.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    write: false,
  });
  hostScript = bundle.outputFiles[0]?.text ?? '';
});

afterAll(async () => {
  await Promise.all(clients.map((connected) => connected.close().catch(() => undefined)));
  await server?.close();
  await store?.close();
  tmp?.remove();
});

/** A host page with the app mounted on a tool result the "model" got from the server. */
async function host(
  browser: Browser,
  shopper: Client,
  tool: { name: string; arguments: Record<string, unknown> },
): Promise<{ page: Page; app: Frame }> {
  const page = await browser.context.newPage();
  // The browser's clock starts at the server's; the test moves both by the same span.
  await page.clock.install({ time: clock.now() });
  await page.exposeFunction('mcp', async (method: string, params: { name: string; arguments: object }) => {
    if (method !== 'tools/call') throw new Error(`the test host relays tools/call only, not ${method}`);
    return call(shopper, params.name, params.arguments as Record<string, unknown>);
  });
  await page.setContent(
    `<!doctype html><html lang="en"><head><title>Test host</title><style>body{margin:0;font-family:sans-serif}iframe{border:0;width:100%;display:block}</style></head><body><main id="conversation"></main></body></html>`,
  );
  await page.addScriptTag({ content: hostScript });
  const resource = await shopper.readResource({ uri: APP_URI });
  const content = resource.contents[0] as unknown as { text: string; _meta: { ui: { csp: object } } };
  const result = await call(shopper, tool.name, tool.arguments);
  await page.evaluate((mount) => window.mountApp(mount as never), {
    html: content.text,
    csp: content._meta.ui.csp,
    tool: { ...tool, result },
    hostContext: {
      theme: 'light',
      displayMode: 'inline',
      locale: 'en-GB',
      timeZone: 'UTC',
      styles: { variables: HOST_STYLES },
    },
  });
  const frame = page.frames().find((candidate) => candidate !== page.mainFrame());
  if (!frame) throw new Error('the app frame is missing');
  await frame.locator('#products:not([hidden])').waitFor();
  return { page, app: frame };
}

async function axeViolations(frame: Frame): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the frame's Content-Security-Policy does not govern.
  await frame.evaluate(AXE);
  return frame.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: {
          run: (ctx: Document) => Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }>;
        };
      }
    ).axe;
    const result = await axe.run(document);
    return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
}

/**
 * The countdown's seconds, checked against the hold's expires_at and the page's own clock in the same instant
 * (the ticker may be one second behind).
 */
async function countdownSeconds(app: Frame): Promise<number> {
  const seen = await app.evaluate(() => {
    const time = document.getElementById('countdown');
    return { text: time?.textContent ?? '', expires: time?.getAttribute('datetime') ?? '', now: Date.now() };
  });
  const [minutes = 0, seconds = 0] = seen.text.split(':').map(Number);
  const shown = minutes * 60 + seconds;
  const left = Math.ceil((Date.parse(seen.expires) - seen.now) / 1000);
  if (shown - left < 0 || shown - left > 1) throw new Error(`countdown ${seen.text} but ${left} s left`);
  return shown;
}

/** Moves the server's clock and the browser's together, once the page is idle. */
async function advance(page: Page, app: Frame, ms: number): Promise<void> {
  await app.locator('main[aria-busy="false"]').waitFor();
  clock.advance(ms);
  await page.clock.fastForward(ms);
}

describeBrowser('the MCP App in a host', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('a shopper finds, adds, watches the hold run down and out, meets a sold-out item, pays and sees it paid', async () => {
    const shopper = await client('chat');
    const { page, app } = await host(browser, shopper, {
      name: 'search_products',
      arguments: { query: '' },
    });
    // The host's theme is what the page paints with.
    expect(await app.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe(
      HOST_STYLES['--color-background-primary'],
    );
    const card = (sku: string) => app.locator(`li.card[data-sku="${sku}"]`);
    await expect.poll(() => card('LAST-FIVE').locator('.stock').textContent(), WAIT).toBe('5 left');

    // Add by keyboard: focus the button and press Enter.
    await card('MUG-WHT').getByRole('button', { name: 'Add to cart: Enamel camp mug, white' }).focus();
    await page.keyboard.press('Enter');
    await app.locator('#cart:not([hidden]) #countdown').waitFor();
    expect(await app.locator('#cart tr[data-sku="MUG-WHT"]').count()).toBe(1);
    // A fresh hold: fifteen minutes, less the few seconds the browser's clock has run since.
    expect(await countdownSeconds(app)).toBeGreaterThan(14 * 60);
    expect(await app.locator('#hold-text').textContent()).toContain(
      'held for you until 14:15. If you have not checked out by then, they go back on sale',
    );

    // Ten minutes later by both clocks: the countdown says five minutes, and the server still holds the mug.
    await advance(page, app, 10 * 60_000);
    await expect.poll(() => countdownSeconds(app), WAIT).toBeLessThanOrEqual(5 * 60);
    expect(await countdownSeconds(app)).toBeGreaterThan(4 * 60);
    expect((await store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ reserved: 1 });

    // Another channel buys the last five prints; the card still says 5 left until the shopper tries.
    const backend = await client('web');
    const taken = await call(backend, 'add_to_cart', { sku: 'LAST-FIVE', quantity: 5 });
    await call(backend, 'checkout', { cart_id: (taken.structuredContent as { cart_id: string }).cart_id });
    await card('LAST-FIVE')
      .getByRole('button', { name: /^Add to cart: Limited print/ })
      .click();
    await expect
      .poll(() => app.locator('#status').textContent(), WAIT)
      .toBe('Sorry, Limited print, last five just sold out, so nothing was added. Your cart is as it was.');
    await expect.poll(() => card('LAST-FIVE').locator('.stock').textContent(), WAIT).toBe('Sold out');
    expect(await card('LAST-FIVE').getByRole('button').isDisabled()).toBe(true);
    expect(await app.locator('#cart tbody tr').count()).toBe(1);
    expect(await axeViolations(app)).toEqual([]);
    await app.locator('main').evaluate(() => window.scrollTo(0, 0));
    await page.locator('iframe').screenshot({ path: join(shots, 'app-desktop.png') });

    // Past the hold: the page says so, and the server, asked by the page, agrees the cart expired.
    await advance(page, app, 5 * 60_000 + 1_000);
    await expect
      .poll(() => app.locator('#hold-text').textContent(), WAIT)
      .toContain('Your hold ran out at 14:15: the items went back on sale.');
    expect((await store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ reserved: 0 });

    // Checking out holds the mug again (it is still there) and places the order, awaiting payment.
    await app.getByRole('button', { name: 'Check out' }).click();
    await expect
      .poll(() => app.locator('#order-state').textContent(), WAIT)
      .toContain('Waiting for your payment. Pay by 14:45');
    const orderId = (await app.locator('#order code').textContent()) ?? '';
    expect(orderId).toMatch(/^ord_/);
    // The host's model hears of it for its next turn: the order, where to pay and by when.
    await expect.poll(() => page.evaluate(() => window.modelContext), WAIT).toContain(orderId);
    const order = await call(shopper, 'get_order', { order_id: orderId });
    const paymentUrl = (order.structuredContent as { payment_url: string }).payment_url;
    expect(paymentUrl).toMatch(/^https:\/\/pay\.example\/checkout\?order=ord_/);
    expect(await axeViolations(app)).toEqual([]);
    await page.locator('iframe').screenshot({ path: join(shots, 'app-desktop-pay.png') });

    // The pay button asks the host to open the link; the page itself goes nowhere.
    await app.getByRole('button', { name: 'Pay 14.50 EUR' }).click();
    await expect.poll(() => page.evaluate(() => window.openedLinks), WAIT).toEqual([paymentUrl]);

    // The merchant confirms the payment; the shopper asks, and sees it paid.
    const merchant = await client('ops', true);
    await call(merchant, 'confirm_payment', { order_id: orderId, reference: 'bank-42' });
    await app.getByRole('button', { name: 'Check payment status' }).click();
    await expect
      .poll(() => app.locator('#order-state').textContent(), WAIT)
      .toBe('Paid. Your order is confirmed.');
    expect((await store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ on_hand: 59, reserved: 0 });
    expect((await store.audit()).ok).toBe(true);
    await page.close();
  }, 180_000);

  it('reads at phone width and passes axe there too; a direct channel checks out to a paid order', async () => {
    const phone = await launchBrowser({ width: 390, height: 844 });
    try {
      const shopper = await client('web');
      const { page, app } = await host(phone, shopper, { name: 'search_products', arguments: { limit: 3 } });
      await app.locator('li.card button').first().click();
      await app.locator('#cart:not([hidden]) #countdown').waitFor();
      // Nothing wider than the phone: no sideways scrolling.
      expect(await app.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      expect(await axeViolations(app)).toEqual([]);
      // Chromium paints a frame taller than the window blank in an element shot: the window grows to fit it.
      const height = await page.locator('iframe').evaluate((frame) => frame.getBoundingClientRect().height);
      await page.setViewportSize({ width: 390, height: Math.ceil(height) });
      await page.locator('iframe').screenshot({ path: join(shots, 'app-phone.png') });
      // A direct channel: the checkout is the sale, and the view shows the order paid with nothing to pay.
      await app.getByRole('button', { name: 'Check out' }).click();
      await expect
        .poll(() => app.locator('#order-state').textContent(), WAIT)
        .toBe('Paid. Your order is confirmed.');
      expect(await app.getByRole('button', { name: /^Pay / }).count()).toBe(0);
      expect(await axeViolations(app)).toEqual([]);
    } finally {
      await phone.close();
    }
  }, 120_000);
});
