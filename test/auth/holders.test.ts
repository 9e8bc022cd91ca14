// Each OAuth grant is its own holder: two shoppers of one channel cannot see each other's carts, and each has its own cap.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { describe, expect, it } from 'vitest';
import { Database } from '../../src/storage/sqlite/driver.js';
import { call, connectClient, firstText, startHttpPerTest } from '../helpers/http.js';
import {
  authorizeUrl,
  openConsent,
  pkcePair,
  registerClient,
  submitConsent,
  tokenRequest,
} from '../helpers/oauth.js';

const start = startHttpPerTest();

/** A Claude-shaped sign-in (DCR public client, one click): a new grant on channel claude, connected over MCP. */
async function shopperOnClaude(issuer: string, mcpUrl: string): Promise<Client> {
  const redirect = 'https://claude.ai/api/mcp/auth_callback';
  const registered = await registerClient(issuer, {
    client_name: 'Claude',
    redirect_uris: [redirect],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  });
  expect(registered.status).toBe(201);
  const clientId = registered.body.client_id as string;
  const pkce = pkcePair();
  const form = await openConsent(
    authorizeUrl(issuer, {
      client_id: clientId,
      redirect_uri: redirect,
      response_type: 'code',
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      state: 'holders',
      resource: mcpUrl,
    }),
  );
  expect(form.status, form.html).toBe(200);
  const answer = await submitConsent(issuer, form, 'allow');
  expect(answer.status).toBe(303);
  const tokens = await tokenRequest(issuer, {
    grant_type: 'authorization_code',
    client_id: clientId,
    code: (answer.location as URL).searchParams.get('code') as string,
    code_verifier: pkce.verifier,
    redirect_uri: redirect,
    resource: mcpUrl,
  });
  expect(tokens.status).toBe(200);
  return connectClient(mcpUrl, tokens.body.access_token);
}

function cartOwners(dbPath: string): { channel: string; holder: string }[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.prepare('SELECT channel, holder FROM carts ORDER BY created_at, id').all() as {
      channel: string;
      holder: string;
    }[];
  } finally {
    db.close();
  }
}

function errorCode(result: { isError?: boolean; content: unknown }): string {
  return firstText(result as Parameters<typeof firstText>[0]).split(':')[0] ?? '';
}

describe('OAuth grants as holders', () => {
  it("two grants of one channel cannot see each other's carts; a static token of that channel cannot either", async () => {
    const http = await start();
    const issuer = new URL(http.url).origin;
    const alice = await shopperOnClaude(issuer, http.url);
    const bob = await shopperOnClaude(issuer, http.url);
    const added = await call(alice, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
    expect(added.isError).toBeFalsy();
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;

    const staticClaude = await http.connect(await http.token('claude'));
    for (const other of [bob, staticClaude]) {
      for (const [tool, args] of [
        ['get_cart', { cart_id: cartId }],
        ['add_to_cart', { sku: 'MUG-WHT', quantity: 1, cart_id: cartId }],
        ['checkout', { cart_id: cartId }],
        ['release_cart', { cart_id: cartId }],
      ] as const) {
        const refused = await call(other, tool, args);
        expect(refused.isError, tool).toBe(true);
        expect(errorCode(refused), tool).toBe('CART_NOT_FOUND');
      }
    }
    expect((await http.store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ reserved: 2 });
    // The owner still sees and buys its cart.
    const own = await call(alice, 'get_cart', { cart_id: cartId });
    expect(own.structuredContent).toMatchObject({ cart_id: cartId, item_count: 2 });
    expect((await call(alice, 'checkout', { cart_id: cartId })).isError).toBeFalsy();

    const owners = cartOwners(http.dbPath);
    expect(owners).toHaveLength(1);
    expect(owners[0]?.channel).toBe('claude');
    expect(owners[0]?.holder).toMatch(/.+/);
    expect((await http.store.audit()).ok).toBe(true);
    await alice.close();
    await bob.close();
  });

  it('refuses one grant past the per-holder cap (20 by default) while another grant of the channel still reserves', async () => {
    const http = await start();
    const issuer = new URL(http.url).origin;
    const hoarder = await shopperOnClaude(issuer, http.url);
    const other = await shopperOnClaude(issuer, http.url);
    // Two carts of 10 each: the cap counts every live cart of the holder.
    for (let cart = 0; cart < 2; cart += 1) {
      expect((await call(hoarder, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 10 })).isError).toBeFalsy();
    }
    const refused = await call(hoarder, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    expect(refused.isError).toBe(true);
    expect(errorCode(refused)).toBe('LIMIT_EXCEEDED');
    expect(JSON.parse((refused.content[1] as { text: string }).text)).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      cap: 'per_holder',
      limit: 20,
    });
    expect((await http.store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ reserved: 0 });
    // The other shopper, and a static token of the same channel, are not held back.
    expect((await call(other, 'add_to_cart', { sku: 'MUG-WHT', quantity: 20 })).isError).toBeFalsy();
    const staticClaude = await http.connect(await http.token('claude'));
    expect((await call(staticClaude, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 50 })).isError).toBeFalsy();
    const levels = await http.store.stockLevels(['TEE-BLK-M', 'MUG-WHT']);
    expect(Object.fromEntries(levels.map((l) => [l.sku, l.reserved]))).toEqual({
      'TEE-BLK-M': 70,
      'MUG-WHT': 20,
    });
    expect((await http.store.audit()).ok).toBe(true);
    await hoarder.close();
    await other.close();
  });
});
