// The consent page in a real Chromium (Debian's, driven by playwright-core) with JavaScript off: one click, a code, a token.
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHROMIUM_ARGS } from '../helpers/browser.js';
import { call, connectClient, startHttpPerTest } from '../helpers/http.js';
import { authorizeUrl, pkcePair, registerClient, tokenRequest } from '../helpers/oauth.js';
import { CHROMIUM, describeBrowser } from '../helpers/requirements.js';

// docs/consent-page.png is refreshed only on request, so a test run leaves the worktree clean.
const SCREENSHOT = process.env.STOCKLOCK_UPDATE_SCREENSHOTS
  ? fileURLToPath(new URL('../../docs/consent-page.png', import.meta.url))
  : join(tmpdir(), `stocklock-consent-${process.pid}.png`);
const REDIRECT = 'https://claude.ai/api/mcp/auth_callback';
const start = startHttpPerTest();

describeBrowser('the consent page in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('names the client, its host, the channel and the abilities; Allow returns a code to claude.ai', async () => {
    const http = await start();
    const origin = new URL(http.url).origin;
    const registered = await registerClient(origin, {
      client_name: 'Claude',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
    });
    const clientId = registered.body.client_id as string;
    const pkce = pkcePair();
    const url = authorizeUrl(origin, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      scope: 'stock:shop stock:admin',
      state: 'from-claude',
      resource: http.url,
    });

    // No JavaScript at all: the page must work as plain HTML forms.
    const context = await browser.newContext({
      javaScriptEnabled: false,
      viewport: { width: 900, height: 1000 },
    });
    const page = await context.newPage();
    // claude.ai is answered here, offline; reaching it at all proves the CSP form-action lets the redirect through.
    let returned: URL | undefined;
    await page.route('https://claude.ai/**', async (route) => {
      returned = new URL(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the host' });
    });
    const response = await page.goto(url.href);
    expect(response?.status()).toBe(200);
    expect(await page.title()).toBe('Allow Claude to shop?');
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what the shopper reads.
    const text = await page.locator('main').innerText();
    expect(text).toContain('Allow Claude to shop here?');
    expect(text).toMatch(/Returns to\s+https:\/\/claude\.ai\s/);
    expect(text).toMatch(/Sells as channel\s+claude/);
    expect(text).toContain('check out the cart');
    expect(text).toContain('Merchant: also allow stock administration');
    expect(await page.locator('script').count()).toBe(0);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
    if (!process.env.STOCKLOCK_UPDATE_SCREENSHOTS) rmSync(SCREENSHOT);

    await page.getByRole('button', { name: 'Allow', exact: true }).click();
    await page.waitForURL(/^https:\/\/claude\.ai\//, { timeout: 15_000 });
    expect(returned?.pathname).toBe('/api/mcp/auth_callback');
    expect(returned?.searchParams.get('state')).toBe('from-claude');
    expect(returned?.searchParams.get('iss')).toBe(origin);
    const code = returned?.searchParams.get('code') as string;
    expect(code).toMatch(/^slc_/);
    await context.close();

    const tokens = await tokenRequest(origin, {
      grant_type: 'authorization_code',
      client_id: clientId,
      code,
      code_verifier: pkce.verifier,
      redirect_uri: REDIRECT,
    });
    // Allow without the admin token grants shopping only.
    expect(tokens.body.scope).toBe('stock:shop');
    const client = await connectClient(http.url, tokens.body.access_token);
    expect((await call(client, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
    await client.close();
  }, 60_000);

  it('signs the merchant in with an admin token typed on the page, and refuses a wrong one there', async () => {
    const http = await start();
    const origin = new URL(http.url).origin;
    const adminToken = await http.token('ops', true);
    const registered = await registerClient(origin, {
      client_name: 'Claude',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
    });
    const pkce = pkcePair();
    const url = authorizeUrl(origin, {
      response_type: 'code',
      client_id: registered.body.client_id as string,
      redirect_uri: REDIRECT,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      scope: 'stock:admin',
    });
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    let returned: URL | undefined;
    await page.route('https://claude.ai/**', async (route) => {
      returned = new URL(route.request().url());
      await route.fulfill({ status: 200, body: 'ok' });
    });
    await page.goto(url.href);
    await page.getByLabel('Admin token').fill('slk_not-an-admin-token');
    await page.getByRole('button', { name: 'Sign in and allow administration' }).click();
    await expect.poll(() => page.locator('[role=alert]').textContent()).toContain('not a live admin token');
    expect(page.url()).toBe(`${origin}/authorize`);
    // The typed token is never echoed back into the page.
    expect(await page.content()).not.toContain('slk_not-an-admin-token');

    await page.getByLabel('Admin token').fill(adminToken);
    await page.getByRole('button', { name: 'Sign in and allow administration' }).click();
    await page.waitForURL(/^https:\/\/claude\.ai\//, { timeout: 15_000 });
    // Nothing secret in the URL: the admin token went in the POST body only.
    expect(returned?.href).not.toContain(adminToken);
    const tokens = await tokenRequest(origin, {
      grant_type: 'authorization_code',
      client_id: registered.body.client_id as string,
      code: returned?.searchParams.get('code') as string,
      code_verifier: pkce.verifier,
    });
    expect(tokens.body.scope).toBe('stock:shop stock:admin');
    await context.close();
  }, 60_000);
});
