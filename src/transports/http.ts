// Streamable HTTP on /mcp: bearer tokens, sessions, Host/Origin checks, idle expiry, a session cap, a graceful close.
/*
 * Decisions, each the rule plus its reason:
 *
 * - Stateful sessions (FIELD-NOTES: stateless ran 2-3x slower). One McpServer and one
 *   StreamableHTTPServerTransport per session, routed by `mcp-session-id`. The session id is
 *   minted here (randomUUID) and the session registered before the SDK sees the initialize
 *   request, so the session cap is exact under concurrent initializes.
 * - Identity comes from the token of the initialize request: the session keeps its token id,
 *   channel and admin flag. A later request on that session must carry the same token (same
 *   token id), otherwise 403: a session id alone never lends another channel's identity.
 *   Every request is authenticated again, so a revoked token stops working mid-session.
 * - Verified tokens are cached for `tokenCacheMs` (5 s) keyed by the token's SHA-256; the raw
 *   token is neither kept nor logged. Revocation therefore takes effect within 5 s. Failed
 *   verifications are not cached, so a token created a moment ago works at once.
 * - `auth: false` (--no-auth) is refused unless bound to loopback; every session is then a
 *   customer on `options.channel`.
 * - Binding beyond loopback needs allowedHosts. Host must be a loopback name with the port we
 *   listen on, or match allowedHosts (an entry `name` matches any port, `name:port` only that
 *   port, `https://name` is matched by hostname). An absent Origin is fine (non-browser
 *   clients send none); a present one must be a loopback origin or match allowedHosts (a full
 *   origin entry must match exactly). Both checks answer 403 JSON before the body is read.
 * - /healthz needs no token and skips the Host/Origin checks, so load balancer and container
 *   probes that address the server by IP work; it tells only the session count.
 * - Our own body parser (default 1 MB) so that the limit, malformed JSON (-32700) and wrong
 *   content types all answer JSON-RPC errors, never express's HTML pages.
 * - Idle means no request: a session without a request for `sessionIdleMs` is closed by an
 *   unref'd timer, even if its GET stream is still open; a session with a request in flight is
 *   never idle. Nothing lives in a session but the identity (carts are in the store), so a
 *   client whose session was closed just initializes again.
 * - At `maxSessions`, a new initialize evicts the longest-idle session that has no request in
 *   flight (logged as a warning): abandoned sessions (clients that never DELETE) must not lock
 *   everyone out until they expire, and evicting costs the victim only a re-initialize. If every
 *   session is busy, the initialize gets 503 with Retry-After.
 * - close(): new requests get 503 and the listener stops; POSTs already received (tool calls
 *   included) are waited for up to `drainMs` (10 s); then every session is closed and the
 *   remaining sockets (GET streams, idle keep-alives) are closed. The store stays open: the
 *   caller owns it.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from '../logger.js';
import { createServer } from '../mcp/server.js';
import { hashToken } from '../storage/shared.js';
import type { InventoryStore } from '../storage/store.js';

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
  /** Largest request body; default 1 MB. */
  maxBodyBytes?: number;
  /** How long a verified token is trusted without asking the store again; default 5 s. */
  tokenCacheMs?: number;
  /** How long close() waits for requests in flight; default 10 s. */
  drainMs?: number;
  /** The merchant console (src/console/), mounted at /console behind the same Host/Origin checks. */
  console?: { router: RequestHandler };
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
const TOKEN_CACHE_MAX_ENTRIES = 10_000;
const REALM = 'Bearer realm="stocklock"';

const LOOPBACK_BIND = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);
/** Loopback as WHATWG URL spells hostnames (IPv6 in brackets). */
const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', '[::1]', 'localhost']);

interface Identity {
  /** The token id, or 'no-auth' when auth is off. */
  tokenId: string;
  channel: string;
  admin: boolean;
}

interface Session {
  id: string;
  identity: Identity;
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  openedAt: number;
  lastActive: number;
  inFlight: number;
  closed: boolean;
}

interface HostRule {
  hostname: string;
  port?: string;
  /** Set when the entry was a full origin (scheme://host[:port]): Origin must equal it. */
  origin?: string;
}

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_BIND.has(host.toLowerCase());
}

function parseHostRule(entry: string): HostRule {
  const text = entry.trim().toLowerCase();
  try {
    if (text.includes('://')) {
      const url = new URL(text);
      if (url.pathname !== '/' || url.search || url.hash) throw new Error('not an origin');
      return { hostname: url.hostname, origin: url.origin };
    }
    const url = new URL(`http://${text}`);
    if (url.pathname !== '/' || url.search || url.hash || url.username) throw new Error('not a host');
    return { hostname: url.hostname, port: url.port || undefined };
  } catch {
    throw new Error(
      `allowed host "${entry}" is not a host name, host:port or origin (e.g. shop.example.com, shop.example.com:8443, https://shop.example.com)`,
    );
  }
}

function effectivePort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}

function hostAllowed(hostHeader: string | undefined, listenPort: number, rules: HostRule[]): boolean {
  if (!hostHeader) return false;
  let url: URL;
  try {
    url = new URL(`http://${hostHeader}`);
  } catch {
    return false;
  }
  if (url.username || url.pathname !== '/') return false;
  if (LOOPBACK_HOSTNAMES.has(url.hostname) && effectivePort(url) === String(listenPort)) return true;
  return rules.some(
    (rule) => rule.hostname === url.hostname && (rule.port === undefined || rule.port === effectivePort(url)),
  );
}

function originAllowed(origin: string | undefined, rules: HostRule[]): boolean {
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // includes the opaque "null" origin of sandboxed frames and file: pages
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (LOOPBACK_HOSTNAMES.has(url.hostname)) return true;
  return rules.some((rule) =>
    rule.origin !== undefined
      ? rule.origin === url.origin
      : rule.hostname === url.hostname && (rule.port === undefined || rule.port === effectivePort(url)),
  );
}

function sendRpcError(
  res: Response,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  res.status(status).set(headers).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header ? /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header) : null;
  return match?.[1];
}

const shortId = (sessionId: string) => sessionId.slice(0, 8);

/** Verified tokens by SHA-256 for a few seconds; concurrent first uses of one token share one lookup. */
class TokenCache {
  private readonly entries = new Map<string, { identity: Promise<Identity | undefined>; until: number }>();

  constructor(
    private readonly store: InventoryStore,
    private readonly ttlMs: number,
  ) {}

  verify(token: string): Promise<Identity | undefined> {
    const key = hashToken(token);
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) return hit.identity;
    if (this.entries.size >= TOKEN_CACHE_MAX_ENTRIES) this.prune(now);
    const identity = this.store
      .verifyToken(token)
      .then((record) =>
        record ? { tokenId: record.id, channel: record.channel, admin: record.admin } : undefined,
      );
    const entry = { identity, until: now + this.ttlMs };
    this.entries.set(key, entry);
    // Only successes are remembered: a failure (or a store error) is asked again next time.
    const forget = () => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    };
    identity.then((found) => (found && this.ttlMs > 0 ? undefined : forget()), forget);
    return identity;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) if (entry.until <= now) this.entries.delete(key);
    if (this.entries.size >= TOKEN_CACHE_MAX_ENTRIES) this.entries.clear();
  }
}

/** Serves MCP over Streamable HTTP until close(); throws at once on an unsafe configuration. */
export async function serveHttp(
  store: InventoryStore,
  options: HttpOptions,
  logger: Logger,
): Promise<HttpServerHandle> {
  const loopback = isLoopbackHost(options.host);
  if (!options.auth && !loopback) {
    throw new Error(
      `--no-auth is refused on ${options.host}: without tokens the server may only bind to loopback (127.0.0.1, ::1, localhost).`,
    );
  }
  if (!loopback && options.allowedHosts.length === 0) {
    throw new Error(
      `Binding to ${options.host} needs --allowed-hosts: list the host names clients use to reach this server (e.g. --allowed-hosts shop.example.com), so DNS rebinding cannot reach it.`,
    );
  }
  if (!Number.isSafeInteger(options.maxSessions) || options.maxSessions < 1) {
    throw new Error(`--max-sessions must be a whole number of at least 1, got ${options.maxSessions}`);
  }
  if (!(options.sessionIdleMs > 0))
    throw new Error(`--session-idle must be positive, got ${options.sessionIdleMs} ms`);
  const rules = options.allowedHosts.map(parseHostRule);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  const tokens = new TokenCache(store, options.tokenCacheMs ?? DEFAULT_TOKEN_CACHE_MS);
  const noAuthIdentity: Identity = { tokenId: 'no-auth', channel: options.channel, admin: false };

  const sessions = new Map<string, Session>();
  let listenPort = options.port;
  let closing = false;
  // POSTs received and not yet answered (tool calls among them): close() waits for these.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const requestDone = () => {
    inFlight -= 1;
    if (inFlight === 0) drained?.();
  };

  /** Drops the session from the table and logs it; idempotent. */
  function forget(session: Session, reason: string): void {
    if (session.closed) return;
    session.closed = true;
    sessions.delete(session.id);
    logger.info(
      {
        channel: session.identity.channel,
        admin: session.identity.admin,
        session: shortId(session.id),
        reason,
        openMs: Date.now() - session.openedAt,
        sessions: sessions.size,
      },
      'MCP session closed',
    );
  }

  async function closeSession(session: Session, reason: string): Promise<void> {
    forget(session, reason);
    await session.server
      .close()
      .catch((err: unknown) =>
        logger.warn({ err, session: shortId(session.id) }, 'closing a session failed'),
      );
  }

  async function openSession(identity: Identity): Promise<Session> {
    const id = randomUUID();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
    const server = createServer({
      store,
      channel: identity.channel,
      admin: identity.admin,
      logger,
      version: options.version,
    });
    const now = Date.now();
    const session: Session = {
      id,
      identity,
      transport,
      server,
      openedAt: now,
      lastActive: now,
      inFlight: 0,
      closed: false,
    };
    // Set before connect(): the SDK chains its own handler after ours. Fires on DELETE and on close().
    transport.onclose = () => forget(session, 'ended by the client');
    transport.onerror = (err) =>
      logger.debug({ session: shortId(id), err: err.message }, 'MCP transport refused a request');
    sessions.set(id, session);
    await server.connect(transport);
    return session;
  }

  /** The session that has waited longest without a request, among those with none in flight. */
  function longestIdle(): Session | undefined {
    let victim: Session | undefined;
    for (const session of sessions.values()) {
      if (session.inFlight === 0 && (!victim || session.lastActive < victim.lastActive)) victim = session;
    }
    return victim;
  }

  async function handleOnSession(session: Session, req: Request, res: Response): Promise<void> {
    session.lastActive = Date.now();
    // A GET stream stays open for the life of the session: it is not a request in flight.
    if (req.method === 'POST') {
      session.inFlight += 1;
      res.once('close', () => {
        session.inFlight -= 1;
        session.lastActive = Date.now();
      });
    }
    await session.transport.handleRequest(req, res, req.body);
  }

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.status(closing ? 503 : 200).json({ status: closing ? 'closing' : 'ok', sessions: sessions.size });
  });

  app.use((req, res, next) => {
    if (closing) {
      sendRpcError(res, 503, -32000, 'Service unavailable: the server is shutting down; retry shortly.', {
        'Retry-After': '5',
        Connection: 'close',
      });
      return;
    }
    if (!hostAllowed(req.headers.host, listenPort, rules)) {
      logger.warn(
        { host: req.headers.host, ip: req.socket.remoteAddress },
        'refused a request for a foreign Host',
      );
      sendRpcError(
        res,
        403,
        -32000,
        `Forbidden: Host "${req.headers.host ?? ''}" is not allowed (see --allowed-hosts).`,
      );
      return;
    }
    if (!originAllowed(req.headers.origin, rules)) {
      logger.warn(
        { origin: req.headers.origin, ip: req.socket.remoteAddress },
        'refused a request from a foreign Origin',
      );
      sendRpcError(
        res,
        403,
        -32000,
        `Forbidden: Origin "${req.headers.origin}" is not allowed (see --allowed-hosts).`,
      );
      return;
    }
    next();
  });

  const trackRequest = (req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'POST') {
      inFlight += 1;
      res.once('close', requestDone);
    }
    next();
  };

  const authenticate = async (req: Request, res: Response, next: NextFunction) => {
    if (!options.auth) {
      res.locals.identity = noAuthIdentity;
      next();
      return;
    }
    const token = bearerToken(req.headers.authorization);
    const identity = token ? await tokens.verify(token) : undefined;
    if (!identity) {
      logger.warn(
        { ip: req.socket.remoteAddress, reason: token ? 'unknown or revoked token' : 'no bearer token' },
        'refused an unauthenticated MCP request',
      );
      sendRpcError(
        res,
        401,
        -32000,
        token
          ? 'Unauthorized: the token is unknown or revoked. Create one with `stocklock token create --channel NAME`.'
          : 'Unauthorized: send Authorization: Bearer <token> (create one with `stocklock token create --channel NAME`).',
        { 'WWW-Authenticate': token ? `${REALM}, error="invalid_token"` : REALM },
      );
      return;
    }
    res.locals.identity = identity;
    next();
  };

  const parseBody = express.json({ limit: maxBodyBytes });

  if (options.console) app.use('/console', options.console.router);

  app.all('/mcp', trackRequest, authenticate, parseBody, async (req: Request, res: Response) => {
    const identity = res.locals.identity as Identity;
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const session = sessions.get(sessionId);
      if (!session) {
        sendRpcError(
          res,
          404,
          -32001,
          'Session not found: it ended or expired. Start a new session with initialize.',
        );
        return;
      }
      if (session.identity.tokenId !== identity.tokenId) {
        logger.warn(
          {
            session: shortId(session.id),
            channel: identity.channel,
            sessionChannel: session.identity.channel,
          },
          'refused a request on a session opened by another token',
        );
        sendRpcError(res, 403, -32000, 'Forbidden: this session belongs to another token.');
        return;
      }
      await handleOnSession(session, req, res);
      return;
    }

    if (req.method !== 'POST') {
      if (req.method === 'GET' || req.method === 'DELETE') {
        sendRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required.');
      } else {
        sendRpcError(res, 405, -32000, 'Method not allowed.', { Allow: 'GET, POST, DELETE' });
      }
      return;
    }
    if (!req.is('application/json')) {
      sendRpcError(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json.');
      return;
    }
    if (!isInitializeRequest(req.body)) {
      sendRpcError(
        res,
        400,
        -32000,
        'Bad Request: no session. Send initialize first, then the Mcp-Session-Id it returns.',
      );
      return;
    }
    if (sessions.size >= options.maxSessions) {
      const victim = longestIdle();
      if (!victim) {
        logger.warn(
          { sessions: sessions.size, channel: identity.channel },
          'refused a new session: every session is busy',
        );
        sendRpcError(res, 503, -32000, 'Too many sessions are busy; retry shortly.', { 'Retry-After': '5' });
        return;
      }
      logger.warn(
        {
          channel: victim.identity.channel,
          session: shortId(victim.id),
          idleMs: Date.now() - victim.lastActive,
          max: options.maxSessions,
        },
        'session cap reached: evicting the longest-idle session',
      );
      // Not awaited: the victim leaves the table at once, and the new session takes its place in the
      // same tick, so concurrent initializes cannot overshoot the cap.
      void closeSession(victim, 'evicted at the session cap');
    }
    const session = await openSession(identity);
    try {
      await handleOnSession(session, req, res);
    } finally {
      if (session.transport.sessionId === undefined) {
        await closeSession(session, 'initialize failed');
      } else if (!session.closed) {
        logger.info(
          {
            channel: identity.channel,
            admin: identity.admin,
            session: shortId(session.id),
            sessions: sessions.size,
          },
          'MCP session opened',
        );
      }
    }
  });

  app.use((_req, res) => {
    sendRpcError(res, 404, -32000, 'Not found: the MCP endpoint is /mcp and the health check /healthz.');
  });

  // Body-parser failures and anything thrown: always JSON, never express's HTML pages.
  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const { type, status } = (err ?? {}) as { type?: string; status?: number };
    if (type === 'entity.parse.failed') {
      sendRpcError(res, 400, -32700, 'Parse error: the request body is not valid JSON.');
    } else if (type === 'entity.too.large') {
      sendRpcError(res, 413, -32000, `Request body too large: at most ${maxBodyBytes} bytes.`, {
        Connection: 'close',
      });
    } else if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
      sendRpcError(res, 415, -32000, 'Unsupported Media Type: send UTF-8 JSON.');
    } else if (typeof status === 'number' && status >= 400 && status < 500) {
      sendRpcError(res, status, -32000, `Bad Request: ${(err as Error).message}`);
    } else {
      logger.error({ err }, 'HTTP request failed');
      sendRpcError(res, 500, -32603, 'Internal error.');
    }
  });

  const httpServer = createHttpServer(app);
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

  const sweepEvery = Math.max(10, Math.min(60_000, Math.floor(options.sessionIdleMs / 2)));
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const session of [...sessions.values()]) {
      if (session.inFlight === 0 && now - session.lastActive > options.sessionIdleMs) {
        void closeSession(session, `idle for more than ${options.sessionIdleMs} ms`);
      }
    }
  }, sweepEvery);
  sweeper.unref();

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
      clearInterval(sweeper);
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
      await Promise.all(
        [...sessions.values()].map((session) => closeSession(session, 'server shutting down')),
      );
      httpServer.closeAllConnections();
      await serverClosed;
      logger.info({ url }, 'HTTP server closed');
    })();
    return closed;
  };

  return { url, port: listenPort, close };
}
