// The MCP SDK's own OAuth client signs in over real HTTP (DCR and CIMD), calls tools, refreshes, and is refused once revoked.

import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { CallContext } from '../../src/domain/types.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import type { SqliteStore } from '../../src/storage/sqlite/store.js';
import { runCliAsync } from '../helpers/cli.js';
import {
  ADMIN_TOOLS,
  bearer,
  CUSTOMER_TOOLS,
  call,
  INITIALIZE,
  MCP_HEADERS,
  raw,
  startHttpPerTest,
  waitFor,
} from '../helpers/http.js';
import {
  connectWithOAuth,
  type DocumentHost,
  MemoryOAuthProvider,
  publicClientMetadata,
  signIn,
  startDocumentHost,
} from '../helpers/oauth.js';

const start = startHttpPerTest();
const REDIRECT = 'http://127.0.0.1:9/callback';

let documents: DocumentHost | undefined;
afterEach(async () => {
  await documents?.close();
  documents = undefined;
});

async function serverWithAgents(overrides = {}) {
  const http = await start(overrides);
  await http.store.oauth.setHostRule('127.0.0.1', 'agents', Date.now());
  return http;
}

function cartChannels(dbPath: string): string[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare('SELECT channel FROM carts ORDER BY created_at').all() as { channel: string }[]).map(
      (row) => row.channel,
    );
  } finally {
    db.close();
  }
}

async function toolNames(client: Awaited<ReturnType<typeof connectWithOAuth>>) {
  return (await client.listTools()).tools.map((tool) => tool.name).sort();
}

describe('the SDK OAuth client', () => {
  it('registers by DCR, signs in with PKCE, shops as the mapped channel, refreshes, and is refused after token revoke', async () => {
    const http = await start();
    // The merchant maps the redirect host with the real CLI, on the same database file the server uses.
    const allowed = await runCliAsync([
      'oauth',
      'allow',
      '127.0.0.1',
      '--channel',
      'agents',
      '--db',
      http.dbPath,
    ]);
    expect(allowed.stderr).toBe('');
    expect(allowed.stdout).toMatch(/127\.0\.0\.1 may sign in as channel "agents"/);
    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT));
    const back = await signIn(provider, http.url);

    // RFC 9207: the authorization response names the issuer.
    expect(back.searchParams.get('iss')).toBe(new URL(http.url).origin);
    expect(provider.client?.client_id).toMatch(/^cli_/);
    expect(provider.client).not.toHaveProperty('client_secret');
    const first = provider.saved;
    expect(first).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'stock:shop' });
    expect(first?.access_token).toMatch(/^sla_/);
    expect(first?.refresh_token).toMatch(/^slr_/);

    const client = await connectWithOAuth(http.url, provider);
    expect(await toolNames(client)).toEqual(CUSTOMER_TOOLS);
    const added = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
    expect(added.isError).toBeFalsy();
    // The channel comes from the grant: the host map said 127.0.0.1 sells as "agents".
    expect(cartChannels(http.dbPath)).toEqual(['agents']);
    const grants = await http.store.oauth.listGrants();
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({
      channel: 'agents',
      scope: 'stock:shop',
      client_name: 'stocklock test agent',
    });

    // Refresh: auth() with a refresh token rotates it; the new access token works.
    expect(await auth(provider, { serverUrl: http.url })).toBe('AUTHORIZED');
    expect(provider.saved?.access_token).not.toBe(first?.access_token);
    expect(provider.saved?.refresh_token).not.toBe(first?.refresh_token);
    const fresh = await connectWithOAuth(http.url, provider);
    expect((await call(fresh, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();

    // token list shows the grant beside static tokens; token revoke ends it.
    const grantId = grants[0]?.id as string;
    const listed = await runCliAsync(['token', 'list', '--db', http.dbPath]);
    expect(listed.stdout).toMatch(
      new RegExp(`${grantId}  agents  OAuth "stocklock test agent" cli_\\w+ via 127\\.0\\.0\\.1`),
    );
    const revoked = await runCliAsync(['token', 'revoke', grantId, '--db', http.dbPath]);
    expect(revoked.status).toBe(0);
    expect(revoked.stdout).toBe(`Revoked ${grantId} in ${http.dbPath}.\n`);
    // The access token stops working (within the 100 ms verification cache of the fixture).
    const token = provider.saved?.access_token as string;
    await waitFor(
      async () =>
        (await raw(http.url, { headers: { ...MCP_HEADERS, ...bearer(token) }, body: INITIALIZE })).status ===
        401,
    );
    // And the SDK client cannot get a new one without the user: refreshing is refused.
    await expect(call(fresh, 'check_stock', { skus: ['MUG-WHT'] })).rejects.toThrow();
    await client.close();
    await fresh.close();
  });

  it('signs in as a Client ID Metadata Document client fetched over https', async () => {
    documents = await startDocumentHost();
    const http = await serverWithAgents({ clientMetadataCa: documents.ca });
    const clientId = `${documents.origin}/oauth/client.json`;
    documents.serve('/oauth/client.json', {
      client_id: clientId,
      client_name: 'CIMD test agent',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT), clientId);
    await signIn(provider, http.url);
    expect(provider.client?.client_id).toBe(clientId);
    expect(documents.requests).toContain('/oauth/client.json');

    const client = await connectWithOAuth(http.url, provider);
    expect(await toolNames(client)).toEqual(CUSTOMER_TOOLS);
    expect((await call(client, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 1 })).isError).toBeFalsy();
    const [grant] = await http.store.oauth.listGrants();
    expect(grant).toMatchObject({ client_id: clientId, client_name: 'CIMD test agent', channel: 'agents' });

    expect(await auth(provider, { serverUrl: http.url })).toBe('AUTHORIZED');
    const refreshed = await connectWithOAuth(http.url, provider);
    expect((await call(refreshed, 'get_cart', { cart_id: 'cart_nonexistent00000000000' })).isError).toBe(
      true,
    );
    await client.close();
    await refreshed.close();
  });

  it('hands the store each call with the grant as its holder; a static token has none', async () => {
    const seen: CallContext[] = [];
    // The real store, with addToCart's context noted on the way in.
    const recording = (store: SqliteStore) =>
      new Proxy(store, {
        get(target, key, receiver) {
          const value = Reflect.get(target, key, receiver);
          if (key !== 'addToCart') return typeof value === 'function' ? value.bind(target) : value;
          return (ctx: CallContext, input: Parameters<SqliteStore['addToCart']>[1]) => {
            seen.push(ctx);
            return target.addToCart(ctx, input);
          };
        },
      });
    const http = await start({}, recording);
    await http.store.oauth.setHostRule('127.0.0.1', 'agents', Date.now());
    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT));
    await signIn(provider, http.url);
    const oauthClient = await connectWithOAuth(http.url, provider);
    expect((await call(oauthClient, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 })).isError).toBeFalsy();
    const tokenClient = await http.connect(await http.token('web'));
    expect((await call(tokenClient, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 })).isError).toBeFalsy();
    const [grant] = await http.store.oauth.listGrants();
    expect(seen).toEqual([{ channel: 'agents', holder: grant?.id }, { channel: 'web' }]);
    await oauthClient.close();
  });

  it('grants stock:admin only with an admin token typed on the consent page', async () => {
    const http = await serverWithAgents();
    const adminToken = await http.token('ops', true);
    const provider = new MemoryOAuthProvider(REDIRECT, {
      ...publicClientMetadata(REDIRECT),
      scope: 'stock:shop stock:admin',
    });
    const first = await auth(provider, { serverUrl: http.url, scope: 'stock:shop stock:admin' });
    expect(first).toBe('REDIRECT');
    expect(provider.authorizationUrl?.searchParams.get('scope')).toBe('stock:shop stock:admin');
    const { approve } = await import('../helpers/oauth.js');
    const back = await approve(provider, 'allow_admin', { admin_token: adminToken });
    expect(
      await auth(provider, {
        serverUrl: http.url,
        authorizationCode: back.searchParams.get('code') as string,
      }),
    ).toBe('AUTHORIZED');
    expect(provider.saved?.scope).toBe('stock:shop stock:admin');
    const client = await connectWithOAuth(http.url, provider);
    expect(await toolNames(client)).toEqual(ADMIN_TOOLS);
    expect((await call(client, 'restock', { sku: 'MUG-WHT', quantity: 3 })).isError).toBeFalsy();
    await client.close();
  });
});
