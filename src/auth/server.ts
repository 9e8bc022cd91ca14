// stocklock as an OAuth 2.1 authorization server and protected resource (MCP authorization, 2025-11-25).
/*
 * Decisions, each the rule plus its reason (docs/decisions.md has the long form):
 *
 * - Our own handlers, not the SDK's mcpAuthRouter: its token endpoint compares client secrets in plain
 *   text (we store hashes), answers invalid_client with 400 (Claude registers again only on 401), has no
 *   CIMD and no `iss`, and rate-limits per IP in memory (every ChatGPT user arrives from OpenAI's few
 *   addresses, and a pool would not share the counts). SDK v2 also freezes those helpers.
 * - Issuer and resource come from --public-url (an origin); the resource is `${issuer}/mcp`.
 * - Authorization code + PKCE S256 only; exact redirect URI match, except the port of a loopback IP
 *   redirect (RFC 8252 §7.3, OAuth 2.1 §8.4.2), which native apps pick at run time.
 * - `resource` (RFC 8707): when sent it must be this server's MCP URL; when omitted the grant is bound to
 *   it anyway (this server protects one resource). Tokens are accepted only by the resource they name.
 * - Scopes stock:shop and stock:admin; an omitted scope is stock:shop. A request for admin can still be
 *   allowed as shop only with one click; admin needs an admin token typed on the consent page.
 * - Consent is one stateless form: the request rides in hidden fields (nothing secret) and is validated
 *   again on POST; CSRF is a double-submit token in an HttpOnly SameSite=Strict cookie.
 * - Codes live 5 minutes; access tokens 1 hour; refresh tokens rotate on every use and lapse after 30
 *   days unused; a reused code or refresh token revokes its grant.
 */
import { Buffer } from 'node:buffer';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { Clock } from '../domain/clock.js';
import { newId } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { OAuthStore, StoredClient, StoredGrant, TokenPair } from '../storage/oauth.js';
import {
  type ClientMetadata,
  ClientMetadataError,
  DEFAULT_FETCH,
  fetchClientMetadata,
  isClientMetadataUrl,
  parseClientMetadata,
} from './client-metadata.js';
import { channelForHost, redirectHost } from './hosts.js';
import { consentPage, errorPage, unmappedHostPage } from './pages.js';
import {
  hashSecret,
  newSecret,
  PKCE_CHALLENGE,
  PKCE_VERIFIER,
  pkceChallenge,
  SecretPrefix,
  sameHash,
} from './secrets.js';

export const Scope = { SHOP: 'stock:shop', ADMIN: 'stock:admin' } as const;
export type Scope = (typeof Scope)[keyof typeof Scope];
export const SCOPES: readonly Scope[] = [Scope.SHOP, Scope.ADMIN];

export const MCP_PATH = '/mcp';
export const DEFAULT_ACCESS_TTL_MS = 60 * 60_000;
export const DEFAULT_REFRESH_TTL_MS = 30 * 24 * 60 * 60_000;
const CODE_TTL_MS = 5 * 60_000;
/** A CIMD document is fetched again when the copy we hold is older than this at authorization time. */
const CIMD_REFRESH_MS = 10 * 60_000;
const MAX_FORM_BYTES = 16 * 1024;

export interface OAuthOptions {
  /** The public origin clients reach this server at (https://shop.example.com, or http://127.0.0.1:3000). */
  publicUrl: string;
  store: OAuthStore;
  clock: Clock;
  logger: Logger;
  /** True when this server runs on loopback: CIMD documents on loopback are then allowed (development). */
  loopback: boolean;
  /** Whether this secret is a live admin token: the consent page's merchant sign-in. */
  isAdminToken(token: string): Promise<boolean>;
  accessTtlMs?: number;
  refreshTtlMs?: number;
  /** Extra CA certificates (PEM) trusted when fetching client metadata documents. */
  clientMetadataCa?: string;
}

/** Who an OAuth access token speaks for. Each grant is its own holder inside its channel. */
export interface OAuthIdentity {
  grantId: string;
  clientId: string;
  channel: string;
  admin: boolean;
}

export interface OAuthServer {
  readonly issuer: string;
  /** This server's MCP URL: the only resource its tokens are good for. */
  readonly resource: string;
  readonly resourceMetadataUrl: string;
  /** Mount at the application root, after the Host/Origin checks. */
  readonly router: Router;
  /** True for strings shaped like our OAuth access tokens (cheap; no lookup). */
  isAccessToken(token: string): boolean;
  verifyAccessToken(token: string): Promise<OAuthIdentity | undefined>;
  /** The WWW-Authenticate value for a 401 on /mcp (RFC 9728 §5.1; MCP authorization, scope challenge). */
  challenge(error?: { code: 'invalid_token'; description: string }): string;
}

/** Checks --public-url: an http(s) origin, nothing after it; returns it without a trailing slash. */
export function parsePublicUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(
      `--public-url "${text}" is not a URL; give the origin clients use, e.g. https://shop.example.com`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`--public-url must be an https URL, got ${url.protocol}`);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new Error(
      `--public-url must be an origin without a path (https://shop.example.com); the MCP endpoint is its ${MCP_PATH}`,
    );
  }
  return url.origin;
}

class OAuthFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** A request parameter given once, or undefined; a repeated parameter is an error (RFC 6749 §3.1). */
function single(source: Record<string, unknown>, name: string): string | undefined {
  const value = source[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new OAuthFailure('invalid_request', `${name} must be given once`);
  return value;
}

const LOOPBACK_IP_REDIRECT = new Set(['127.0.0.1', '[::1]']);

/** Exact match; for loopback IP redirects the port may differ (RFC 8252 §7.3). */
export function redirectUriMatches(requested: string, registered: string): boolean {
  if (requested === registered) return true;
  let req: URL;
  let reg: URL;
  try {
    req = new URL(requested);
    reg = new URL(registered);
  } catch {
    return false;
  }
  return (
    req.protocol === 'http:' &&
    reg.protocol === 'http:' &&
    LOOPBACK_IP_REDIRECT.has(req.hostname) &&
    req.hostname === reg.hostname &&
    req.pathname === reg.pathname &&
    req.search === reg.search &&
    !req.hash
  );
}

/** The form of a URL for comparing resource indicators: no fragment, no trailing slash. */
function comparableResource(value: string): string | undefined {
  try {
    const url = new URL(value);
    url.hash = '';
    return url.href.replace(/\/$/, '');
  } catch {
    return undefined;
  }
}

function parseScopes(requested: string | undefined): Scope[] {
  const words = (requested ?? '').split(' ').filter((w) => w.length > 0);
  const known: Scope[] = [];
  for (const word of words) {
    if ((SCOPES as readonly string[]).includes(word)) known.push(word as Scope);
    // offline_access asks for a refresh token, which every grant gets anyway.
    else if (word !== 'offline_access')
      throw new OAuthFailure(
        'invalid_scope',
        `unknown scope "${word}"; this server offers ${SCOPES.join(', ')}`,
      );
  }
  // ChatGPT omits the scope on reconnect: an omitted scope means shopping.
  return known.length === 0 ? [Scope.SHOP] : [...new Set(known)];
}

const grantedScope = (admin: boolean) => (admin ? `${Scope.SHOP} ${Scope.ADMIN}` : Scope.SHOP);

function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

interface ResolvedClient {
  clientId: string;
  kind: 'dcr' | 'cimd';
  metadata: ClientMetadata;
  secretHash: string | null;
}

/** A validated authorization request, ready to show on the consent page or to turn into a code. */
interface AuthorizationRequest {
  client: ResolvedClient;
  redirectUri: string;
  state: string | undefined;
  codeChallenge: string;
  scopes: Scope[];
  resource: string;
  channel: string;
  returnHost: string;
}

type Resolution =
  | { kind: 'ok'; request: AuthorizationRequest }
  | { kind: 'page'; status: number; html: string }
  | { kind: 'redirect'; url: string };

export function createOAuthServer(options: OAuthOptions): OAuthServer {
  const { store, clock, logger } = options;
  const issuer = parsePublicUrl(options.publicUrl);
  const resource = `${issuer}${MCP_PATH}`;
  const resourceKey = comparableResource(resource) as string;
  const resourceMetadataUrl = `${issuer}/.well-known/oauth-protected-resource${MCP_PATH}`;
  const accessTtlMs = options.accessTtlMs ?? DEFAULT_ACCESS_TTL_MS;
  const refreshTtlMs = options.refreshTtlMs ?? DEFAULT_REFRESH_TTL_MS;
  const secureCookies = issuer.startsWith('https:');
  // __Host- pins the cookie to this origin, but browsers only accept it over https.
  const csrfCookie = secureCookies ? '__Host-stocklock_csrf' : 'stocklock_csrf';
  const fetchOptions = {
    ...DEFAULT_FETCH,
    allowLoopback: options.loopback,
    ...(options.clientMetadataCa ? { ca: options.clientMetadataCa } : {}),
  };

  const authorizationServerMetadata = {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    registration_endpoint: `${issuer}/register`,
    revocation_endpoint: `${issuer}/revoke`,
    revocation_endpoint_auth_methods_supported: ['none', 'client_secret_post', 'client_secret_basic'],
    scopes_supported: SCOPES,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_methods_supported: ['none', 'client_secret_post', 'client_secret_basic'],
    code_challenge_methods_supported: ['S256'],
    client_id_metadata_document_supported: true,
    authorization_response_iss_parameter_supported: true,
  };
  const protectedResourceMetadata = {
    resource,
    authorization_servers: [issuer],
    scopes_supported: SCOPES,
    bearer_methods_supported: ['header'],
    resource_name: 'stocklock inventory',
  };

  // ---------------------------------------------------------------- clients

  async function loadClient(clientId: string, fresh: boolean): Promise<ResolvedClient | undefined> {
    const stored = await store.getClient(clientId);
    const now = clock.now();
    if (isClientMetadataUrl(clientId) && (!stored || (fresh && now - stored.fetched_at > CIMD_REFRESH_MS))) {
      const metadata = await fetchClientMetadata(clientId, fetchOptions);
      await store.saveClient({
        client_id: clientId,
        kind: 'cimd',
        metadata: JSON.stringify(metadata),
        secret_hash: null,
        created_at: stored?.created_at ?? now,
        fetched_at: now,
      });
      return { clientId, kind: 'cimd', metadata, secretHash: null };
    }
    if (!stored) return undefined;
    return {
      clientId,
      kind: stored.kind,
      metadata: JSON.parse(stored.metadata) as ClientMetadata,
      secretHash: stored.secret_hash,
    };
  }

  const clientName = (client: ResolvedClient) => client.metadata.client_name ?? client.clientId;

  // ---------------------------------------------------------------- authorization endpoint

  function redirectWith(redirectUri: string, params: Record<string, string | undefined>): string {
    const url = new URL(redirectUri);
    for (const [key, value] of Object.entries(params))
      if (value !== undefined) url.searchParams.set(key, value);
    // RFC 9207: the response names its issuer, so a client talking to several servers cannot be mixed up.
    url.searchParams.set('iss', issuer);
    return url.href;
  }

  async function resolve(params: Record<string, unknown>): Promise<Resolution> {
    // Until the client and its redirect URI are known good, errors are shown here, never redirected.
    let client: ResolvedClient | undefined;
    let redirectUri: string | undefined;
    try {
      const clientId = single(params, 'client_id');
      if (!clientId)
        return {
          kind: 'page',
          status: 400,
          html: errorPage(
            'Sign-in request incomplete',
            'The app did not say who it is (client_id is missing). Go back to the app and connect again.',
          ),
        };
      client = await loadClient(clientId, true);
      if (!client) {
        return {
          kind: 'page',
          status: 400,
          html: errorPage(
            'Unknown app',
            'This shop does not know the app that sent you here. Go back to the app and connect again: it will register anew.',
          ),
        };
      }
      redirectUri = single(params, 'redirect_uri');
      if (redirectUri === undefined) {
        if (client.metadata.redirect_uris.length !== 1) {
          return {
            kind: 'page',
            status: 400,
            html: errorPage(
              'Sign-in request incomplete',
              'The app did not say where to return (redirect_uri is missing).',
            ),
          };
        }
        redirectUri = client.metadata.redirect_uris[0] as string;
      } else {
        const requested = redirectUri;
        if (!client.metadata.redirect_uris.some((registered) => redirectUriMatches(requested, registered))) {
          logger.warn(
            { client: client.clientId, redirectHost: safeHost(requested) },
            'refused an unregistered redirect URI',
          );
          return {
            kind: 'page',
            status: 400,
            html: errorPage(
              'Unregistered return address',
              'The app asked to return to an address it did not register, so this sign-in was stopped.',
            ),
          };
        }
      }
    } catch (error) {
      if (error instanceof ClientMetadataError) {
        logger.warn({ reason: error.message }, 'refused a client metadata document');
        return { kind: 'page', status: 400, html: errorPage('The app could not be verified', error.message) };
      }
      if (error instanceof OAuthFailure)
        return { kind: 'page', status: 400, html: errorPage('Bad sign-in request', error.message) };
      throw error;
    }

    let state: string | undefined;
    try {
      state = single(params, 'state');
      if (single(params, 'response_type') !== 'code') {
        throw new OAuthFailure('unsupported_response_type', 'response_type must be code');
      }
      const codeChallenge = single(params, 'code_challenge');
      if (single(params, 'code_challenge_method') !== 'S256' || !codeChallenge) {
        throw new OAuthFailure(
          'invalid_request',
          'PKCE is required: send code_challenge with code_challenge_method S256',
        );
      }
      if (!PKCE_CHALLENGE.test(codeChallenge)) {
        throw new OAuthFailure('invalid_request', 'code_challenge must be 43 base64url characters (S256)');
      }
      const requestedResource = single(params, 'resource');
      if (requestedResource !== undefined && comparableResource(requestedResource) !== resourceKey) {
        throw new OAuthFailure('invalid_target', `this server issues tokens only for ${resource}`);
      }
      const scopes = parseScopes(single(params, 'scope'));
      const host = redirectHost(redirectUri);
      const mapping = channelForHost(host, await store.hostRules());
      if (!mapping.channel) {
        logger.warn({ client: client.clientId, host }, 'refused a sign-in from an unmapped host');
        return {
          kind: 'page',
          status: 403,
          html: unmappedHostPage(host, mapping.channel === null, clientName(client)),
        };
      }
      return {
        kind: 'ok',
        request: {
          client,
          redirectUri,
          state,
          codeChallenge,
          scopes,
          resource,
          channel: mapping.channel,
          returnHost: host,
        },
      };
    } catch (error) {
      if (!(error instanceof OAuthFailure)) throw error;
      return {
        kind: 'redirect',
        url: redirectWith(redirectUri, { error: error.code, error_description: error.message, state }),
      };
    }
  }

  function safeHost(uri: string): string | undefined {
    try {
      return new URL(uri).host;
    } catch {
      return undefined;
    }
  }

  function pageHeaders(res: Response, redirectUri?: string): void {
    let formTarget = '';
    if (redirectUri) {
      // Chromium applies form-action to the redirect after the POST as well: allow the client's origin.
      const url = new URL(redirectUri);
      formTarget = url.origin !== 'null' ? ` ${url.origin}` : ` ${url.protocol}`;
    }
    res.set({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': `default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'${formTarget}; frame-ancestors 'none'; base-uri 'none'`,
      'X-Frame-Options': 'DENY',
      // Not no-referrer: browsers then send Origin: null on the form POST, which the Origin guard refuses.
      'Referrer-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
    });
  }

  function requestFields(request: AuthorizationRequest): Record<string, string> {
    return {
      response_type: 'code',
      client_id: request.client.clientId,
      redirect_uri: request.redirectUri,
      code_challenge: request.codeChallenge,
      code_challenge_method: 'S256',
      scope: request.scopes.join(' '),
      resource: request.resource,
      ...(request.state !== undefined ? { state: request.state } : {}),
    };
  }

  function showConsent(
    res: Response,
    request: AuthorizationRequest,
    csrf: string,
    status = 200,
    error?: string,
  ): void {
    pageHeaders(res, request.redirectUri);
    res.status(status).send(
      consentPage({
        clientName: clientName(request.client),
        clientId: request.client.clientId,
        registration: request.client.kind,
        returnHost: request.returnHost,
        channel: request.channel,
        adminRequested: request.scopes.includes(Scope.ADMIN),
        fields: requestFields(request),
        csrf,
        ...(error ? { error } : {}),
      }),
    );
  }

  async function answer(
    res: Response,
    resolution: Exclude<Resolution, { kind: 'ok' }>,
    status = 302,
  ): Promise<void> {
    if (resolution.kind === 'page') {
      pageHeaders(res);
      res.status(resolution.status).send(resolution.html);
    } else {
      res.set('Cache-Control', 'no-store').redirect(status, resolution.url);
    }
  }

  async function showAuthorization(req: Request, res: Response): Promise<void> {
    const resolution = await resolve(req.query as Record<string, unknown>);
    if (resolution.kind !== 'ok') return answer(res, resolution);
    const csrf = readCookie(req, csrfCookie) ?? randomBytes(32).toString('base64url');
    res.cookie(csrfCookie, csrf, { httpOnly: true, sameSite: 'strict', secure: secureCookies, path: '/' });
    showConsent(res, resolution.request, csrf);
  }

  async function decide(req: Request, res: Response): Promise<void> {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const cookie = readCookie(req, csrfCookie);
    const sent = typeof body.csrf_token === 'string' ? body.csrf_token : undefined;
    if (!cookie || !sent || !sameText(cookie, sent)) {
      logger.warn({ ip: req.socket.remoteAddress }, 'refused a consent form without a valid CSRF token');
      pageHeaders(res);
      res
        .status(403)
        .send(
          errorPage(
            'This form has expired',
            'The sign-in form could not be verified. Go back to the app and connect again.',
          ),
        );
      return;
    }
    // The POSTed form carries the whole request: everything is checked again, as if it came fresh.
    const resolution = await resolve(body);
    if (resolution.kind !== 'ok') return answer(res, resolution, 303);
    const request = resolution.request;
    const decision = body.decision;
    if (decision === 'deny') {
      logger.info(
        { client: request.client.clientId, channel: request.channel },
        'sign-in denied on the consent page',
      );
      res.redirect(
        303,
        redirectWith(request.redirectUri, {
          error: 'access_denied',
          error_description: 'the user denied access',
          state: request.state,
        }),
      );
      return;
    }
    let admin = false;
    if (decision === 'allow_admin') {
      const token = typeof body.admin_token === 'string' ? body.admin_token.trim() : '';
      if (!token || !(await options.isAdminToken(token))) {
        logger.warn({ client: request.client.clientId }, 'consent page: admin sign-in refused');
        showConsent(
          res,
          request,
          cookie,
          401,
          'That is not a live admin token. Shopping can still be allowed without one.',
        );
        return;
      }
      admin = true;
    } else if (decision !== 'allow') {
      pageHeaders(res);
      res.status(400).send(errorPage('Bad sign-in request', 'Choose Allow or Deny.'));
      return;
    }
    const code = newSecret(SecretPrefix.CODE);
    const now = clock.now();
    await store.saveCode({
      code_hash: hashSecret(code),
      client_id: request.client.clientId,
      redirect_uri: request.redirectUri,
      code_challenge: request.codeChallenge,
      scope: grantedScope(admin),
      resource: request.resource,
      channel: request.channel,
      created_at: now,
      expires_at: now + CODE_TTL_MS,
      used_at: null,
      grant_id: null,
    });
    logger.info(
      { client: request.client.clientId, channel: request.channel, admin },
      'sign-in allowed on the consent page',
    );
    res
      .set('Cache-Control', 'no-store')
      .redirect(303, redirectWith(request.redirectUri, { code, state: request.state }));
  }

  // ---------------------------------------------------------------- registration endpoint (RFC 7591)

  async function register(req: Request, res: Response): Promise<void> {
    res.set('Cache-Control', 'no-store');
    let metadata: ClientMetadata;
    try {
      // RFC 7591 §2: a client that names no method gets client_secret_basic.
      metadata = parseClientMetadata(req.body, 'client_secret_basic');
    } catch (error) {
      if (!(error instanceof ClientMetadataError)) throw error;
      res.status(400).json({ error: 'invalid_client_metadata', error_description: error.message });
      return;
    }
    const clientId = newId('cli_');
    const secret =
      metadata.token_endpoint_auth_method === 'none' ? undefined : newSecret(SecretPrefix.CLIENT_SECRET);
    const now = clock.now();
    const stored: StoredClient = {
      client_id: clientId,
      kind: 'dcr',
      metadata: JSON.stringify(metadata),
      secret_hash: secret ? hashSecret(secret) : null,
      created_at: now,
      fetched_at: now,
    };
    await store.saveClient(stored);
    logger.info(
      { client: clientId, name: metadata.client_name, method: metadata.token_endpoint_auth_method },
      'registered an OAuth client',
    );
    res.status(201).json({
      client_id: clientId,
      client_id_issued_at: Math.floor(now / 1000),
      // 0: the secret never expires (RFC 7591 §3.2.1); the SDK's 30-day default would strand connectors.
      ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
      ...metadata,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    });
  }

  // ---------------------------------------------------------------- token endpoint

  /** The client a token request speaks for, authenticated by its secret when it has one. */
  async function authenticateClient(req: Request, body: Record<string, unknown>): Promise<ResolvedClient> {
    let clientId = single(body, 'client_id');
    let secret = single(body, 'client_secret');
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new OAuthFailure('invalid_client', 'malformed Basic credentials', 401);
      const basicId = decodeURIComponent(decoded.slice(0, colon));
      if (clientId !== undefined && clientId !== basicId) {
        throw new OAuthFailure('invalid_request', 'client_id differs between the header and the body');
      }
      clientId = basicId;
      secret = decodeURIComponent(decoded.slice(colon + 1));
    }
    if (!clientId) throw new OAuthFailure('invalid_client', 'client_id is required', 401);
    let client: ResolvedClient | undefined;
    try {
      client = await loadClient(clientId, false);
    } catch (error) {
      if (error instanceof ClientMetadataError) throw new OAuthFailure('invalid_client', error.message, 401);
      throw error;
    }
    // 401 invalid_client is what makes a host such as Claude register again (issue 12).
    if (!client) throw new OAuthFailure('invalid_client', 'unknown client; register again', 401);
    if (client.secretHash) {
      if (!secret || !sameHash(hashSecret(secret), client.secretHash)) {
        throw new OAuthFailure('invalid_client', 'client authentication failed', 401);
      }
    }
    return client;
  }

  function newTokens(now: number): { pair: TokenPair; access: string; refresh: string } {
    const access = newSecret(SecretPrefix.ACCESS);
    const refresh = newSecret(SecretPrefix.REFRESH);
    return {
      access,
      refresh,
      pair: {
        access_hash: hashSecret(access),
        access_expires_at: now + accessTtlMs,
        refresh_hash: hashSecret(refresh),
        refresh_expires_at: now + refreshTtlMs,
      },
    };
  }

  function tokenResponse(tokens: { access: string; refresh: string }, scope: string) {
    return {
      access_token: tokens.access,
      token_type: 'Bearer',
      expires_in: Math.floor(accessTtlMs / 1000),
      refresh_token: tokens.refresh,
      scope,
    };
  }

  function checkTokenResource(body: Record<string, unknown>, bound: string): void {
    const requested = single(body, 'resource');
    if (requested !== undefined && comparableResource(requested) !== comparableResource(bound)) {
      throw new OAuthFailure('invalid_target', `tokens of this grant are only for ${bound}`);
    }
  }

  async function exchangeCode(client: ResolvedClient, body: Record<string, unknown>) {
    const code = single(body, 'code');
    const verifier = single(body, 'code_verifier');
    if (!code || !verifier) throw new OAuthFailure('invalid_request', 'code and code_verifier are required');
    const codeHash = hashSecret(code);
    const stored = await store.getCode(codeHash);
    const now = clock.now();
    if (!stored || stored.client_id !== client.clientId) {
      throw new OAuthFailure(
        'invalid_grant',
        'the authorization code is unknown or belongs to another client',
      );
    }
    if (stored.used_at === null) {
      if (stored.expires_at <= now)
        throw new OAuthFailure('invalid_grant', 'the authorization code has expired');
      if (!PKCE_VERIFIER.test(verifier) || pkceChallenge(verifier) !== stored.code_challenge) {
        throw new OAuthFailure('invalid_grant', 'code_verifier does not match the code_challenge');
      }
      const redirectUri = single(body, 'redirect_uri');
      if (redirectUri !== undefined && redirectUri !== stored.redirect_uri) {
        throw new OAuthFailure('invalid_grant', 'redirect_uri differs from the authorization request');
      }
      checkTokenResource(body, stored.resource);
    }
    const tokens = newTokens(now);
    const grantId = newId('grt_', 16);
    const outcome = await store.redeemCode(
      codeHash,
      now,
      {
        id: grantId,
        client_id: client.clientId,
        channel: stored.channel,
        scope: stored.scope,
        resource: stored.resource,
        redirect_host: redirectHost(stored.redirect_uri),
      },
      tokens.pair,
    );
    if (outcome === 'reused') {
      logger.warn(
        { client: client.clientId, grant: stored.grant_id },
        'authorization code reused: its grant is revoked',
      );
      throw new OAuthFailure('invalid_grant', 'the authorization code was already used');
    }
    logger.info(
      { client: client.clientId, grant: grantId, channel: stored.channel, scope: stored.scope },
      'OAuth grant issued',
    );
    return tokenResponse(tokens, stored.scope);
  }

  async function refresh(client: ResolvedClient, body: Record<string, unknown>) {
    const token = single(body, 'refresh_token');
    if (!token) throw new OAuthFailure('invalid_request', 'refresh_token is required');
    const refreshHash = hashSecret(token);
    const found = await store.getRefresh(refreshHash);
    const now = clock.now();
    if (!found || found.grant.client_id !== client.clientId || found.grant.revoked_at !== null) {
      throw new OAuthFailure(
        'invalid_grant',
        'the refresh token is unknown, revoked or belongs to another client',
      );
    }
    if (found.used_at === null) {
      if (found.expires_at <= now) throw new OAuthFailure('invalid_grant', 'the refresh token has expired');
      checkTokenResource(body, found.grant.resource);
      const asked = single(body, 'scope');
      if (asked !== undefined) {
        const granted = found.grant.scope.split(' ');
        if (parseScopes(asked).some((scope) => !granted.includes(scope))) {
          throw new OAuthFailure('invalid_scope', 'a refresh cannot widen the scope of its grant');
        }
      }
    }
    const tokens = newTokens(now);
    if ((await store.rotateRefresh(refreshHash, now, tokens.pair)) === 'reused') {
      logger.warn(
        { client: client.clientId, grant: found.grant.id },
        'refresh token reused: its grant is revoked',
      );
      throw new OAuthFailure('invalid_grant', 'the refresh token was already used; the grant is revoked');
    }
    return tokenResponse(tokens, found.grant.scope);
  }

  async function token(req: Request, res: Response): Promise<void> {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    try {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const client = await authenticateClient(req, body);
      const grantType = single(body, 'grant_type');
      if (grantType === 'authorization_code') res.json(await exchangeCode(client, body));
      else if (grantType === 'refresh_token') res.json(await refresh(client, body));
      else
        throw new OAuthFailure(
          'unsupported_grant_type',
          'grant_type must be authorization_code or refresh_token',
        );
    } catch (error) {
      if (!(error instanceof OAuthFailure)) throw error;
      res.status(error.status).json({ error: error.code, error_description: error.message });
    }
  }

  // ---------------------------------------------------------------- revocation (RFC 7009)

  /** The grant a presented access or refresh token belongs to, whatever state the token is in. */
  async function grantOfToken(token: string): Promise<StoredGrant | undefined> {
    const hash = hashSecret(token);
    if (token.startsWith(SecretPrefix.REFRESH)) return (await store.getRefresh(hash))?.grant;
    // An expired or already revoked access token has nothing left to revoke.
    if (token.startsWith(SecretPrefix.ACCESS)) return store.verifyAccess(hash, clock.now());
    return undefined;
  }

  /**
   * Ends the grant of the presented token: its access and refresh tokens both stop working (RFC 7009 §2.1
   * lets revoking either end the grant; a signed-out connector wants nothing of it left). An unknown token,
   * or one issued to another client, is answered 200 like a revoked one (§2.2), so the endpoint tells a
   * caller nothing about tokens that are not its own.
   */
  async function revoke(req: Request, res: Response): Promise<void> {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    try {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const client = await authenticateClient(req, body);
      const token = single(body, 'token');
      if (!token) throw new OAuthFailure('invalid_request', 'token is required');
      const grant = await grantOfToken(token);
      if (grant && grant.client_id === client.clientId && grant.revoked_at === null) {
        await store.revokeGrant(grant.id, clock.now(), 'revoked by the client');
        logger.info({ client: client.clientId, grant: grant.id }, 'OAuth grant revoked by its client');
      }
      res.status(200).end();
    } catch (error) {
      if (!(error instanceof OAuthFailure)) throw error;
      res.status(error.status).json({ error: error.code, error_description: error.message });
    }
  }

  // ---------------------------------------------------------------- the router

  const router = express.Router();
  const cors = (_req: Request, res: Response, next: () => void) => {
    // Metadata, registration and token endpoints serve browser-based MCP clients too (no cookies involved).
    res.set({
      'Access-Control-Allow-Origin': '*',
      'Access-Control-Allow-Headers': 'authorization, content-type, mcp-protocol-version',
      'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
    });
    next();
  };
  const form = express.urlencoded({ extended: false, limit: MAX_FORM_BYTES, parameterLimit: 50 });
  const json = express.json({ limit: MAX_FORM_BYTES });
  const sendJson = (body: object) => (_req: Request, res: Response) => res.json(body);
  const asyncRoute =
    (fn: (req: Request, res: Response) => Promise<void>) =>
    (req: Request, res: Response, next: (e?: unknown) => void) =>
      fn(req, res).catch(next);

  for (const path of [
    `/.well-known/oauth-protected-resource${MCP_PATH}`,
    '/.well-known/oauth-protected-resource',
  ]) {
    router.options(path, cors, (_req, res) => void res.sendStatus(204));
    router.get(path, cors, sendJson(protectedResourceMetadata));
  }
  router.options('/.well-known/oauth-authorization-server', cors, (_req, res) => void res.sendStatus(204));
  router.get('/.well-known/oauth-authorization-server', cors, sendJson(authorizationServerMetadata));
  router.get('/authorize', asyncRoute(showAuthorization));
  router.post('/authorize', form, asyncRoute(decide));
  router.options('/register', cors, (_req, res) => void res.sendStatus(204));
  router.post('/register', cors, json, asyncRoute(register));
  router.options('/token', cors, (_req, res) => void res.sendStatus(204));
  router.post('/token', cors, form, asyncRoute(token));
  router.options('/revoke', cors, (_req, res) => void res.sendStatus(204));
  router.post('/revoke', cors, form, asyncRoute(revoke));

  return {
    issuer,
    resource,
    resourceMetadataUrl,
    router,
    isAccessToken: (candidate) => candidate.startsWith(SecretPrefix.ACCESS),
    async verifyAccessToken(candidate) {
      const grant: StoredGrant | undefined = await store.verifyAccess(hashSecret(candidate), clock.now());
      // A token is good only at the resource it was issued for (RFC 8707): not at a server with another URL.
      if (!grant || comparableResource(grant.resource) !== resourceKey) return undefined;
      return {
        grantId: grant.id,
        clientId: grant.client_id,
        channel: grant.channel,
        admin: grant.scope.split(' ').includes(Scope.ADMIN),
      };
    },
    challenge(error) {
      const parts = ['realm="stocklock"'];
      if (error) {
        parts.push(`error="${error.code}"`, `error_description="${error.description.replace(/["\\]/g, '')}"`);
      }
      parts.push(`resource_metadata="${resourceMetadataUrl}"`, `scope="${Scope.SHOP}"`);
      return `Bearer ${parts.join(', ')}`;
    },
  };
}
