// The built CLI with a payment provider: the flags refuse a set-up that cannot work, and a served shop takes a
// checkout in a payment channel to paid through the signed link webhook and through Stripe's (the local stand-in).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { SHOP_CATALOG as CATALOG } from '../helpers/catalog.js';
import { CLI, type RunningCli, spawnCli, waitHealthy } from '../helpers/cli.js';
import { call, connectClient, firstText, freePort } from '../helpers/http.js';
import { SECRET } from '../helpers/payments.js';
import {
  STANDIN_SECRET_KEY,
  STANDIN_WEBHOOK_SECRET,
  type StripeStandIn,
  startStripeStandIn,
} from '../helpers/stripe-standin.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const TEMPLATE =
  'https://shop.example/pay?order={order_id}&total={total_minor}&currency={currency}&sig={signature}';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A database with the catalog, channel `claude` in payment mode, and a static token for it. */
async function shop(): Promise<{ db: string; token: string; adminToken: string }> {
  const tmp = tempDir('stocklock-payments-cli-');
  cleanups.push(tmp.remove);
  const db = join(tmp.dir, 'stocklock.db');
  const store = openSqliteStore(db, {
    clock: new ManualClock(Date.now()),
    reservationTtlMs: 15 * 60_000,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 5_000,
  });
  await store.importProducts({ channel: 'cli' }, CATALOG);
  await store.setCheckoutMode('claude', 'payment');
  const { token } = await store.createToken('claude', false, 'payments test');
  const { token: adminToken } = await store.createToken('web', true, 'payments test admin');
  await store.close();
  return { db, token, adminToken };
}

async function serve(db: string, args: string[], env: Record<string, string> = {}) {
  const port = await freePort();
  const server: RunningCli = spawnCli(['serve', '--http', '--port', String(port), '--db', db, ...args], env);
  cleanups.push(server.kill);
  const url = `http://127.0.0.1:${port}/mcp`;
  await waitHealthy(url, server);
  return { server, url, base: `http://127.0.0.1:${port}` };
}

async function checkout(url: string, token: string) {
  const client = await connectClient(url, token);
  cleanups.push(() => client.close().catch(() => undefined));
  const added = await call(client, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 2 });
  expect(added.isError, firstText(added)).toBeFalsy();
  const order = await call(client, 'checkout', {
    cart_id: (added.structuredContent as { cart_id: string }).cart_id,
  });
  expect(order.isError, firstText(order)).toBeFalsy();
  return {
    client,
    order: order.structuredContent as { order_id: string; status: string; payment_url: string },
  };
}

describe('stocklock serve --payment (built CLI)', () => {
  it.each([
    [['--payment', 'link', '--payment-secret', SECRET], {}, '--payment link needs --payment-url'],
    [['--payment', 'link', '--payment-url', TEMPLATE], {}, '--payment link needs --payment-secret'],
    [['--payment', 'link', '--payment-url', TEMPLATE, '--payment-secret', 'short'], {}, 'must be "whsec_"'],
    [
      ['--payment', 'link', '--payment-url', 'https://x.example/{oops}', '--payment-secret', SECRET],
      {},
      '{oops}',
    ],
    [['--payment', 'stripe'], {}, 'STRIPE_SECRET_KEY'],
    [['--payment', 'stripe'], { STRIPE_SECRET_KEY: 'sk_test_x' }, 'STRIPE_WEBHOOK_SECRET'],
  ] as const)('refuses %j at start', async (args, env, message) => {
    const { db } = await shop();
    const failed = await run(process.execPath, [CLI, 'serve', '--http', '--port', '0', '--db', db, ...args], {
      env: { ...process.env, ...env },
    }).catch((error: { code: number; stderr: string }) => error);
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toContain(message);
  });

  it('link: checkout gives a signed pay link; the signed webhook pays the order; the secret is never logged', async () => {
    const { db, token } = await shop();
    const { server, url, base } = await serve(db, [], {
      STOCKLOCK_PAYMENT: 'link',
      STOCKLOCK_PAYMENT_URL: TEMPLATE,
      STOCKLOCK_PAYMENT_SECRET: SECRET,
    });
    const { client, order } = await checkout(url, token);
    expect(order.status).toBe('awaiting_payment');
    expect(order.payment_url).toMatch(/^https:\/\/shop\.example\/pay\?order=ord_.*&sig=[0-9a-f]{64}$/);
    const body = JSON.stringify({
      type: 'payment.succeeded',
      data: { order_id: order.order_id, reference: 'pay_cli', total_minor: 4800, currency: 'EUR' },
    });
    const now = new Date();
    const paid = await fetch(`${base}/payments/webhook`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'webhook-id': 'msg_cli_1',
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': new Webhook(SECRET).sign('msg_cli_1', now, body),
      },
    });
    expect(paid.status).toBe(200);
    const shown = await call(client, 'get_order', { order_id: order.order_id });
    expect(shown.structuredContent).toMatchObject({ status: 'paid', payment_reference: 'pay_cli' });
    const audit = await run(process.execPath, [CLI, 'audit', '--db', db]);
    expect(audit.stdout).toMatch(/ok|clean|passed/i);
    expect(server.stderr()).not.toContain(SECRET.slice(6));
  });

  it('stripe: checkout gives a Checkout Session URL; the signed completed event pays the order', async () => {
    const standIn: StripeStandIn = await startStripeStandIn();
    cleanups.push(() => standIn.close());
    const { db, token } = await shop();
    const { server, url, base } = await serve(db, ['--payment', 'stripe'], {
      STRIPE_SECRET_KEY: STANDIN_SECRET_KEY,
      STRIPE_WEBHOOK_SECRET: STANDIN_WEBHOOK_SECRET,
      STOCKLOCK_STRIPE_API_URL: standIn.url,
    });
    const { client, order } = await checkout(url, token);
    const session = [...standIn.sessions.values()][0];
    expect(order.payment_url).toBe(session?.url);
    expect(session).toMatchObject({
      client_reference_id: order.order_id,
      success_url: `${base}/payments/return?order_id=${order.order_id}`,
    });
    const event = standIn.signedEvent(
      'checkout.session.completed',
      standIn.complete(session?.id ?? ''),
      Math.floor(Date.now() / 1000),
    );
    const answer = await fetch(`${base}/payments/stripe`, {
      method: 'POST',
      body: event.body,
      headers: { 'content-type': 'application/json', 'stripe-signature': event.signature },
    });
    expect(await answer.json()).toMatchObject({ received: true, status: 'paid' });
    const shown = await call(client, 'get_order', { order_id: order.order_id });
    expect(shown.structuredContent).toMatchObject({ status: 'paid' });
    const page = await fetch(`${base}/payments/return?order_id=${order.order_id}`);
    expect(await page.text()).toContain(order.order_id);
    expect(server.stderr()).not.toContain(STANDIN_SECRET_KEY);
  });

  it("stripe: the merchant's cancel_order expires the order's Checkout Session at Stripe", async () => {
    const standIn: StripeStandIn = await startStripeStandIn();
    cleanups.push(() => standIn.close());
    const { db, token, adminToken } = await shop();
    const { url } = await serve(db, ['--payment', 'stripe'], {
      STRIPE_SECRET_KEY: STANDIN_SECRET_KEY,
      STRIPE_WEBHOOK_SECRET: STANDIN_WEBHOOK_SECRET,
      STOCKLOCK_STRIPE_API_URL: standIn.url,
    });
    const { order } = await checkout(url, token);
    const session = [...standIn.sessions.values()][0];
    expect(session?.status).toBe('open');
    const admin = await connectClient(url, adminToken);
    cleanups.push(() => admin.close().catch(() => undefined));
    const cancelled = await call(admin, 'cancel_order', { order_id: order.order_id, restock: false });
    expect(cancelled.isError, firstText(cancelled)).toBeFalsy();
    expect(cancelled.structuredContent).toMatchObject({ status: 'cancelled', cancel_reason: 'merchant' });
    // The expiry follows the commit: wait for the stand-in to have answered it.
    await standIn.answered(2);
    expect(standIn.requests.map((r) => [r.method, r.path, r.status])).toEqual([
      ['POST', '/v1/checkout/sessions', 200],
      ['POST', `/v1/checkout/sessions/${session?.id}/expire`, 200],
    ]);
    expect(standIn.sessions.get(session?.id ?? '')?.status).toBe('expired');
  });
});
