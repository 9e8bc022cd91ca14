// serveHttp(): wires the guard, credentials, sessions and replies into one express app, listens, and drains on close.
/*
 * - /healthz needs no token and skips the Host/Origin checks, so load balancer and container
 *   probes that address the server by IP work; it tells only the session count.
 * - Our own body parser (default 1 MB) so that the limit, malformed JSON (-32700) and wrong
 *   content types all answer JSON-RPC errors, never express's HTML pages.
 * - close(): new requests get 503 and the listener stops; POSTs already received (tool calls
 *   included) are waited for up to `drainMs` (10 s); then every session is closed and the
 *   remaining sockets (GET streams, idle keep-alives) are closed. The store stays open: the
 *   caller owns it.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { createOAuthServer, type OAuthServer, parsePublicUrl } from '../../auth/server.js';
import type { Logger } from '../../logger.js';
import { createServer } from '../../mcp/server.js';
import type { InventoryStore } from '../../storage/store.js';
import {
  type BearerVerifier,
  createAuthenticate,
  type Identity,
  identify,
  requireIdentity,
  staticTokens,
} from './credentials.js';
import { assertSafeBind, hostGuard, isLoopbackUrl } from './guard.js';
import { isPlainMcpPost, type McpPostRoute, serveMcpPost } from './mcp-post.js';
import { jsonErrors, notFound, sendRpcError } from './replies.js';
import { type HttpTransportKind, Sessions } from './sessions.js';

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
  version: string;
  /**
   * The Streamable HTTP implementation: 'lean' (ours, JSON replies) or 'sdk' (the SDK's, SSE replies), kept
   * for comparison. Default: STOCKLOCK_HTTP_TRANSPORT, else 'lean'.
   */
  transport?: HttpTransportKind;
  /** Largest request body; default 1 MB. */
  maxBodyBytes?: number;
  /** How long a verified token is trusted without asking the store again; default 5 s. */
  tokenCacheMs?: number;
  /** How long close() waits for requests in flight; default 10 s. */
  drainMs?: number;
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
}

export interface HttpServerHandle {
  /** The MCP endpoint, e.g. http://127.0.0.1:3000/mcp. */
  url: string;
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Stops taking requests, finishes those in flight, closes every session. Leaves the store open. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const DEFAULT_TOKEN_CACHE_MS = 5_000;
const DEFAULT_DRAIN_MS = 10_000;
/**
 * How long an idle keep-alive connection stays open. Node 20's 5 s is shorter than what clients
 * and proxies keep idle connections for (httpx 5 s, load balancers 60 s), and even undici, which
 * follows the advertised `Keep-Alive: timeout=5` less 2 s, reuses a socket the server is closing
 * once a loaded machine delays its timers: the POST on it fails with "other side closed" and is
 * never retried. 65 s (Node 26's new default, nodejs/node#62782) outlasts them all; close() still ends idle sockets at once.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** The transport named by STOCKLOCK_HTTP_TRANSPORT (lean when unset); throws on any other name. */
export function httpTransportFromEnv(value = process.env.STOCKLOCK_HTTP_TRANSPORT): HttpTransportKind {
  const name = value?.trim().toLowerCase() || 'lean';
  if (name !== 'lean' && name !== 'sdk') {
    throw new Error(`STOCKLOCK_HTTP_TRANSPORT must be lean or sdk, got "${value}"`);
  }
  return name;
}

/** Serves MCP over Streamable HTTP until close(); throws at once on an unsafe configuration. */
export async function serveHttp(
  store: InventoryStore,
  options: HttpOptions,
  logger: Logger,
): Promise<HttpServerHandle> {
  assertSafeBind(options);
  const transport = options.transport ?? httpTransportFromEnv();
  const sessions = new Sessions(
    {
      transport,
      maxSessions: options.maxSessions,
      idleMs: options.sessionIdleMs,
      createServer: (identity) =>
        createServer({
          store,
          channel: identity.channel,
          admin: identity.admin,
          ...(identity.holder !== undefined ? { holder: identity.holder } : {}),
          logger,
          version: options.version,
        }),
    },
    logger,
  );
  let listenPort = options.port;
  const publicOrigin = options.publicUrl ? parsePublicUrl(options.publicUrl) : undefined;
  // The public origin is where browsers post the consent form from, so Host and Origin accept it.
  const guard = hostGuard(
    [...options.allowedHosts, ...(publicOrigin ? [publicOrigin] : [])],
    () => listenPort,
    logger,
  );
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
  const trackRequest = (req: Request, res: Response, next: () => void) => {
    track(req, res);
    next();
  };

  const app = express();
  app.disable('x-powered-by');
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
  if (options.payments) app.use('/payments', trackRequest, options.payments.router);
  // /mcp first: every tool call would otherwise walk the OAuth router's routes before reaching it.
  app.all(
    '/mcp',
    trackRequest,
    requireIdentity(authenticate, logger),
    express.json({ limit: maxBodyBytes }),
    (req: Request, res: Response) => sessions.handle(req, res, res.locals.identity as Identity, req.body),
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
    handle: (req, res, identity, body) => sessions.handle(req, res, identity, body),
    maxBodyBytes,
    logger,
  };
  const httpServer = createHttpServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
    // Tool calls skip express (mcp-post.ts); the shutdown's 503 and every other shape stay with it.
    if (!closing && isPlainMcpPost(req)) void serveMcpPost(mcpPost, req, res);
    else app(req, res);
  });
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
    });
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
      transport,
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
      httpServer.closeAllConnections();
      await serverClosed;
      logger.info({ url }, 'HTTP server closed');
    })();
    return closed;
  };

  return { url, port: listenPort, close };
}
