// Two HTTP servers on one PostgreSQL database share OAuth: a grant made on one works, refreshes and is revoked on the other.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import type { InventoryStore } from '../../src/storage/store.js';
import { type HttpServerHandle, serveHttp } from '../../src/transports/http.js';
import { HTTP_CATALOG } from '../helpers/catalog.js';
import {
  bearer,
  call,
  connectClient,
  defaultHttpOptions,
  INITIALIZE,
  MCP_HEADERS,
  raw,
  storeOptions,
  waitFor,
} from '../helpers/http.js';
import {
  authorizeUrl,
  openConsent,
  pkcePair,
  registerClient,
  submitConsent,
  tokenRequest,
} from '../helpers/oauth.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';

const PUBLIC = 'https://shop.example.test';
const REDIRECT = 'https://claude.ai/api/mcp/auth_callback';

describePostgres('an OAuth grant across a PostgreSQL pool', () => {
  let db: TestDatabase;
  const stores: InventoryStore[] = [];
  const servers: HttpServerHandle[] = [];
  beforeAll(async () => {
    db = await createTestDatabase('stocklock_oauth_pool');
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await Promise.all(stores.map((s) => s.close()));
    await db?.drop();
  });

  it('signs in on server A, shops on server B, refreshes on B, and a replay on A revokes it for both', async () => {
    for (let i = 0; i < 2; i++) {
      const store = await openPostgresStore(db.url, storeOptions());
      stores.push(store);
      // Both servers stand behind one public URL, as a load balancer would present them.
      servers.push(await serveHttp(store, defaultHttpOptions({ publicUrl: PUBLIC }), silentLogger));
    }
    const [a, b] = servers as [HttpServerHandle, HttpServerHandle];
    await (stores[0] as InventoryStore).importProducts({ channel: 'cli' }, HTTP_CATALOG);
    const originA = new URL(a.url).origin;
    const originB = new URL(b.url).origin;

    const registered = await registerClient(originA, {
      client_name: 'Claude',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
    });
    const clientId = registered.body.client_id as string;
    const pkce = pkcePair();
    const form = await openConsent(
      authorizeUrl(originA, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        code_challenge: pkce.challenge,
        code_challenge_method: 'S256',
        resource: `${PUBLIC}/mcp`,
        state: 's',
      }),
    );
    expect(form.status, form.html).toBe(200);
    const consent = await submitConsent(originA, form, 'allow');
    expect(consent.location?.searchParams.get('iss')).toBe(PUBLIC);
    const code = consent.location?.searchParams.get('code') as string;
    // The code is exchanged on B: codes live in the shared store too.
    const tokens = await tokenRequest(originB, {
      grant_type: 'authorization_code',
      client_id: clientId,
      code,
      code_verifier: pkce.verifier,
      redirect_uri: REDIRECT,
    });
    expect(tokens.status).toBe(200);

    const client = await connectClient(b.url, tokens.body.access_token);
    expect((await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 })).isError).toBeFalsy();
    await client.close();

    const rotated = await tokenRequest(originB, {
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: tokens.body.refresh_token as string,
    });
    expect(rotated.status).toBe(200);
    expect(
      (
        await raw(a.url, {
          headers: { ...MCP_HEADERS, ...bearer(rotated.body.access_token as string) },
          body: INITIALIZE,
        })
      ).status,
    ).toBe(200);

    const replay = await tokenRequest(originA, {
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: tokens.body.refresh_token as string,
    });
    expect(replay.body.error).toBe('invalid_grant');
    for (const server of [a, b]) {
      await waitFor(
        async () =>
          (
            await raw(server.url, {
              headers: { ...MCP_HEADERS, ...bearer(rotated.body.access_token as string) },
              body: INITIALIZE,
            })
          ).status === 401,
      );
    }
    expect((await db.query('SELECT revoke_reason FROM oauth_grants'))[0]).toEqual({
      revoke_reason: 'refresh token reused',
    });
    expect((await db.query('SELECT count(*)::int AS n FROM oauth_tokens'))[0]).toEqual({ n: 0 });
  });
});
