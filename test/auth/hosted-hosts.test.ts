// ChatGPT- and Claude-shaped sign-ins with their real redirect URIs and quirks, and the host map through the CLI.

import { describe, expect, it } from 'vitest';
import { Database } from '../../src/storage/sqlite/driver.js';
import { runCliAsync } from '../helpers/cli.js';
import { call, connectClient, INITIALIZE, MCP_HEADERS, raw, startHttpPerTest } from '../helpers/http.js';
import {
  authorizeUrl,
  openConsent,
  pkcePair,
  registerClient,
  submitConsent,
  tokenRequest,
} from '../helpers/oauth.js';

const start = startHttpPerTest();

type Fixture = Awaited<ReturnType<typeof start>>;

/** What every host does first: probe /mcp, read the challenge, fetch both metadata documents. */
async function discover(http: Fixture) {
  const probe = await raw(http.url, { headers: MCP_HEADERS, body: INITIALIZE });
  expect(probe.status).toBe(401);
  const challenge = probe.headers['www-authenticate'] as string;
  const resourceMetadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)?.[1] as string;
  const scope = /scope="([^"]+)"/.exec(challenge)?.[1];
  const prmUrl = new URL(resourceMetadataUrl);
  const prm = (await raw(prmUrl.origin, { method: 'GET', path: prmUrl.pathname })).json() as Record<
    string,
    unknown
  >;
  const issuer = (prm.authorization_servers as string[])[0] as string;
  const asm = (
    await raw(issuer, { method: 'GET', path: '/.well-known/oauth-authorization-server' })
  ).json() as Record<string, unknown>;
  return { prm, asm, issuer, scope };
}

function cartChannels(dbPath: string): string[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare('SELECT channel FROM carts ORDER BY created_at').all() as { channel: string }[]).map(
      (r) => r.channel,
    );
  } finally {
    db.close();
  }
}

async function consentAndCode(issuer: string, params: Record<string, string | undefined>) {
  const pkce = pkcePair();
  const form = await openConsent(
    authorizeUrl(issuer, {
      ...params,
      response_type: 'code',
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
    }),
  );
  expect(form.status, form.html).toBe(200);
  const answer = await submitConsent(issuer, form, 'allow');
  expect(answer.status).toBe(303);
  return { form, location: answer.location as URL, verifier: pkce.verifier };
}

describe('hosted AI hosts', () => {
  it('ChatGPT: DCR with a per-connector redirect, all scopes asked, consent as channel chatgpt, then a reconnect without scope', async () => {
    const http = await start();
    const { prm, asm, issuer } = await discover(http);
    expect(prm).toMatchObject({ resource: http.url, scopes_supported: ['stock:shop', 'stock:admin'] });
    expect(asm).toMatchObject({
      issuer,
      code_challenge_methods_supported: ['S256'],
      client_id_metadata_document_supported: true,
      authorization_response_iss_parameter_supported: true,
      registration_endpoint: `${issuer}/register`,
    });
    expect(asm.token_endpoint_auth_methods_supported).toContain('none');

    const redirect = 'https://chatgpt.com/connector/oauth/Xy7Qp2LmNo4R';
    const registered = await registerClient(issuer, {
      client_name: 'ChatGPT',
      redirect_uris: [redirect, 'https://chatgpt.com/connector_platform_oauth_redirect'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    });
    expect(registered.status).toBe(201);
    // A confidential client's secret never expires: the SDK's 30-day default would strand the connector.
    expect(registered.body).toMatchObject({ client_secret_expires_at: 0 });
    const clientId = registered.body.client_id as string;
    const secret = registered.body.client_secret as string;
    expect(secret).toMatch(/^slcs_/);

    // ChatGPT asks for every scope the server lists; the shopper's one click grants shopping.
    const first = await consentAndCode(issuer, {
      client_id: clientId,
      redirect_uri: redirect,
      scope: 'stock:shop stock:admin',
      state: 'oauth_s_1',
      resource: http.url,
    });
    expect(first.form.html).toContain('ChatGPT');
    expect(first.form.html).toContain('Returns to</dt><dd>https://chatgpt.com</dd>');
    expect(first.form.html).toMatch(/Sells as channel<\/dt><dd>chatgpt/);
    expect(first.form.headers['content-security-policy']).toContain("form-action 'self' https://chatgpt.com");
    expect(first.location.origin + first.location.pathname).toBe(redirect);
    expect(first.location.searchParams.get('state')).toBe('oauth_s_1');
    expect(first.location.searchParams.get('iss')).toBe(issuer);

    const wrongSecret = await tokenRequest(issuer, {
      grant_type: 'authorization_code',
      client_id: clientId,
      client_secret: 'slcs_wrong',
      code: first.location.searchParams.get('code') as string,
      code_verifier: first.verifier,
      redirect_uri: redirect,
    });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error).toBe('invalid_client');
    const tokens = await tokenRequest(issuer, {
      grant_type: 'authorization_code',
      client_id: clientId,
      client_secret: secret,
      code: first.location.searchParams.get('code') as string,
      code_verifier: first.verifier,
      redirect_uri: redirect,
      resource: http.url,
    });
    expect(tokens.status).toBe(200);
    expect(tokens.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'stock:shop' });
    expect(tokens.headers['cache-control']).toBe('no-store');

    const client = await connectClient(http.url, tokens.body.access_token);
    expect((await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 })).isError).toBeFalsy();
    expect(cartChannels(http.dbPath)).toEqual(['chatgpt']);
    await client.close();

    // Disconnect and connect again: ChatGPT omits the scope, which means customer scope.
    const again = await consentAndCode(issuer, {
      client_id: clientId,
      redirect_uri: 'https://chatgpt.com/connector_platform_oauth_redirect',
      state: 'oauth_s_2',
      resource: http.url,
    });
    const second = await tokenRequest(issuer, {
      grant_type: 'authorization_code',
      client_id: clientId,
      client_secret: secret,
      code: again.location.searchParams.get('code') as string,
      code_verifier: again.verifier,
    });
    expect(second.body.scope).toBe('stock:shop');
  });

  it('Claude: DCR public client on claude.ai and claude.com, scope from the challenge, and 401 invalid_client to register again', async () => {
    const http = await start();
    const { issuer, scope } = await discover(http);
    expect(scope).toBe('stock:shop');

    // A client this server no longer knows (say, the database was restored): 401 invalid_client.
    const stale = await tokenRequest(issuer, {
      grant_type: 'refresh_token',
      client_id: 'cli_forgotten',
      refresh_token: 'slr_old',
    });
    expect(stale.status).toBe(401);
    expect(stale.body.error).toBe('invalid_client');

    for (const redirect of [
      'https://claude.ai/api/mcp/auth_callback',
      'https://claude.com/api/mcp/auth_callback',
    ]) {
      const registered = await registerClient(issuer, {
        client_name: 'Claude',
        redirect_uris: [redirect],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        scope,
      });
      expect(registered.status).toBe(201);
      expect(registered.body).not.toHaveProperty('client_secret');
      const clientId = registered.body.client_id as string;
      const flow = await consentAndCode(issuer, {
        client_id: clientId,
        redirect_uri: redirect,
        scope,
        state: 'claude-state',
        resource: http.url,
      });
      expect(flow.form.html).toMatch(/Sells as channel<\/dt><dd>claude/);
      const tokens = await tokenRequest(issuer, {
        grant_type: 'authorization_code',
        client_id: clientId,
        code: flow.location.searchParams.get('code') as string,
        code_verifier: flow.verifier,
        redirect_uri: redirect,
        resource: http.url,
      });
      expect(tokens.status).toBe(200);
      const refreshed = await tokenRequest(issuer, {
        grant_type: 'refresh_token',
        client_id: clientId,
        refresh_token: tokens.body.refresh_token as string,
        resource: http.url,
      });
      expect(refreshed.status).toBe(200);
      const client = await connectClient(http.url, refreshed.body.access_token);
      expect((await call(client, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 1 })).isError).toBeFalsy();
      await client.close();
    }
    expect(cartChannels(http.dbPath)).toEqual(['claude', 'claude']);
  });

  it('oauth list shows the presets; oauth deny refuses a preset with a page naming the command that allows it', async () => {
    const http = await start();
    const listed = await runCliAsync(['oauth', 'list', '--db', http.dbPath]);
    expect(listed.stdout).toBe(
      'chatgpt.com  channel chatgpt  (preset)\nclaude.ai  channel claude  (preset)\nclaude.com  channel claude  (preset)\n',
    );
    expect((await runCliAsync(['oauth', 'deny', 'claude.ai', '--db', http.dbPath])).status).toBe(0);
    expect(
      (
        await runCliAsync([
          'oauth',
          'allow',
          'shop-bot.example',
          '--channel',
          'telegram',
          '--db',
          http.dbPath,
        ])
      ).status,
    ).toBe(0);
    const after = await runCliAsync(['oauth', 'list', '--db', http.dbPath]);
    expect(after.stdout).toContain('claude.ai  denied  (preset, changed)');
    expect(after.stdout).toContain('shop-bot.example  channel telegram');
    const badHost = await runCliAsync([
      'oauth',
      'allow',
      'https://x.example/path',
      '--channel',
      'web',
      '--db',
      http.dbPath,
    ]);
    expect(badHost.status).toBe(1);
    expect(badHost.stderr).toMatch(/not a bare host name/);

    const registered = await registerClient(http.url, {
      client_name: 'Claude',
      redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
      token_endpoint_auth_method: 'none',
    });
    const page = await openConsent(
      authorizeUrl(new URL(http.url).origin, {
        response_type: 'code',
        client_id: registered.body.client_id as string,
        redirect_uri: 'https://claude.ai/api/mcp/auth_callback',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(page.status).toBe(403);
    expect(page.html).toContain('stocklock oauth allow claude.ai --channel NAME');
    expect(page.html).toMatch(/merchant has denied/);

    // A host nobody mapped gets the same page.
    const unknown = await registerClient(http.url, {
      redirect_uris: ['https://agent.example.net/cb'],
      token_endpoint_auth_method: 'none',
    });
    const unmapped = await openConsent(
      authorizeUrl(new URL(http.url).origin, {
        response_type: 'code',
        client_id: unknown.body.client_id as string,
        redirect_uri: 'https://agent.example.net/cb',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    expect(unmapped.status).toBe(403);
    expect(unmapped.html).toContain('stocklock oauth allow agent.example.net --channel NAME');
  });
});
