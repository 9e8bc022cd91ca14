// MCP sessions over HTTP: routing by Mcp-Session-Id, opening on initialize, the caps and their eviction, idle expiry.
// One McpServer and one transport per session: stateless serving ran two to three times slower.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../domain/clock.js';
import type { Logger } from '../../logger.js';
import { isInitializeRequest, type McpServer } from '../../mcp/sdk.js';
import { hasBody } from './body.js';
import type { Identity } from './credentials.js';
import { isJsonContentType, LeanHttpTransport } from './lean-transport.js';
import { sendRpcError } from './replies.js';

export interface SessionOptions {
  maxSessions: number;
  /** Most sessions one credential (a static token, an OAuth grant) may hold; its own are evicted first. */
  maxSessionsPerCredential: number;
  idleMs: number;
  clock: Clock;
  /** A new MCP server for a session of this identity. */
  createServer(identity: Identity): McpServer;
}

interface Session {
  id: string;
  identity: Identity;
  transport: LeanHttpTransport;
  server: McpServer;
  openedAt: number;
  lastActive: number;
  inFlight: number;
  closed: boolean;
}

const shortId = (sessionId: string) => sessionId.slice(0, 8);

export class Sessions {
  private readonly table = new Map<string, Session>();
  /** The open sessions of each credential. */
  private readonly byCredential = new Map<string, Set<Session>>();
  private expiry: NodeJS.Timeout | undefined;

  /** Throws at once on a cap or an idle time that cannot work. */
  constructor(
    private readonly options: SessionOptions,
    private readonly logger: Logger,
  ) {
    for (const [flag, value] of [
      ['--max-sessions', options.maxSessions],
      ['--max-sessions-per-credential', options.maxSessionsPerCredential],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new Error(`${flag} must be a whole number of at least 1, got ${value}`);
      }
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
      // Idle past its time is expired, whether or not the timer has come round yet.
      if (session && this.idleTooLong(session, this.options.clock.now())) {
        void this.close(session, `idle for more than ${this.options.idleMs} ms`);
      }
      if (!session || session.closed) {
        sendRpcError(
          res,
          404,
          -32001,
          'Session not found: it ended or expired. Start a new session with initialize.',
        );
        return;
      }
      // A session id alone never lends another credential's identity.
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

  /** Closes sessions idle for longer than `idleMs`, checked on an unref'd timer until closeAll(). */
  startIdleExpiry(): void {
    const { idleMs } = this.options;
    const every = Math.max(10, Math.min(60_000, Math.floor(idleMs / 2)));
    this.expiry = setInterval(() => this.expireIdle(), every);
    this.expiry.unref();
  }

  /** Closes every session without a request for longer than `idleMs`; one in flight is never idle. */
  expireIdle(): void {
    const now = this.options.clock.now();
    for (const session of [...this.table.values()]) {
      if (this.idleTooLong(session, now))
        void this.close(session, `idle for more than ${this.options.idleMs} ms`);
    }
  }

  private idleTooLong(session: Session, now: number): boolean {
    return session.inFlight === 0 && now - session.lastActive > this.options.idleMs;
  }

  stopIdleExpiry(): void {
    clearInterval(this.expiry);
  }

  /** Closes every session; logs one line for them all, so a slow log cannot stretch the shutdown. */
  async closeAll(reason: string): Promise<void> {
    this.stopIdleExpiry();
    const sessions = [...this.table.values()];
    for (const session of sessions) this.forget(session, reason, true);
    if (sessions.length > 0) this.logger.info({ sessions: sessions.length, reason }, 'MCP sessions closed');
    await Promise.all(sessions.map((session) => this.closeServer(session)));
  }

  private async initialize(
    identity: Identity,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
  ): Promise<void> {
    const { maxSessions, maxSessionsPerCredential } = this.options;
    const own = this.byCredential.get(identity.credentialId);
    // A credential at its own cap makes room from its own sessions, never from anyone else's.
    const full =
      own !== undefined && own.size >= maxSessionsPerCredential
        ? { victim: this.longestIdle(own), cap: 'credential' }
        : this.table.size >= maxSessions
          ? { victim: this.evictionCandidate(), cap: 'server' }
          : undefined;
    if (full) {
      const { victim, cap } = full;
      if (!victim) {
        this.logger.warn(
          { sessions: this.table.size, channel: identity.channel, cap },
          'refused a new session: every session is busy',
        );
        sendRpcError(res, 503, -32000, 'Too many sessions are busy; retry shortly.', { 'Retry-After': '5' });
        return;
      }
      this.logger.warn(
        {
          channel: victim.identity.channel,
          session: shortId(victim.id),
          idleMs: this.options.clock.now() - victim.lastActive,
          cap,
          max: cap === 'credential' ? maxSessionsPerCredential : maxSessions,
        },
        'session cap reached: evicting the longest-idle session',
      );
      // Not awaited: the victim leaves the table at once, and the new session takes its place in the
      // same tick, so concurrent initializes cannot overshoot the cap.
      void this.close(victim, `evicted at the ${cap} session cap`);
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
    // Minted and registered before the transport sees the initialize, so the caps are exact under concurrency.
    const id = randomUUID();
    const transport = new LeanHttpTransport(id);
    const server = this.options.createServer(identity);
    const now = this.options.clock.now();
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
    const own = this.byCredential.get(identity.credentialId) ?? new Set<Session>();
    own.add(session);
    this.byCredential.set(identity.credentialId, own);
    await server.connect(transport);
    return session;
  }

  private async serve(
    session: Session,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
  ): Promise<void> {
    const { clock } = this.options;
    session.lastActive = clock.now();
    // A GET stream stays open for the life of the session: it is not a request in flight.
    if (req.method === 'POST') {
      session.inFlight += 1;
      res.once('close', () => {
        session.inFlight -= 1;
        session.lastActive = clock.now();
      });
    }
    await session.transport.handleRequest(req, res, body);
  }

  /** The session that has waited longest without a request, among those with none in flight. */
  private longestIdle(sessions: Iterable<Session>): Session | undefined {
    let victim: Session | undefined;
    for (const session of sessions) {
      if (session.inFlight === 0 && (!victim || session.lastActive < victim.lastActive)) victim = session;
    }
    return victim;
  }

  /**
   * At the server's cap: an OAuth grant's session before a static token's, then the longest-idle session of
   * the credential holding the most, so that whoever holds many sessions loses one of theirs before someone
   * holding one loses theirs. Grants go first because anyone who clicks Allow gets one and one party can hold
   * dozens, each under the per-credential cap: spread over them, its sessions would otherwise outnumber a
   * merchant's token serving many customers and take that token's sessions.
   */
  private evictionCandidate(): Session | undefined {
    let victim: Session | undefined;
    let victimRank = [0, 0];
    for (const session of this.table.values()) {
      if (session.inFlight > 0) continue;
      const granted = session.identity.holder !== undefined ? 1 : 0;
      const group = this.byCredential.get(session.identity.credentialId)?.size ?? 0;
      const [victimGranted = 0, victimGroup = 0] = victimRank;
      if (
        !victim ||
        granted > victimGranted ||
        (granted === victimGranted &&
          (group > victimGroup || (group === victimGroup && session.lastActive < victim.lastActive)))
      ) {
        victim = session;
        victimRank = [granted, group];
      }
    }
    return victim;
  }

  private async close(session: Session, reason: string): Promise<void> {
    this.forget(session, reason);
    await this.closeServer(session);
  }

  private async closeServer(session: Session): Promise<void> {
    await session.server
      .close()
      .catch((err: unknown) =>
        this.logger.warn({ err, session: shortId(session.id) }, 'closing a session failed'),
      );
  }

  /** Drops the session from the tables and logs it (unless `quiet`); idempotent. */
  private forget(session: Session, reason: string, quiet = false): void {
    if (session.closed) return;
    session.closed = true;
    this.table.delete(session.id);
    const own = this.byCredential.get(session.identity.credentialId);
    own?.delete(session);
    if (own?.size === 0) this.byCredential.delete(session.identity.credentialId);
    if (quiet) return;
    this.logger.info(
      {
        channel: session.identity.channel,
        admin: session.identity.admin,
        session: shortId(session.id),
        reason,
        openMs: this.options.clock.now() - session.openedAt,
        sessions: this.table.size,
      },
      'MCP session closed',
    );
  }
}
