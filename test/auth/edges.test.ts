// The OAuth edges an attacker probes: look-alike redirect schemes, error redirects to unmapped hosts,
// malformed client credentials, plain-http public URLs, IPv6 forms of private addresses, and port probes
// through the metadata-document fetcher. Real HTTP against a real SQLite store.
import { Buffer } from 'node:buffer';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { refusedAddress } from '../../src/auth/client-metadata.js';
import { silentLogger } from '../../src/logger.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import type { SqliteStore } from '../../src/storage/sqlite/store.js';
import { serveHttp } from '../../src/transports/http.js';
import { defaultHttpOptions, freePort, raw, startHttpPerTest } from '../helpers/http.js';
import {
  authorizeUrl,
  type DocumentHost,
  openConsent,
  pkcePair,
  registerClient,
  startDocumentHost,
  tokenRequest,
} from '../helpers/oauth.js';

const start = startHttpPerTest();
const REDIRECT = 'http://127.0.0.1:9/callback';

let documents: DocumentHost | undefined;
afterEach(async () => {
  await documents?.close();
  documents = undefined;
});

async function server(overrides = {}, logger = silentLogger) {
  const http = await start(overrides, undefined, logger);
  await http.store.oauth.setHostRule('127.0.0.1', 'agents', Date.now());
  return Object.assign(http, { origin: new URL(http.url).origin });
}

function authorizeParams(clientId: string, redirect: string, extra: Record<string, string> = {}) {
  return {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirect,
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
    state: 'st',
    ...extra,
  };
}

describe('redirect URIs', () => {
  it.each([
    'evilapp://claude.ai/api/mcp/auth_callback',
    'intent://claude.ai/api/mcp/auth_callback#Intent;scheme=evilapp;end',
    'intent://claude.ai/callback',
    'cursor://anysphere.cursor-retrieval/oauth/callback',
    'http://claude.ai/api/mcp/auth_callback',
  ])('refuses %s at registration, and stores nothing', async (uri) => {
    const http = await server();
    const refused = await registerClient(http.origin, {
      client_name: 'Claude',
      redirect_uris: ['https://claude.ai/api/mcp/auth_callback', uri],
      token_endpoint_auth_method: 'none',
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_client_metadata');
    expect(refused.body.error_description).toMatch(/https|fragment/);
    const clients = new Database(http.dbPath, { readonly: true });
    try {
      expect(clients.prepare('SELECT count(*) AS n FROM oauth_clients').get()).toEqual({ n: 0 });
    } finally {
      clients.close();
    }
  });

  it('refuses a metadata document listing a private-use scheme, and caches nothing', async () => {
    documents = await startDocumentHost();
    const http = await server({ clientMetadataCa: documents.ca });
    const url = documents.serve('/evil.json', {
      client_id: `${documents.origin}/evil.json`,
      client_name: 'Claude',
      redirect_uris: ['evilapp://claude.ai/api/mcp/auth_callback'],
    });
    const page = await openConsent(
      authorizeUrl(http.origin, authorizeParams(url, 'evilapp://claude.ai/api/mcp/auth_callback')),
    );
    expect(page.status).toBe(400);
    expect(page.headers.location).toBeUndefined();
    expect(page.html).toMatch(/only https \(or http to loopback\)/);
    expect(await http.store.oauth.getClient(url)).toBeUndefined();
  });

  it('refuses a registration stored before the rule instead of returning to its scheme', async () => {
    const http = await server();
    await http.store.oauth.saveClient({
      client_id: 'cli_old',
      kind: 'dcr',
      metadata: JSON.stringify({
        client_name: 'Claude',
        redirect_uris: ['evilapp://claude.ai/cb'],
        token_endpoint_auth_method: 'none',
      }),
      secret_hash: null,
      created_at: Date.now(),
      fetched_at: Date.now(),
    });
    await http.store.oauth.setHostRule('claude.ai', 'claude', Date.now());
    const page = await openConsent(
      authorizeUrl(http.origin, authorizeParams('cli_old', 'evilapp://claude.ai/cb')),
    );
    expect(page.status).toBe(400);
    expect(page.headers.location).toBeUndefined();
    expect(page.html).not.toContain('name="decision"');
  });

  it('shows the exact origin the browser returns to, port included', async () => {
    const http = await server();
    const redirect = 'http://127.0.0.1:4567/callback';
    const registered = await registerClient(http.origin, {
      client_name: 'Claude',
      redirect_uris: [redirect],
      token_endpoint_auth_method: 'none',
    });
    const form = await openConsent(
      authorizeUrl(http.origin, authorizeParams(registered.body.client_id as string, redirect)),
    );
    expect(form.status).toBe(200);
    expect(form.html).toContain('<dt>Returns to</dt><dd>http://127.0.0.1:4567</dd>');
  });
});

describe('errors never redirect to a host the map does not allow', () => {
  it.each([
    ['response_type=token', { response_type: 'token' }],
    ['no PKCE', { code_challenge_method: 'plain' }],
    ['an unknown scope', { scope: 'everything' }],
    ['another resource', { resource: 'https://elsewhere.example/mcp' }],
  ])('%s with an unmapped redirect host gets the page, not a redirect', async (_name, extra) => {
    const http = await server();
    const redirect = 'https://evil.example/landing';
    const registered = await registerClient(http.origin, {
      client_name: 'lure',
      redirect_uris: [redirect],
      token_endpoint_auth_method: 'none',
    });
    const clientId = registered.body.client_id as string;
    const page = await openConsent(authorizeUrl(http.origin, authorizeParams(clientId, redirect, extra)));
    expect(page.status).toBe(403);
    expect(page.headers.location).toBeUndefined();
    expect(page.html).toContain('stocklock oauth allow evil.example --channel NAME');

    // A mapped host still gets the error redirect the protocol asks for.
    await http.store.oauth.setHostRule('evil.example', 'web', Date.now());
    const mapped = await openConsent(authorizeUrl(http.origin, authorizeParams(clientId, redirect, extra)));
    expect(mapped.status).toBe(302);
    expect(new URL(mapped.headers.location as string).searchParams.get('error')).toBeTruthy();
  });
});

describe('client credentials at the token endpoint', () => {
  it.each([
    ['a broken percent escape', Buffer.from('%E0%A4%A:secret').toString('base64')],
    ['a lone percent sign', Buffer.from('cli_x:%').toString('base64')],
    ['no colon', Buffer.from('cli_x').toString('base64')],
    ['bytes that are not base64', '!!!%%%'],
  ])('answers %s with 401 invalid_client, and logs no stack', async (_name, credentials) => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const http = await server({}, logger);
    const answer = await tokenRequest(
      http.origin,
      { grant_type: 'authorization_code', code: 'slc_x', code_verifier: 'v'.repeat(43) },
      { Authorization: `Basic ${credentials}` },
    );
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
    expect(lines.join('\n')).not.toMatch(/"stack"|URIError|\bat .*\.js:\d+/);
  });
});

describe('--public-url', () => {
  it('refuses plain http beyond loopback, with the flag to fix', async () => {
    await expect(
      serveHttp(
        {} as SqliteStore,
        defaultHttpOptions({
          host: '0.0.0.0',
          allowedHosts: ['shop.example.com'],
          publicUrl: 'http://shop.example.com',
        }),
        silentLogger,
      ),
    ).rejects.toThrow(/--public-url http:\/\/shop\.example\.com is plain http .*https/);
  });

  it('accepts http while the server binds to loopback only (development, or a proxy on this machine)', async () => {
    const http = await server({ publicUrl: 'http://localhost:1' });
    expect((await raw(http.url, { method: 'GET', path: '/healthz' })).status).toBe(200);
  });
});

describe('addresses a metadata document may not be fetched from', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::7f00:1', 'loopback'],
    ['::ffff:0:7f00:1', 'loopback'],
    ['::ffff:0:a00:1', 'private'],
    ['::a00:1', 'private'],
    ['::ffff:10.0.0.1', 'private'],
    ['2002:7f00:1::1', 'loopback'],
    ['2002:a00:1::', 'private'],
    ['2002:c0a8:101::1', 'private'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::10.1.2.3', 'private'],
    ['64:ff9b::169.254.169.254', 'private'],
    ['64:ff9b:1::8.8.8.8', 'private'],
    ['169.254.169.254', 'private'],
    ['100.64.0.1', 'private'],
    ['0.0.0.0', 'private'],
    ['::', 'private'],
    ['fd00::1', 'private'],
    ['fe80::1%eth0', 'private'],
    ['2001:db8::1', 'private'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'private'],
    ['255.255.255.255', 'private'],
  ])('%s is refused (%s)', (address, kind) => {
    const refused = refusedAddress(address, false);
    expect(refused).toMatch(kind === 'loopback' ? /loopback address/ : /private or reserved address/);
  });

  it.each([
    '93.184.215.14',
    '2606:4700:4700::1111',
    '::ffff:93.184.215.14',
    '64:ff9b::93.184.215.14',
    '2002:5db8:d70e::1',
  ])('%s is public', (address) => {
    expect(refusedAddress(address, false)).toBeUndefined();
  });

  it('allows loopback for a development server only when reached directly, never by translation', () => {
    expect(refusedAddress('127.0.0.1', true)).toBeUndefined();
    expect(refusedAddress('::1', true)).toBeUndefined();
    expect(refusedAddress('::ffff:127.0.0.1', true)).toBeUndefined();
    expect(refusedAddress('64:ff9b::7f00:1', true)).toMatch(/loopback/);
    expect(refusedAddress('2002:7f00:1::1', true)).toMatch(/loopback/);
  });
});

describe('metadata document fetch failures', () => {
  it('reads the same on the page for a closed port and an open one that is not a document host', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const http = await server({}, logger);
    const closed = `https://127.0.0.1:${await freePort()}/client.json`;
    // The server's own port is open but speaks plain http, not TLS.
    const open = `https://127.0.0.1:${new URL(http.url).port}/client.json`;
    const pages = await Promise.all(
      [closed, open].map((clientId) =>
        openConsent(authorizeUrl(http.origin, authorizeParams(clientId, REDIRECT))),
      ),
    );
    for (const page of pages) expect(page.status).toBe(400);
    const [closedText, openText] = pages.map((page, i) =>
      page.html.replace([closed, open][i] as string, 'URL'),
    );
    expect(closedText).toBe(openText);
    expect(closedText).toMatch(/could not be fetched/);
    expect(closedText).not.toMatch(/ECONNREFUSED|EPROTO|wrong version|socket|SSL|TLS/i);
    // The detail still reaches the merchant's log.
    expect(lines.join('\n')).toMatch(/ECONNREFUSED/);
  });
});

describe('what a registration can make the database keep', () => {
  it('caps redirect URIs (10, 512 characters each), names and client_uri; a refusal quotes little', async () => {
    const http = await server();
    const uri = (i: number, length = 60) => `https://claude.ai/${String(i).padEnd(length - 18, 'x')}`;
    const register = (metadata: Record<string, unknown>) =>
      registerClient(http.origin, { token_endpoint_auth_method: 'none', ...metadata });
    const eleven = await register({ redirect_uris: Array.from({ length: 11 }, (_, i) => uri(i)) });
    expect(eleven.status).toBe(400);
    expect(eleven.body.error_description).toMatch(/at most 10/);
    const long = await register({ redirect_uris: [uri(1, 513)] });
    expect(long.status).toBe(400);
    expect(long.body.error_description).toMatch(/at most 512 characters/);
    const name = await register({ redirect_uris: [uri(1)], client_name: 'n'.repeat(201) });
    expect(name.status).toBe(400);
    const clientUri = await register({
      redirect_uris: [uri(1)],
      client_uri: `https://${'c'.repeat(600)}.example`,
    });
    expect(clientUri.status).toBe(400);

    // The largest registration accepted, with unknown fields dropped, stays a few kilobytes.
    const largest = await register({
      redirect_uris: Array.from({ length: 10 }, (_, i) => uri(i, 512)),
      client_name: 'n'.repeat(200),
      client_uri: `https://${'c'.repeat(480)}.example`,
      logo_uri: 'x'.repeat(4_000),
      extra: 'y'.repeat(1_000),
    });
    expect(largest.status).toBe(201);
    const stored = await http.store.oauth.getClient(largest.body.client_id as string);
    expect(stored?.metadata.length).toBeLessThan(6_000);
    expect(stored?.metadata).not.toContain('logo_uri');

    // A metadata-document client_id past the cap is refused without being fetched or quoted whole.
    const huge = `https://example.com/${'z'.repeat(5_000)}`;
    const page = await openConsent(authorizeUrl(http.origin, authorizeParams(huge, REDIRECT)));
    expect(page.status).toBe(400);
    expect(page.html).toMatch(/longer than 512 characters/);
    expect(page.html.length).toBeLessThan(3_000);
  });
});
