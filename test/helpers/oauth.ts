// OAuth test fixtures: the SDK's own OAuth client provider, a consent-page "browser" over raw HTTP, and a local CIMD host.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import {
  createServer as createHttpsServer,
  type Server as HttpsServer,
  request as httpsRequest,
} from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { auth, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import { raw } from './http.js';
import { tempDir } from './temp.js';

/** An OAuthClientProvider that keeps everything in memory and records where it was sent to sign in. */
export class MemoryOAuthProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier?: string;
  authorizationUrl?: URL;
  lastState?: string;
  clientMetadataUrl?: string;

  constructor(
    readonly redirectUrl: string,
    readonly clientMetadata: OAuthClientMetadata,
    clientMetadataUrl?: string,
  ) {
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
  }

  state(): string {
    this.lastState = randomBytes(16).toString('base64url');
    return this.lastState;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery') {
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.saved = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
  }
}

export function publicClientMetadata(
  redirectUrl: string,
  name = 'stocklock test agent',
): OAuthClientMetadata {
  return {
    client_name: name,
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

export interface ConsentForm {
  status: number;
  html: string;
  cookie?: string;
  /** The hidden fields of the first form, csrf_token included. */
  fields: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
}

/** Opens an authorization URL the way a browser would: GET, keep the cookie, read the form. */
export async function openConsent(authorizationUrl: URL | string): Promise<ConsentForm> {
  const url = new URL(authorizationUrl);
  const response = await raw(url.href, { method: 'GET', path: `${url.pathname}${url.search}` });
  const setCookie = response.headers['set-cookie']?.[0];
  const fields: Record<string, string> = {};
  const firstForm = /<form[\s\S]*?<\/form>/.exec(response.text)?.[0] ?? '';
  for (const match of firstForm.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields[match[1] as string] = unescapeHtml(match[2] as string);
  }
  return {
    status: response.status,
    html: response.text,
    ...(setCookie ? { cookie: setCookie.split(';')[0] as string } : {}),
    fields,
    headers: response.headers,
  };
}

function unescapeHtml(text: string): string {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

export interface Decision {
  status: number;
  location?: URL;
  html: string;
}

/** Submits the consent form (as the browser would after a click). */
export async function submitConsent(
  serverUrl: string,
  form: ConsentForm,
  decision: 'allow' | 'deny' | 'allow_admin',
  extra: Record<string, string> = {},
  options: { cookie?: string | null } = {},
): Promise<Decision> {
  const body = new URLSearchParams({ ...form.fields, decision, ...extra }).toString();
  const cookie = options.cookie === null ? undefined : (options.cookie ?? form.cookie);
  const response = await raw(serverUrl, {
    method: 'POST',
    path: '/authorize',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      ...(cookie ? { Cookie: cookie } : {}),
    },
    body,
  });
  const location = response.headers.location;
  return {
    status: response.status,
    html: response.text,
    ...(location ? { location: new URL(location) } : {}),
  };
}

/** Click "Allow" on the consent page the provider was sent to; returns the redirect carrying the code. */
export async function approve(
  provider: MemoryOAuthProvider,
  decision: 'allow' | 'allow_admin' = 'allow',
  extra: Record<string, string> = {},
): Promise<URL> {
  if (!provider.authorizationUrl) throw new Error('the provider was never sent to sign in');
  const form = await openConsent(provider.authorizationUrl);
  if (form.status !== 200) throw new Error(`consent page answered ${form.status}: ${form.html}`);
  const answer = await submitConsent(provider.authorizationUrl.origin, form, decision, extra);
  if (answer.status !== 303 || !answer.location)
    throw new Error(`consent answered ${answer.status}: ${answer.html}`);
  return answer.location;
}

/**
 * The whole flow with the SDK's auth(): discovery, registration (DCR or CIMD), consent, code exchange.
 * Returns the redirect the browser was sent back with.
 */
export async function signIn(
  provider: MemoryOAuthProvider,
  mcpUrl: string,
  decision: 'allow' | 'allow_admin' = 'allow',
  extra: Record<string, string> = {},
): Promise<URL> {
  const first = await auth(provider, { serverUrl: mcpUrl });
  if (first !== 'REDIRECT') throw new Error(`expected a redirect to sign in, got ${first}`);
  const back = await approve(provider, decision, extra);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code in ${back.href}`);
  if (back.searchParams.get('state') !== provider.lastState) throw new Error('state did not round-trip');
  const done = await auth(provider, { serverUrl: mcpUrl, authorizationCode: code });
  if (done !== 'AUTHORIZED') throw new Error(`expected AUTHORIZED, got ${done}`);
  return back;
}

/** An MCP client whose transport authenticates through the provider (and refreshes on 401). */
export async function connectWithOAuth(mcpUrl: string, provider: OAuthClientProvider): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
    authProvider: provider,
    reconnectionOptions: {
      initialReconnectionDelay: 50,
      maxReconnectionDelay: 100,
      reconnectionDelayGrowFactor: 1,
      maxRetries: 0,
    },
  });
  const client = new Client({ name: 'stocklock-oauth-test', version: '0.0.0' });
  client.onerror = () => undefined;
  await client.connect(transport);
  return client;
}

/** A form-encoded POST, as OAuth's token and revocation endpoints take. */
function postForm(
  serverUrl: string,
  path: string,
  params: Record<string, string>,
  headers: Record<string, string>,
) {
  return raw(serverUrl, {
    method: 'POST',
    path,
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
}

/** A token request by hand. */
export async function tokenRequest(
  serverUrl: string,
  params: Record<string, string>,
  headers: Record<string, string> = {},
) {
  const response = await postForm(serverUrl, '/token', params, headers);
  return {
    status: response.status,
    body: JSON.parse(response.text) as Record<string, string>,
    headers: response.headers,
  };
}

/** POST /revoke (RFC 7009): a 200 has an empty body, a refusal a JSON error. */
export async function revokeRequest(serverUrl: string, params: Record<string, string>) {
  const response = await postForm(serverUrl, '/revoke', params, {});
  return {
    status: response.status,
    body: response.text ? (JSON.parse(response.text) as Record<string, string>) : undefined,
  };
}

export async function registerClient(serverUrl: string, metadata: Record<string, unknown>) {
  const response = await raw(serverUrl, {
    method: 'POST',
    path: '/register',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(metadata),
  });
  return { status: response.status, body: JSON.parse(response.text) as Record<string, unknown> };
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** The authorization URL a host would send the browser to, built by hand. */
export function authorizeUrl(serverUrl: string, params: Record<string, string | undefined>): URL {
  const url = new URL('/authorize', serverUrl);
  for (const [key, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.set(key, value);
  return url;
}

/** A local https server that serves client metadata documents, with a self-signed certificate for 127.0.0.1. */
export interface DocumentHost {
  origin: string;
  ca: string;
  /** Serves `body` (an object is sent as JSON) at `path`. */
  serve(path: string, body: unknown, status?: number, headers?: Record<string, string>): string;
  requests: string[];
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl in `dir`; returns the file paths. */
export function selfSignedCertificate(dir: string): { key: string; cert: string } {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  return { key, cert };
}

/** One https request trusting `ca`, with full control of the headers. */
export function httpsRaw(
  url: string,
  ca: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method: options.method ?? 'GET', headers: options.headers, ca, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer from ${url} within 15 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function startDocumentHost(): Promise<DocumentHost> {
  const tmp = tempDir('stocklock-cimd-');
  const { key, cert } = selfSignedCertificate(tmp.dir);
  const routes = new Map<string, { status: number; body: string; headers: Record<string, string> }>();
  const requests: string[] = [];
  const server: HttpsServer = createHttpsServer(
    { key: readFileSync(key), cert: readFileSync(cert) },
    (req, res) => {
      requests.push(req.url ?? '');
      const route = routes.get(req.url ?? '');
      if (!route) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(route.status, { 'Content-Type': 'application/json', ...route.headers }).end(route.body);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ca = readFileSync(cert, 'utf8');
  return {
    origin,
    ca,
    requests,
    serve(path, body, status = 200, headers = {}) {
      routes.set(path, { status, body: typeof body === 'string' ? body : JSON.stringify(body), headers });
      return `${origin}${path}`;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      tmp.remove();
    },
  };
}

/**
 * A grant's access token got by hand, as a host gets one: registers a public client for `redirect`, opens the
 * consent page, clicks Allow (one consent post, counted by the consent rate limit) and exchanges the code.
 */
export async function grantByHand(
  mcpUrl: string,
  redirect = 'https://claude.ai/api/mcp/auth_callback',
): Promise<string> {
  const origin = new URL(mcpUrl).origin;
  const registered = await registerClient(origin, {
    client_name: 'Claude',
    redirect_uris: [redirect],
    token_endpoint_auth_method: 'none',
  });
  const clientId = registered.body.client_id as string;
  const pkce = pkcePair();
  const form = await openConsent(
    authorizeUrl(origin, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirect,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      resource: mcpUrl,
    }),
  );
  const answer = await submitConsent(origin, form, 'allow');
  const code = answer.location?.searchParams.get('code');
  if (!code) throw new Error(`consent answered ${answer.status}: ${answer.html.slice(0, 200)}`);
  const tokens = await tokenRequest(origin, {
    grant_type: 'authorization_code',
    client_id: clientId,
    code,
    code_verifier: pkce.verifier,
    redirect_uri: redirect,
  });
  if (tokens.status !== 200) throw new Error(`token answered ${tokens.status}`);
  return tokens.body.access_token as string;
}
