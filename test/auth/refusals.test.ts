// Each refusal of issue 12 item 7, over real HTTP against a real store: refused, and nothing issued.
import { afterEach, describe, expect, it } from 'vitest';
import {
  bearer,
  CUSTOMER_TOOLS,
  call,
  connectClient,
  INITIALIZE,
  MCP_HEADERS,
  raw,
  startHttpPerTest,
  waitFor,
} from '../helpers/http.js';
import {
  authorizeUrl,
  type DocumentHost,
  openConsent,
  pkcePair,
  registerClient,
  revokeRequest,
  startDocumentHost,
  submitConsent,
  tokenRequest,
} from '../helpers/oauth.js';

const start = startHttpPerTest();
const REDIRECT = 'http://127.0.0.1:9/callback';

let documents: DocumentHost | undefined;
afterEach(async () => {
  await documents?.close();
  documents = undefined;
});

type Fixture = Awaited<ReturnType<typeof start>>;

async function server(overrides = {}): Promise<Fixture & { origin: string }> {
  const http = await start(overrides);
  await http.store.oauth.setHostRule('127.0.0.1', 'agents', Date.now());
  return Object.assign(http, { origin: new URL(http.url).origin });
}

async function publicClient(http: Fixture & { origin: string }, redirect = REDIRECT): Promise<string> {
  const registered = await registerClient(http.origin, {
    client_name: 'refusal test',
    redirect_uris: [redirect],
    token_endpoint_auth_method: 'none',
  });
  expect(registered.status).toBe(201);
  return registered.body.client_id as string;
}

/** Runs authorize + consent by hand; returns the code, the verifier and the redirect. */
async function authorize(
  http: Fixture & { origin: string },
  clientId: string,
  params: Record<string, string | undefined> = {},
) {
  const pkce = pkcePair();
  const form = await openConsent(
    authorizeUrl(http.origin, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      state: 'st-1',
      resource: http.url,
      ...params,
    }),
  );
  expect(form.status, form.html).toBe(200);
  const answer = await submitConsent(http.origin, form, 'allow');
  expect(answer.status).toBe(303);
  const code = answer.location?.searchParams.get('code') as string;
  expect(code).toMatch(/^slc_/);
  return { code, verifier: pkce.verifier, location: answer.location as URL };
}

function exchange(
  http: { origin: string; url: string },
  clientId: string,
  code: string,
  verifier: string,
  extra: Record<string, string> = {},
) {
  return tokenRequest(http.origin, {
    grant_type: 'authorization_code',
    client_id: clientId,
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT,
    resource: http.url,
    ...extra,
  });
}

async function mcpStatus(url: string, token: string): Promise<number> {
  return (await raw(url, { headers: { ...MCP_HEADERS, ...bearer(token) }, body: INITIALIZE })).status;
}

describe('OAuth refusals', () => {
  it('refuses a wrong PKCE verifier, and the code still works with the right one', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const { code, verifier } = await authorize(http, clientId);
    const wrong = await exchange(http, clientId, code, pkcePair().verifier);
    expect(wrong.status).toBe(400);
    expect(wrong.body).toMatchObject({ error: 'invalid_grant' });
    expect(wrong.body.error_description).toMatch(/code_verifier/);
    expect(await http.store.oauth.listGrants()).toHaveLength(0);
    expect((await exchange(http, clientId, code, verifier)).status).toBe(200);
  });

  it('refuses a reused code and revokes the grant the code made', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const { code, verifier } = await authorize(http, clientId);
    const first = await exchange(http, clientId, code, verifier);
    expect(first.status).toBe(200);
    expect(await mcpStatus(http.url, first.body.access_token as string)).toBe(200);
    const again = await exchange(http, clientId, code, verifier);
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'invalid_grant' });
    const [grant] = await http.store.oauth.listGrants();
    expect(grant).toMatchObject({ revoke_reason: 'authorization code reused' });
    await waitFor(async () => (await mcpStatus(http.url, first.body.access_token as string)) === 401);
  });

  it('refuses a reused refresh token and revokes the whole grant, new tokens included', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const { code, verifier } = await authorize(http, clientId);
    const issued = await exchange(http, clientId, code, verifier);
    const rotated = await tokenRequest(http.origin, {
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: issued.body.refresh_token as string,
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.refresh_token).not.toBe(issued.body.refresh_token);
    expect(await mcpStatus(http.url, rotated.body.access_token as string)).toBe(200);

    const replay = await tokenRequest(http.origin, {
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: issued.body.refresh_token as string,
    });
    expect(replay.status).toBe(400);
    expect(replay.body).toMatchObject({ error: 'invalid_grant' });
    const [grant] = await http.store.oauth.listGrants();
    expect(grant?.revoked_at).not.toBeNull();
    expect(grant?.revoke_reason).toBe('refresh token reused');
    // The thief's replay also ends the legitimate holder's tokens: they must sign in again.
    await waitFor(async () => (await mcpStatus(http.url, rotated.body.access_token as string)) === 401);
    const later = await tokenRequest(http.origin, {
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: rotated.body.refresh_token as string,
    });
    expect(later.body).toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses a resource other than this server, at authorization and at the token endpoint', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const pkce = pkcePair();
    const page = await raw(http.origin, {
      method: 'GET',
      path: `/authorize?${new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: pkce.challenge, code_challenge_method: 'S256', state: 's', resource: 'https://elsewhere.example/mcp' })}`,
    });
    expect(page.status).toBe(302);
    const location = new URL(page.headers.location as string);
    expect(location.searchParams.get('error')).toBe('invalid_target');
    expect(location.searchParams.get('iss')).toBe(http.origin);
    expect(location.searchParams.get('state')).toBe('s');
    expect(location.searchParams.get('code')).toBeNull();

    const { code, verifier } = await authorize(http, clientId);
    const other = await exchange(http, clientId, code, verifier, {
      resource: 'https://elsewhere.example/mcp',
    });
    expect(other.body).toMatchObject({ error: 'invalid_target' });
  });

  it('refuses a token issued for another server URL sharing the same database', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const { code, verifier } = await authorize(http, clientId);
    const issued = await exchange(http, clientId, code, verifier);
    expect(await mcpStatus(http.url, issued.body.access_token as string)).toBe(200);
    // A second server on the same SQLite file, published at another URL: the grant is not for it.
    const { serveHttp } = await import('../../src/transports/http.js');
    const { defaultHttpOptions } = await import('../helpers/http.js');
    const { silentLogger } = await import('../../src/logger.js');
    const other = await serveHttp(
      http.store,
      defaultHttpOptions({ publicUrl: 'http://localhost:1' }),
      silentLogger,
    );
    try {
      const refused = await raw(other.url, {
        headers: { ...MCP_HEADERS, ...bearer(issued.body.access_token as string) },
        body: INITIALIZE,
      });
      expect(refused.status).toBe(401);
      expect(refused.headers['www-authenticate']).toContain(
        'resource_metadata="http://localhost:1/.well-known/oauth-protected-resource/mcp"',
      );
    } finally {
      await other.close();
    }
  });

  it('refuses an unregistered redirect URI with a page, never a redirect', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const form = await openConsent(
      authorizeUrl(http.origin, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: 'http://127.0.0.1:9/elsewhere',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(form.status).toBe(400);
    expect(form.headers.location).toBeUndefined();
    expect(form.html).toMatch(/did not register/);
  });

  it('refuses a CIMD document whose client_id is not its own URL', async () => {
    documents = await startDocumentHost();
    const http = await server({ clientMetadataCa: documents.ca });
    const url = documents.serve('/impostor.json', {
      client_id: 'https://claude.ai/oauth/claude-code-client-metadata',
      redirect_uris: [REDIRECT],
    });
    const form = await openConsent(
      authorizeUrl(http.origin, {
        response_type: 'code',
        client_id: url,
        redirect_uri: REDIRECT,
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(form.status).toBe(400);
    expect(form.html).toMatch(/must name its own URL/);
    expect(await http.store.oauth.getClient(url)).toBeUndefined();
  });

  it('refuses CIMD URLs on private addresses, and loopback unless the server itself is on loopback', async () => {
    documents = await startDocumentHost();
    const http = await server({ clientMetadataCa: documents.ca });
    const privateUrl = 'https://10.20.30.40/client.json';
    const refused = await openConsent(
      authorizeUrl(http.origin, {
        response_type: 'code',
        client_id: privateUrl,
        redirect_uri: REDIRECT,
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(refused.status).toBe(400);
    expect(refused.html).toMatch(/private or reserved address/);

    // A server published at a public URL (behind a proxy) fetches nothing from loopback, not even its own host.
    const url = documents.serve('/client.json', {
      client_id: `${documents.origin}/client.json`,
      redirect_uris: [REDIRECT],
    });
    const published = await server({
      clientMetadataCa: documents.ca,
      publicUrl: 'https://shop.example.test',
    });
    const loopback = await openConsent(
      authorizeUrl(published.origin, {
        response_type: 'code',
        client_id: url,
        redirect_uri: REDIRECT,
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(loopback.status).toBe(400);
    expect(loopback.html).toMatch(/loopback address/);
    expect(documents.requests).toEqual([]);
  });

  it('refuses an oversized CIMD document', async () => {
    documents = await startDocumentHost();
    const http = await server({ clientMetadataCa: documents.ca });
    const url = `${documents.origin}/big.json`;
    documents.serve('/big.json', { client_id: url, redirect_uris: [REDIRECT], padding: 'x'.repeat(20_000) });
    const form = await openConsent(
      authorizeUrl(http.origin, {
        response_type: 'code',
        client_id: url,
        redirect_uri: REDIRECT,
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(form.status).toBe(400);
    expect(form.html).toMatch(/larger than 16384 bytes/);
  });

  it('refuses a consent post without its CSRF token, or with another browser cookie', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const form = await openConsent(
      authorizeUrl(http.origin, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
        resource: http.url,
      }),
    );
    expect(form.status).toBe(200);
    expect(form.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(form.cookie).toMatch(/^stocklock_csrf=/);
    const { csrf_token: _dropped, ...withoutToken } = form.fields;
    const missing = await submitConsent(http.origin, { ...form, fields: withoutToken }, 'allow');
    expect(missing.status).toBe(403);
    expect(missing.location).toBeUndefined();
    const noCookie = await submitConsent(http.origin, form, 'allow', {}, { cookie: null });
    expect(noCookie.status).toBe(403);
    const otherCookie = await submitConsent(
      http.origin,
      form,
      'allow',
      {},
      { cookie: 'stocklock_csrf=forged' },
    );
    expect(otherCookie.status).toBe(403);
    // Nothing was issued by any of them.
    expect(await http.store.oauth.listGrants()).toHaveLength(0);
  });

  it('refuses admin tools to a customer-scope token, and a customer approval of an admin request stays customer', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const { code, verifier } = await authorize(http, clientId, { scope: 'stock:shop stock:admin' });
    const issued = await exchange(http, clientId, code, verifier);
    expect(issued.body.scope).toBe('stock:shop');
    const client = await connectClient(http.url, issued.body.access_token as string);
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(CUSTOMER_TOOLS);
    // restock is unknown on a customer grant: JSON-RPC -32602.
    await expect(call(client, 'restock', { sku: 'MUG-WHT', quantity: 5 })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringMatching(/not found/i),
    });
    expect((await http.store.stockLevels(['MUG-WHT']))[0]?.on_hand).toBe(60);
    await client.close();
  });

  it('refuses a wrong admin token on the consent page and issues nothing', async () => {
    const http = await server();
    const customerToken = await http.token('web', false);
    const clientId = await publicClient(http);
    const form = await openConsent(
      authorizeUrl(http.origin, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
        scope: 'stock:admin',
      }),
    );
    const answer = await submitConsent(http.origin, form, 'allow_admin', { admin_token: customerToken });
    expect(answer.status).toBe(401);
    expect(answer.html).toMatch(/not a live admin token/);
    expect(answer.html).not.toContain(customerToken);
  });

  it('sends a 401 with resource_metadata and scope on every unauthenticated MCP request', async () => {
    const http = await server();
    const none = await raw(http.url, { headers: MCP_HEADERS, body: INITIALIZE });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe(
      `Bearer realm="stocklock", resource_metadata="${http.origin}/.well-known/oauth-protected-resource/mcp", scope="stock:shop"`,
    );
    const bad = await raw(http.url, {
      headers: { ...MCP_HEADERS, ...bearer('sla_forged') },
      body: INITIALIZE,
    });
    expect(bad.headers['www-authenticate']).toMatch(
      /^Bearer realm="stocklock", resource_metadata="[^"]+", scope="stock:shop", error="invalid_token"$/,
    );
  });
});

describe('token revocation (RFC 7009)', () => {
  it('a client revoking its refresh token ends the grant: both tokens stop working', async () => {
    const http = await server();
    const metadata = await raw(http.url, { method: 'GET', path: '/.well-known/oauth-authorization-server' });
    expect(JSON.parse(metadata.text)).toMatchObject({ revocation_endpoint: `${http.origin}/revoke` });
    const clientId = await publicClient(http);
    const { code, verifier } = await authorize(http, clientId);
    const issued = await exchange(http, clientId, code, verifier);
    expect(await mcpStatus(http.url, issued.body.access_token as string)).toBe(200);

    const revoked = await revokeRequest(http.origin, {
      client_id: clientId,
      token: issued.body.refresh_token as string,
      token_type_hint: 'refresh_token',
    });
    expect(revoked).toEqual({ status: 200, body: undefined });
    const [grant] = await http.store.oauth.listGrants();
    expect(grant?.revoke_reason).toBe('revoked by the client');
    await waitFor(async () => (await mcpStatus(http.url, issued.body.access_token as string)) === 401);
    const refreshed = await tokenRequest(http.origin, {
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: issued.body.refresh_token as string,
    });
    expect(refreshed.body).toMatchObject({ error: 'invalid_grant' });
    // Revoking again, or revoking a token that never existed, is still 200 (§2.2).
    expect(
      (await revokeRequest(http.origin, { client_id: clientId, token: issued.body.refresh_token as string }))
        .status,
    ).toBe(200);
    expect((await revokeRequest(http.origin, { client_id: clientId, token: 'slr_nothing' })).status).toBe(
      200,
    );
  });

  it('revoking by access token ends the grant too; another client cannot revoke it; a missing token is refused', async () => {
    const http = await server();
    const clientId = await publicClient(http);
    const { code, verifier } = await authorize(http, clientId);
    const issued = await exchange(http, clientId, code, verifier);

    const stranger = await publicClient(http);
    const foreign = await revokeRequest(http.origin, {
      client_id: stranger,
      token: issued.body.access_token as string,
    });
    expect(foreign.status).toBe(200); // answered like an unknown token, and nothing revoked
    expect((await http.store.oauth.listGrants())[0]?.revoked_at).toBeNull();
    expect(await mcpStatus(http.url, issued.body.access_token as string)).toBe(200);

    const missing = await revokeRequest(http.origin, { client_id: clientId });
    expect(missing).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    const unknownClient = await revokeRequest(http.origin, {
      client_id: 'cli_unknown',
      token: issued.body.access_token as string,
    });
    expect(unknownClient).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect((await http.store.oauth.listGrants())[0]?.revoked_at).toBeNull();

    const own = await revokeRequest(http.origin, {
      client_id: clientId,
      token: issued.body.access_token as string,
    });
    expect(own.status).toBe(200);
    expect((await http.store.oauth.listGrants())[0]?.revoke_reason).toBe('revoked by the client');
    await waitFor(async () => (await mcpStatus(http.url, issued.body.access_token as string)) === 401);
  });
});
