// MCP sessions over HTTP: routing by Mcp-Session-Id, opening on initialize, the cap and its eviction, idle expiry.
/*
 * - Stateful sessions (FIELD-NOTES: stateless ran 2-3x slower). One McpServer and one transport
 *   per session, routed by `mcp-session-id`: our LeanHttpTransport (JSON replies), or with
 *   `transport: 'sdk'` the SDK's StreamableHTTPServerTransport (SSE replies), kept for comparison.
 *   The session id is minted here (randomUUID) and the session registered before the transport
 *   sees the initialize request, so the session cap is exact under concurrent initializes.
 * - A session keeps the identity of its initialize request. A later request on it must carry the
 *   same credential (same credentialId), otherwise 403: a session id alone never lends another
 *   channel's identity.
 * - Idle means no request: a session without a request for `idleMs` is closed by an unref'd
 *   timer, even if its GET stream is still open; a session with a request in flight is never
 *   idle. Nothing lives in a session but the identity (carts are in the store), so a client
 *   whose session was closed just initializes again.
 * - At `maxSessions`, a new initialize evicts the longest-idle session that has no request in
 *   flight (logged as a warning): abandoned sessions (clients that never DELETE) must not lock
 *   everyone out until they expire, and evicting costs the victim only a re-initialize. If every
 *   session is busy, the initialize gets 503 with Retry-After.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../logger.js';
import {
  isInitializeRequest,
  type McpServer,
  StreamableHTTPServerTransport,
  type Transport,
} from '../../mcp/sdk.js';
import type { Identity } from './credentials.js';
import { isJsonContentType, LeanHttpTransport } from './lean-transport.js';
import { hasBody } from './mcp-post.js';
import { sendRpcError } from './replies.js';

/** Which Streamable HTTP implementation serves the sessions: ours (default) or the SDK's. */
export type HttpTransportKind = 'lean' | 'sdk';

export interface SessionOptions {
  transport: HttpTransportKind;
  maxSessions: number;
  idleMs: number;
  /** A new MCP server for a session of this identity. */
  createServer(identity: Identity): McpServer;
}

/** What both transports offer: the SDK's Transport, fed one HTTP request at a time. */
type SessionTransport = Transport & {
  handleRequest(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void>;
};

interface Session {
  id: string;
  identity: Identity;
  transport: SessionTransport;
  server: McpServer;
  openedAt: number;
  lastActive: number;
  inFlight: number;
  closed: boolean;
}

const shortId = (sessionId: string) => sessionId.slice(0, 8);

export class Sessions {
  private readonly table = new Map<string, Session>();
  private expiry: NodeJS.Timeout | undefined;

  /** Throws at once on a cap or an idle time that cannot work. */
  constructor(
    private readonly options: SessionOptions,
    private readonly logger: Logger,
  ) {
    if (!Number.isSafeInteger(options.maxSessions) || options.maxSessions < 1) {
      throw new Error(`--max-sessions must be a whole number of at least 1, got ${options.maxSessions}`);
    }
    if (!(options.idleMs > 0)) throw new Error(`--session-idle must be positive, got ${options.idleMs} ms`);
  }

  get size(): number {
    return this.table.size;
  }

  /** The /mcp route, after authentication and body parsing (`body`: the parsed JSON of a POST). */
  async handle(req: IncomingMessage, res: ServerResponse, identity: Identity, body: unknown): Promise<void> {
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const session = this.table.get(sessionId);
      if (!session) {
        sendRpcError(
          res,
          404,
          -32001,
          'Session not found: it ended or expired. Start a new session with initialize.',
        );
        return;
      }
      if (session.identity.credentialId !== identity.credentialId) {
        this.logger.warn(
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
      await this.serve(session, req, res, body);
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
    if (!hasBody(req) || !isJsonContentType(req.headers['content-type'])) {
      sendRpcError(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json.');
      return;
    }
    if (!isInitializeRequest(body)) {
      sendRpcError(
        res,
        400,
        -32000,
        'Bad Request: no session. Send initialize first, then the Mcp-Session-Id it returns.',
      );
      return;
    }
    await this.initialize(identity, req, res, body);
  }

  /** Closes sessions idle for longer than `idleMs`, on an unref'd timer, until closeAll(). */
  startIdleExpiry(): void {
    const { idleMs } = this.options;
    const every = Math.max(10, Math.min(60_000, Math.floor(idleMs / 2)));
    this.expiry = setInterval(() => {
      const now = Date.now();
      for (const session of [...this.table.values()]) {
        if (session.inFlight === 0 && now - session.lastActive > idleMs) {
          void this.close(session, `idle for more than ${idleMs} ms`);
        }
      }
    }, every);
    this.expiry.unref();
  }

  stopIdleExpiry(): void {
    clearInterval(this.expiry);
  }

  async closeAll(reason: string): Promise<void> {
    this.stopIdleExpiry();
    await Promise.all([...this.table.values()].map((session) => this.close(session, reason)));
  }

  private async initialize(
    identity: Identity,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
  ): Promise<void> {
    const { maxSessions } = this.options;
    if (this.table.size >= maxSessions) {
      const victim = this.longestIdle();
      if (!victim) {
        this.logger.warn(
          { sessions: this.table.size, channel: identity.channel },
          'refused a new session: every session is busy',
        );
        sendRpcError(res, 503, -32000, 'Too many sessions are busy; retry shortly.', { 'Retry-After': '5' });
        return;
      }
      this.logger.warn(
        {
          channel: victim.identity.channel,
          session: shortId(victim.id),
          idleMs: Date.now() - victim.lastActive,
          max: maxSessions,
        },
        'session cap reached: evicting the longest-idle session',
      );
      // Not awaited: the victim leaves the table at once, and the new session takes its place in the
      // same tick, so concurrent initializes cannot overshoot the cap.
      void this.close(victim, 'evicted at the session cap');
    }
    const session = await this.open(identity);
    try {
      await this.serve(session, req, res, body);
    } finally {
      if (session.transport.sessionId === undefined) {
        await this.close(session, 'initialize failed');
      } else if (!session.closed) {
        this.logger.info(
          {
            channel: identity.channel,
            admin: identity.admin,
            session: shortId(session.id),
            sessions: this.table.size,
          },
          'MCP session opened',
        );
      }
    }
  }

  private async open(identity: Identity): Promise<Session> {
    const id = randomUUID();
    const transport: SessionTransport =
      this.options.transport === 'sdk'
        ? new StreamableHTTPServerTransport({ sessionIdGenerator: () => id })
        : new LeanHttpTransport(id);
    const server = this.options.createServer(identity);
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
    transport.onclose = () => this.forget(session, 'ended by the client');
    transport.onerror = (err) =>
      this.logger.debug({ session: shortId(id), err: err.message }, 'MCP transport refused a request');
    this.table.set(id, session);
    await server.connect(transport);
    return session;
  }

  private async serve(
    session: Session,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
  ): Promise<void> {
    session.lastActive = Date.now();
    // A GET stream stays open for the life of the session: it is not a request in flight.
    if (req.method === 'POST') {
      session.inFlight += 1;
      res.once('close', () => {
        session.inFlight -= 1;
        session.lastActive = Date.now();
      });
    }
    await session.transport.handleRequest(req, res, body);
  }

  /** The session that has waited longest without a request, among those with none in flight. */
  private longestIdle(): Session | undefined {
    let victim: Session | undefined;
    for (const session of this.table.values()) {
      if (session.inFlight === 0 && (!victim || session.lastActive < victim.lastActive)) victim = session;
    }
    return victim;
  }

  private async close(session: Session, reason: string): Promise<void> {
    this.forget(session, reason);
    await session.server
      .close()
      .catch((err: unknown) =>
        this.logger.warn({ err, session: shortId(session.id) }, 'closing a session failed'),
      );
  }

  /** Drops the session from the table and logs it; idempotent. */
  private forget(session: Session, reason: string): void {
    if (session.closed) return;
    session.closed = true;
    this.table.delete(session.id);
    this.logger.info(
      {
        channel: session.identity.channel,
        admin: session.identity.admin,
        session: shortId(session.id),
        reason,
        openMs: Date.now() - session.openedAt,
        sessions: this.table.size,
      },
      'MCP session closed',
    );
  }
}
