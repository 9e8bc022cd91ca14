// MCP sessions over HTTP: routing by Mcp-Session-Id, opening on initialize, the caps and their eviction, idle expiry.
// One McpServer and one transport per session: stateless serving ran two to three times slower. Each session is also
// a row in the database (session-records.ts), so a server that does not hold a session serves it from its row.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../domain/clock.js';
import type { Logger } from '../../logger.js';
import { isInitializeRequest, type McpServer } from '../../mcp/sdk.js';
import type { McpSessionStore } from '../../storage/mcp-sessions.js';
import { hasBody } from './body.js';
import type { Identity } from './credentials.js';
import { isJsonContentType, LeanHttpTransport } from './lean-transport.js';
import { sendRpcError } from './replies.js';
import { evictionCandidate, longestIdle } from './session-caps.js';
import {
  hashSessionId,
  initParams,
  replayInitialize,
  type Scope,
  type Session,
  SessionRecords,
} from './session-records.js';

export interface SessionOptions {
  maxSessions: number;
  /** Most sessions one credential (a static token, an OAuth grant) may hold; its own are evicted first. */
  maxSessionsPerCredential: number;
  idleMs: number;
  clock: Clock;
  /** A new MCP server for a session of this identity. */
  createServer(identity: Identity): McpServer;
  /** The sessions every server on the database shares. */
  records: McpSessionStore;
}

const shortId = (sessionId: string) => sessionId.slice(0, 8);

export class Sessions {
  private readonly table = new Map<string, Session>();
  /** The open sessions of each credential. */
  private readonly byCredential = new Map<string, Set<Session>>();
  /** Sessions being served again from their rows, so concurrent requests build one server. */
  private readonly restoring = new Map<string, Promise<Session | undefined>>();
  private readonly records: SessionRecords;
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
    this.records = new SessionRecords(options.records, options.idleMs, logger);
  }

  get size(): number {
    return this.table.size;
  }

  /** The /mcp route, after authentication and body parsing (`body`: the parsed JSON of a POST). */
  async handle(req: IncomingMessage, res: ServerResponse, identity: Identity, body: unknown): Promise<void> {
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const now = this.options.clock.now();
      let session = this.restoring.has(sessionId) ? undefined : this.table.get(sessionId);
      // Idle past its time is expired, whether or not the timer has come round yet.
      if (session && this.idleTooLong(session, now)) {
        void this.close(session, `idle for more than ${this.options.idleMs} ms`, 'idle');
      } else if (session && now - session.recordedAt >= this.records.recheckMs) {
        if (!(await this.record(session, now))) session = undefined;
      } else if (!session) {
        session = await this.restore(sessionId, identity, res);
        if (res.headersSent) return;
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
      if (session.identity.credentialId !== identity.credentialId) {
        this.refuseForeign(res, identity, session.id, session.identity.channel);
        return;
      }
      if (req.method === 'DELETE') {
        await this.end(session, req, res);
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
        void this.close(session, `idle for more than ${this.options.idleMs} ms`, 'idle');
    }
  }

  private idleTooLong(session: Session, now: number): boolean {
    return session.inFlight === 0 && now - session.lastActive > this.options.idleMs;
  }

  stopIdleExpiry(): void {
    clearInterval(this.expiry);
  }

  /**
   * Closes every session here; their rows stay, so the pool's other servers (or this one, restarted) serve them.
   * Logs one line for them all, so a slow log cannot stretch the shutdown.
   */
  async closeAll(reason: string): Promise<void> {
    this.stopIdleExpiry();
    const sessions = [...this.table.values()];
    for (const session of sessions) this.forget(session, reason, 'local', true);
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
        ? { victim: longestIdle(own), cap: 'credential' }
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
      void this.close(victim, `evicted at the ${cap} session cap`, 'pool');
    }
    const session = await this.open(identity, randomUUID(), initParams(body));
    // The victim's row goes first, so the credential's cap in the database does not take another one for it.
    if (full?.victim) await this.records.ended(full.victim.idHash);
    // Recorded before the initialize is answered: the client's next request may reach another server.
    this.dropEnded(await this.records.open(session, session.openedAt, maxSessionsPerCredential));
    try {
      await this.serve(session, req, res, body);
    } finally {
      if (session.transport.sessionId === undefined) {
        await this.close(session, 'initialize failed', 'pool');
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

  /** A session here, minted or from its row; registered before any await, so the caps are exact under concurrency. */
  private async open(identity: Identity, id: string, init: string): Promise<Session> {
    const transport = new LeanHttpTransport(id);
    const server = this.options.createServer(identity);
    const now = this.options.clock.now();
    const session: Session = {
      id,
      idHash: hashSessionId(id),
      init,
      identity,
      transport,
      server,
      openedAt: now,
      lastActive: now,
      recordedAt: now,
      inFlight: 0,
      closed: false,
    };
    // Set before connect(): the SDK chains its own handler after ours. Fires on DELETE (after end() deleted the
    // row) and on close().
    transport.onclose = () => this.forget(session, 'ended by the client', 'local');
    transport.onerror = (err) =>
      this.logger.debug({ session: shortId(id), err: err.message }, 'MCP transport refused a request');
    this.table.set(id, session);
    const own = this.byCredential.get(identity.credentialId) ?? new Set<Session>();
    own.add(session);
    this.byCredential.set(identity.credentialId, own);
    await server.connect(transport);
    return session;
  }

  /**
   * A session this server does not hold: served again from its row, if it exists, is live and belongs to this
   * credential. Undefined when there is none, or once the 403 or 503 is answered.
   */
  private restore(sessionId: string, identity: Identity, res: ServerResponse): Promise<Session | undefined> {
    const pending = this.restoring.get(sessionId);
    if (pending) return pending;
    const restoring = (async () => {
      const now = this.options.clock.now();
      const row = await this.records.lookup(sessionId, now);
      if (!row) return undefined;
      if (row.credential_id !== identity.credentialId) {
        this.refuseForeign(res, identity, sessionId, row.channel);
        return undefined;
      }
      if (this.table.size >= this.options.maxSessions) {
        // Making room here ends nobody's session: the one unloaded keeps its row and is served again on demand.
        const victim = this.evictionCandidate();
        if (!victim) {
          sendRpcError(res, 503, -32000, 'Too many sessions are busy; retry shortly.', {
            'Retry-After': '5',
          });
          return undefined;
        }
        void this.close(victim, 'unloaded at the server session cap', 'local');
      }
      const session = await this.open(identity, sessionId, row.init);
      try {
        await replayInitialize(session.transport, row.init);
      } catch (err) {
        this.logger.warn({ err, session: shortId(sessionId) }, 'a stored session could not be served again');
        await this.close(session, 'could not be served again', 'pool');
        return undefined;
      }
      session.transport.sessionId = sessionId;
      if (!(await this.record(session, now))) return undefined;
      this.logger.info(
        { channel: identity.channel, session: shortId(sessionId), sessions: this.table.size },
        'MCP session served from its record',
      );
      return session;
    })().finally(() => this.restoring.delete(sessionId));
    this.restoring.set(sessionId, restoring);
    return restoring;
  }

  /** Records a use; false (and unloaded here) once the session ended on another server or expired. */
  private async record(session: Session, now: number): Promise<boolean> {
    session.recordedAt = now;
    if (await this.records.touch(session, now)) return true;
    await this.close(session, 'ended on another server or expired', 'local');
    return false;
  }

  /** DELETE: the row goes first, so no server of the pool serves the session once the client has its 200. */
  private async end(session: Session, req: IncomingMessage, res: ServerResponse): Promise<void> {
    await this.records.end(session, 'pool', session.recordedAt);
    await this.serve(session, req, res, undefined);
    // A DELETE the transport refused (a bad protocol version header) changes nothing: the row comes back.
    if (!session.closed) {
      const now = this.options.clock.now();
      session.recordedAt = now;
      await this.records.open(session, now, this.options.maxSessionsPerCredential);
    }
  }

  /** Sessions the database dropped at their credential's cap: unloaded here too if this server holds them. */
  private dropEnded(idHashes: string[]): void {
    if (idHashes.length === 0) return;
    const dropped = new Set(idHashes);
    for (const session of [...this.table.values()]) {
      if (dropped.has(session.idHash))
        void this.close(session, 'evicted at the credential session cap', 'local');
    }
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

  private evictionCandidate(): Session | undefined {
    return evictionCandidate(this.table.values(), (id) => this.byCredential.get(id)?.size ?? 0);
  }

  /** A session id alone never lends another credential's identity. */
  private refuseForeign(res: ServerResponse, identity: Identity, id: string, sessionChannel: string): void {
    const fields = { session: shortId(id), channel: identity.channel, sessionChannel };
    this.logger.warn(fields, 'refused a request on a session opened by another token');
    sendRpcError(res, 403, -32000, 'Forbidden: this session belongs to another token.');
  }

  private async close(session: Session, reason: string, scope: Scope): Promise<void> {
    this.forget(session, reason, scope);
    await this.closeServer(session);
  }

  private async closeServer(session: Session): Promise<void> {
    const failed = (err: unknown) =>
      this.logger.warn({ err, session: shortId(session.id) }, 'closing a session failed');
    await session.server.close().catch(failed);
  }

  /** Drops the session from the tables, and its row as `scope` says, and logs it (unless `quiet`); idempotent. */
  private forget(session: Session, reason: string, scope: Scope, quiet = false): void {
    if (session.closed) return;
    session.closed = true;
    if (scope !== 'local') void this.records.end(session, scope, session.recordedAt);
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
