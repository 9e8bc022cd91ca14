// Authorization as the MCP revision of 2026-07-28 puts it: client ID metadata documents first, dynamic
// registration kept but marked deprecated, `application_type` accepted, `none` advertised beside the documents.

import { afterEach, describe, expect, it } from 'vitest';
import { Database } from '../../src/storage/sqlite/driver.js';
import { raw, startHttpPerTest } from '../helpers/http.js';
import {
  type DocumentHost,
  MemoryOAuthProvider,
  publicClientMetadata,
  registerClient,
  signIn,
  startDocumentHost,
} from '../helpers/oauth.js';

const start = startHttpPerTest();
const REDIRECT = 'http://127.0.0.1:9/callback';
/** 2026-07-28T00:00:00Z as an RFC 9745 Structured Field date. */
const DEPRECATED_AT = '@1785196800';

let documents: DocumentHost | undefined;
afterEach(async () => {
  await documents?.close();
  documents = undefined;
});

function clientCount(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM oauth_clients').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('authorization server metadata', () => {
  it('lists client ID metadata documents before the registration endpoint, with none among the token auth methods', async () => {
    const http = await start();
    const answer = await raw(http.url, { method: 'GET', path: '/.well-known/oauth-authorization-server' });
    expect(answer.status).toBe(200);
    const metadata = JSON.parse(answer.text) as Record<string, unknown>;
    expect(metadata.client_id_metadata_document_supported).toBe(true);
    const keys = Object.keys(metadata);
    expect(keys.indexOf('client_id_metadata_document_supported')).toBeGreaterThanOrEqual(0);
    expect(keys.indexOf('client_id_metadata_document_supported')).toBeLessThan(
      keys.indexOf('registration_endpoint'),
    );
    expect(metadata.registration_endpoint).toBe(`${new URL(http.url).origin}/register`);
    expect(metadata.token_endpoint_auth_methods_supported).toEqual([
      'none',
      'client_secret_post',
      'client_secret_basic',
    ]);
  });
});

describe('dynamic client registration, the deprecated path', () => {
  it('still registers, and says it is deprecated on every answer (RFC 9745)', async () => {
    const http = await start();
    const origin = new URL(http.url).origin;
    const registered = await raw(origin, {
      method: 'POST',
      path: '/register',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
    });
    expect(registered.status).toBe(201);
    expect(registered.headers.deprecation).toBe(DEPRECATED_AT);
    const refused = await raw(origin, {
      method: 'POST',
      path: '/register',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [] }),
    });
    expect(refused.status).toBe(400);
    expect(refused.headers.deprecation).toBe(DEPRECATED_AT);
  });

  it('accepts application_type native or web, stores and echoes it, and refuses any other value changing nothing', async () => {
    const http = await start();
    const origin = new URL(http.url).origin;
    const native = await registerClient(origin, {
      client_name: 'a desktop app',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    });
    expect(native.status).toBe(201);
    expect(native.body.application_type).toBe('native');
    const stored = await http.store.oauth.getClient(native.body.client_id as string);
    expect(JSON.parse(stored?.metadata ?? '{}')).toMatchObject({ application_type: 'native' });

    const web = await registerClient(origin, {
      redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
      token_endpoint_auth_method: 'none',
      application_type: 'web',
    });
    expect(web.status).toBe(201);
    expect(web.body.application_type).toBe('web');

    const before = clientCount(http.dbPath);
    for (const applicationType of ['desktop', 42, ['native']]) {
      const refused = await registerClient(origin, {
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        application_type: applicationType,
      });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_client_metadata');
      expect(refused.body.error_description).toMatch(/application_type .* use native or web/);
    }
    expect(clientCount(http.dbPath)).toBe(before);
  });
});

describe('client ID metadata documents, the first path', () => {
  it("the SDK client picks its metadata document over registration, and the document's application_type is kept", async () => {
    documents = await startDocumentHost();
    const http = await start({ clientMetadataCa: documents.ca });
    await http.store.oauth.setHostRule('127.0.0.1', 'agents', Date.now());
    const clientId = `${documents.origin}/oauth/native.json`;
    documents.serve('/oauth/native.json', {
      client_id: clientId,
      client_name: 'native CIMD agent',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    });
    const before = clientCount(http.dbPath);
    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT), clientId);
    await signIn(provider, http.url);
    expect(provider.client?.client_id).toBe(clientId);
    expect(provider.saved?.access_token).toBeTruthy();
    // Fetched, not registered: the only client row is the document's own.
    const stored = await http.store.oauth.getClient(clientId);
    expect(stored?.kind).toBe('cimd');
    expect(JSON.parse(stored?.metadata ?? '{}')).toMatchObject({ application_type: 'native' });
    expect(clientCount(http.dbPath)).toBe(before + 1);
  });
});
