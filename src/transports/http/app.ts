// serveHttp(): wires the guard, credentials, sessions and replies into one express app, listens, and drains on close.
/*
 * - /healthz needs no token and skips the Host/Origin checks, so load balancer and container
 *   probes that address the server by IP work; it tells only the session count.
 * - Every POST to /mcp goes to mcp-post.ts (its own body reader: limits, malformed JSON and wrong
 *   content types all answer JSON-RPC errors); express serves everything else, the shutdown's 503 included.
 * - close(): new requests get 503 and the listener stops; POSTs already received (tool calls
 *   included) are waited for up to `drainMs` (10 s); then every session is closed and the
 *   remaining sockets (GET streams, idle keep-alives) are closed. The store stays open: the
 *   caller owns it.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { createOAuthServer, type OAuthServer, parsePublicUrl } from '../../auth/server.js';
import type { Clock } from '../../domain/clock.js';
import type { Logger } from '../../logger.js';
import { createServer } from '../../mcp/server.js';
import type { InventoryStore } from '../../storage/store.js';
import { DEFAULT_MAX_BODY_BYTES } from './body.js';
import {
  type BearerVerifier,
  createAuthenticate,
  type Identity,
  identify,
  requireIdentity,
  staticTokens,
} from './credentials.js';
import { assertSafeBind, hostGuard, isLoopbackUrl } from './guard.js';
import { isMcpPost, type McpPostRoute, serveMcpPost } from './mcp-post.js';
import { claimsModernRevision, ModernEndpoint } from './modern.js';
import { jsonErrors, notFound, sendRpcError } from './replies.js';
import { Sessions } from './sessions.js';

export interface HttpOptions {
  host: string;
  port: number;
  /** Host/Origin names to accept besides loopback; required when binding beyond loopback. */
  allowedHosts: string[];
  /** false (--no-auth): no tokens, loopback only, every session a customer on `channel`. */
  auth: boolean;
  /** The channel of every session when auth is off. */
  channel: string;
  sessionIdleMs: number;
  maxSessions: number;
  /** Most sessions one credential may hold; default 100. */
  maxSessionsPerCredential?: number;
  version: string;
  /** Largest request body (after decompression); default 64 KB. */
  maxBodyBytes?: number;
  /** What sessions and the token cache tell the time by; default the store's clock. */
  clock?: Clock;
  /** How long a verified token is trusted without asking the store again; default 5 s. */
  tokenCacheMs?: number;
  /** How long close() waits for requests in flight; default 10 s. */
  drainMs?: number;
  /** Longest a client may take to send a request's headers (408 and closed after); default 10 s. */
  headersTimeoutMs?: number;
  /** Longest a client may take to send a whole request, body included; default 30 s. */
  requestTimeoutMs?: number;
  /** Most open connections; past it new ones are closed at once. Default 2,000: two per session at the cap. */
  maxConnections?: number;
  /** How long an idle keep-alive connection stays open; default KEEP_ALIVE_TIMEOUT_MS. */
  keepAliveTimeoutMs?: number;
  /** false (--no-apps): tools without the MCP App (src/mcp/app.ts). */
  apps?: boolean;
  /** The merchant console (src/console/), mounted at /console behind the same Host/Origin checks. */
  console?: { router: RequestHandler };
  /** The payment webhooks and return page (src/payments/), at /payments: signed by the provider, no bearer token. */
  payments?: { router: RequestHandler };
  /**
   * The origin clients reach this server at (--public-url), naming the OAuth issuer and resource. Required
   * beyond loopback when auth is on; on loopback it defaults to the address served.
   */
  publicUrl?: string;
  /** OAuth access token lifetime; default 1 hour. */
  accessTokenTtlMs?: number;
  /** Extra CA certificates (PEM) trusted when fetching OAuth client metadata documents. */
  clientMetadataCa?: string;
  /** How many proxy hops of X-Forwarded-For to believe for the client address (rate limits); default 0. */
  trustProxy?: number;
}

export interface HttpServerHandle {
  /** The MCP endpoint, e.g. http://127.0.0.1:3000/mcp. */
  url: string;
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Stops taking requests, finishes those in flight, closes every session. Leaves the store open. */
  close(): Promise<void>;
}

const DEFAULT_MAX_SESSIONS_PER_CREDENTIAL = 100;
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_CONNECTIONS = 2_000;
const DEFAULT_TOKEN_CACHE_MS = 5_000;
const DEFAULT_DRAIN_MS = 10_000;
/**
 * How long an idle keep-alive connection stays open. Node 20's 5 s is shorter than what clients
 * and proxies keep idle connections for (httpx 5 s, load balancers 60 s), and even undici, which
 * follows the advertised `Keep-Alive: timeout=5` less 2 s, reuses a socket the server is closing
 * once a loaded machine delays its timers: the POST on it fails with "other side closed" and is
 * never retried. 65 s (Node 26's new default) outlasts them all; close() still ends idle sockets at once.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** Node's server options for the timeouts, and the connection cap; throws at once on values that cannot work. */
function connectionLimits(options: HttpOptions) {
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!(headersTimeout > 0)) throw new Error(`--headers-timeout must be positive, got ${headersTimeout} ms`);
  if (!(requestTimeout >= headersTimeout)) {
    throw new Error(
      `--request-timeout (${requestTimeout} ms) must be at least --headers-timeout (${headersTimeout} ms)`,
    );
  }
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
    throw new Error(`--max-connections must be a whole number of at least 1, got ${maxConnections}`);
  }
  return {
    maxConnections,
    server: {
      keepAliveTimeout: options.keepAliveTimeoutMs ?? KEEP_ALIVE_TIMEOUT_MS,
      headersTimeout,
      requestTimeout,
      // Node looks for requests past their deadline this often (30 s by default, which would double a 30 s limit).
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(headersTimeout / 4))),
    },
  };
}

/** Serves MCP over Streamable HTTP until close(); throws at once on an unsafe configuration. */
export async function serveHttp(
  store: InventoryStore,
  options: HttpOptions,
  logger: Logger,
): Promise<HttpServerHandle> {
  assertSafeBind(options);
  let listenPort = options.port;
  const publicOrigin = options.publicUrl ? parsePublicUrl(options.publicUrl) : undefined;
  // The public origin is where browsers post the consent form from, so Host and Origin accept it.
  const guard = hostGuard(
    [...options.allowedHosts, ...(publicOrigin ? [publicOrigin] : [])],
    () => listenPort,
    logger,
  );
  const clock = options.clock ?? store.options.clock;
  const serverFor = (identity: Identity) =>
    createServer({
      store,
      channel: identity.channel,
      admin: identity.admin,
      ...(identity.holder !== undefined ? { holder: identity.holder } : {}),
      logger,
      version: options.version,
      ...(options.apps === false ? { apps: false } : {}),
    });
  const sessions = new Sessions(
    {
      maxSessions: options.maxSessions,
      maxSessionsPerCredential: options.maxSessionsPerCredential ?? DEFAULT_MAX_SESSIONS_PER_CREDENTIAL,
      clock,
      idleMs: options.sessionIdleMs,
      records: store.mcpSessions,
      createServer: serverFor,
    },
    logger,
  );
  // 2026-07-28 requests carry no session: each goes to its caller's kept server.
  const modern = new ModernEndpoint({ createServer: serverFor, logger });
  // Created once listening: the loopback default for the issuer needs the port. No request is served before.
  let oauth: OAuthServer | undefined;
  const oauthTokens: BearerVerifier = async (token) => {
    if (!oauth?.isAccessToken(token)) return undefined;
    const grant = await oauth.verifyAccessToken(token);
    // Each grant is its own holder; sessions bind to the grant, which outlives its rotating tokens.
    return (
      grant && {
        credentialId: grant.grantId,
        channel: grant.channel,
        admin: grant.admin,
        holder: grant.grantId,
      }
    );
  };
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  const authenticate = createAuthenticate({
    auth: options.auth,
    channel: options.channel,
    verifiers: [oauthTokens, staticTokens(store)],
    cacheMs: options.tokenCacheMs ?? DEFAULT_TOKEN_CACHE_MS,
    clock,
    challenge: () => oauth?.challenge() ?? 'Bearer realm="stocklock"',
  });

  let closing = false;
  // POSTs received and not yet answered (tool calls among them): close() waits for these.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const requestDone = () => {
    inFlight -= 1;
    if (inFlight === 0) drained?.();
  };
  const track = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'POST') {
      inFlight += 1;
      res.once('close', requestDone);
    }
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy ?? 0);
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.status(closing ? 503 : 200).json({ status: closing ? 'closing' : 'ok', sessions: sessions.size });
  });
  app.use((_req, res, next) => {
    if (!closing) return next();
    sendRpcError(res, 503, -32000, 'Service unavailable: the server is shutting down; retry shortly.', {
      'Retry-After': '5',
      Connection: 'close',
    });
  });
  app.use(guard);
  // Payment webhooks: the provider's signature is the credential, so no bearer token; close() waits for them too.
  if (options.payments) {
    const router = options.payments.router;
    app.use('/payments', (req, res, next) => {
      track(req, res);
      router(req, res, next);
    });
  }
  // GET (the session's stream), DELETE and other methods; every POST is mcp-post.ts's. First, so requests on
  // /mcp do not walk the OAuth router's routes.
  app.all('/mcp', requireIdentity(authenticate, logger), (req: Request, res: Response) =>
    sessions.handle(req, res, res.locals.identity as Identity, undefined),
  );
  // OAuth's metadata, registration, consent and token endpoints (src/auth/), when tokens are on.
  app.use((req, res, next) => (oauth ? oauth.router(req, res, next) : next()));
  if (options.console) app.use('/console', options.console.router);
  app.use(notFound);
  app.use(jsonErrors(maxBodyBytes, logger));

  const mcpPost: McpPostRoute = {
    guard,
    track,
    identify: (req, res) => identify(authenticate, logger, req, res),
    handle: (req, res, identity, body) =>
      claimsModernRevision(req, body)
        ? modern.handle(req, res, identity, body, () => sessions.handle(req, res, identity, body))
        : sessions.handle(req, res, identity, body),
    maxBodyBytes,
    logger,
  };
  const limits = connectionLimits(options);
  const httpServer = createHttpServer(limits.server, (req, res) => {
    if (!closing && isMcpPost(req)) void serveMcpPost(mcpPost, req, res);
    else app(req, res);
  });
  httpServer.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  listenPort = (httpServer.address() as AddressInfo).port;
  const urlHost =
    options.host.includes(':') && !options.host.startsWith('[') ? `[${options.host}]` : options.host;
  const url = `http://${urlHost}:${listenPort}/mcp`;
  if (options.auth) {
    const issuer = publicOrigin ?? new URL(url).origin;
    oauth = createOAuthServer({
      publicUrl: issuer,
      store: store.oauth,
      clock: store.options.clock,
      logger,
      // Loopback metadata documents only for a development server: one behind a TLS proxy binds loopback too.
      loopback: isLoopbackUrl(issuer),
      isAdminToken: async (secret) => (await store.verifyToken(secret))?.admin === true,
      ...(options.accessTokenTtlMs ? { accessTtlMs: options.accessTokenTtlMs } : {}),
      ...(options.clientMetadataCa ? { clientMetadataCa: options.clientMetadataCa } : {}),
      limiter: store.limiter,
      ...(store.options.rateLimits ? { rateLimits: store.options.rateLimits } : {}),
    });
    if (publicOrigin && !options.trustProxy) {
      logger.warn(
        { publicUrl: publicOrigin },
        'behind a proxy with --trust-proxy 0: rate limits count every client as the proxy; set --trust-proxy 1 for one proxy',
      );
    }
  }
  sessions.startIdleExpiry();

  if (!options.auth) {
    logger.warn(
      { channel: options.channel, host: options.host },
      `AUTHENTICATION IS OFF (--no-auth): every HTTP connection is a customer on channel "${options.channel}". For local development and test suites only.`,
    );
  }
  logger.info(
    {
      url,
      auth: options.auth,
      ...(oauth ? { oauthIssuer: oauth.issuer } : {}),
      allowedHosts: options.allowedHosts,
      maxSessions: options.maxSessions,
      sessionIdleMs: options.sessionIdleMs,
    },
    'serving MCP over Streamable HTTP',
  );

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      sessions.stopIdleExpiry();
      // Stops listening and drops idle keep-alive sockets; resolves once every socket is gone.
      const serverClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      if (inFlight > 0) {
        logger.info({ inFlight }, 'waiting for requests in flight');
        const finished = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), drainMs);
          drained = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        if (!finished)
          logger.warn(
            { inFlight, drainMs },
            'requests still in flight after the drain deadline; closing anyway',
          );
      }
      await sessions.closeAll('server shutting down');
      await modern.closeAll();
      httpServer.closeAllConnections();
      await serverClosed;
      logger.info({ url }, 'HTTP server closed');
    })();
    return closed;
  };

  return { url, port: listenPort, close };
}
