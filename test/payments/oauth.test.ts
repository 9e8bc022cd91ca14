// The whole way for a shopper in a chat host: a real OAuth grant (the SDK's own auth client) on a channel an OAuth
// host maps to, a checkout that awaits payment with a Stripe Checkout URL, the stand-in's signed webhook, the order
// paid and the audit clean; a static token's channel still sells at checkout.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { withPayments } from '../../src/payments/paying-store.js';
import { createStripeProvider } from '../../src/payments/stripe.js';
import { paymentRoutes } from '../../src/payments/webhooks.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { serveHttp } from '../../src/transports/http.js';
import { HTTP_CATALOG as CATALOG } from '../helpers/catalog.js';
import { call, connectClient, defaultHttpOptions, firstText, storeOptions } from '../helpers/http.js';
import { connectWithOAuth, MemoryOAuthProvider, publicClientMetadata, signIn } from '../helpers/oauth.js';
import { STANDIN_SECRET_KEY, STANDIN_WEBHOOK_SECRET, startStripeStandIn } from '../helpers/stripe-standin.js';
import { tempDir } from '../helpers/temp.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a shopper signed in through OAuth pays before the sale', () => {
  it('checks out to a Stripe Checkout URL; the signed webhook makes the order paid; a direct channel still sells', async () => {
    const tmp = tempDir('stocklock-payments-oauth-');
    cleanups.push(tmp.remove);
    const store = openSqliteStore(join(tmp.dir, 'stocklock.db'), storeOptions());
    cleanups.push(() => store.close());
    await store.importProducts({ channel: 'cli' }, CATALOG);
    // The host the shopper's client returns to sells as `claude`: an OAuth host's channel, so payment mode.
    await store.oauth.setHostRule('127.0.0.1', 'claude', Date.now());
    const standIn = await startStripeStandIn();
    cleanups.push(() => standIn.close());
    const stripe = createStripeProvider({
      secretKey: STANDIN_SECRET_KEY,
      successUrl: 'https://shop.example/thanks?order={order_id}',
      cancelUrl: 'https://shop.example/cart?order={order_id}',
      api: standIn.api,
    });
    const router = paymentRoutes({
      store,
      clock: store.options.clock,
      logger: silentLogger,
      stripe: { client: stripe.stripe, webhookSecret: STANDIN_WEBHOOK_SECRET },
    });
    const server = await serveHttp(
      withPayments(store, stripe),
      defaultHttpOptions({ payments: { router } }),
      silentLogger,
    );
    cleanups.push(() => server.close());

    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT));
    await signIn(provider, server.url);
    const shopper = await connectWithOAuth(server.url, provider);
    cleanups.push(() => shopper.close().catch(() => undefined));
    const added = await call(shopper, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
    expect(added.isError, firstText(added)).toBeFalsy();
    const checkout = await call(shopper, 'checkout', {
      cart_id: (added.structuredContent as { cart_id: string }).cart_id,
      idempotency_key: 'shopper-checkout-1',
    });
    expect(checkout.isError, firstText(checkout)).toBeFalsy();
    const order = checkout.structuredContent as {
      order_id: string;
      status: string;
      payment_url: string;
      pay_by: string;
    };
    const session = [...standIn.sessions.values()][0];
    expect(order).toMatchObject({ status: 'awaiting_payment', payment_url: session?.url, channel: 'claude' });
    expect(order.pay_by).toBeTruthy();
    expect(firstText(checkout)).toContain(session?.url ?? 'no session');
    expect(session).toMatchObject({
      client_reference_id: order.order_id,
      amount_total: 2900,
      currency: 'eur',
    });

    const event = standIn.signedEvent(
      'checkout.session.completed',
      standIn.complete(session?.id ?? ''),
      Math.floor(Date.now() / 1000),
    );
    const origin = new URL(server.url).origin;
    const answer = await fetch(`${origin}/payments/stripe`, {
      method: 'POST',
      body: event.body,
      headers: { 'content-type': 'application/json', 'stripe-signature': event.signature },
    });
    expect(answer.status).toBe(200);
    const shown = await call(shopper, 'get_order', { order_id: order.order_id });
    expect(shown.structuredContent).toMatchObject({ order_id: order.order_id, status: 'paid' });

    // The merchant's own backend on a static token: direct mode, the checkout is the sale.
    const backend = await connectClient(server.url, (await store.createToken('web', false)).token);
    cleanups.push(() => backend.close().catch(() => undefined));
    const cart = await call(backend, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    const sale = await call(backend, 'checkout', {
      cart_id: (cart.structuredContent as { cart_id: string }).cart_id,
    });
    expect(sale.structuredContent).toMatchObject({ status: 'paid', payment_url: null });
    expect(standIn.sessions.size).toBe(1);

    const audit = await store.audit();
    expect(audit.violations).toEqual([]);
  });
});
