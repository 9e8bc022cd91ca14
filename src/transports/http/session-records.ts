// A session's record in the database, and bringing a session opened elsewhere back to life in this process.
/*
 * Any server of a pool must answer any session, so each session is a row (storage/mcp-sessions.ts) besides the
 * McpServer serving it in the process that has it in memory. A server that meets a session id it does not hold
 * reads the row and builds a server for it; one that holds it marks it used every `recheckMs`, which is also how
 * it learns that the session ended elsewhere (DELETE on another server, eviction at the credential's cap).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from '../../logger.js';
import type { JSONRPCMessage, McpServer, Transport } from '../../mcp/sdk.js';
import type { McpSessionStore, StoredMcpSession } from '../../storage/mcp-sessions.js';
import type { Identity } from './credentials.js';
import type { LeanHttpTransport } from './lean-transport.js';

/** How often a server marks a session used in the database and checks it still exists, at most. */
export const SESSION_RECHECK_MS = 5_000;

/** The recheck interval for an idle time: a quarter of it when that is shorter than SESSION_RECHECK_MS. */
export function recheckInterval(idleMs: number): number {
  return Math.max(1, Math.min(SESSION_RECHECK_MS, Math.floor(idleMs / 4)));
}

/** Session ids are random UUIDs: one SHA-256 is enough, nothing to brute-force. */
export function hashSessionId(sessionId: string): string {
  return createHash('sha256').update(sessionId, 'utf8').digest('hex');
}

/** What a server needs to serve the session again: the initialize request's params, nothing else of the body. */
export function initParams(initialize: unknown): string {
  const params = (initialize as { params?: Record<string, unknown> }).params ?? {};
  return JSON.stringify({
    protocolVersion: params.protocolVersion,
    capabilities: params.capabilities ?? {},
    clientInfo: params.clientInfo ?? { name: 'unknown', version: '0' },
  });
}

/**
 * Brings a freshly connected server to where the session's first server stood after its handshake: the stored
 * initialize request is answered in process (its reply never leaves), then `notifications/initialized`. The
 * server negotiates the same version and records the same client capabilities and info as the first time.
 */
export async function replayInitialize(transport: Transport, init: string): Promise<void> {
  const id = `stocklock-restore-${randomUUID()}`;
  const send = transport.send.bind(transport);
  await new Promise<void>((resolve, reject) => {
    transport.send = async (message, options) => {
      if (!('id' in message) || message.id !== id) return send(message, options);
      transport.send = send;
      if ('error' in message)
        reject(new Error(`the stored initialize was refused: ${message.error.message}`));
      else resolve();
    };
    const request = { jsonrpc: '2.0', id, method: 'initialize', params: JSON.parse(init) } as JSONRPCMessage;
    transport.onmessage?.(request);
  });
  transport.onmessage?.({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
}

/**
 * What closing a session does beyond this process: `pool` ends it for every server (its row goes), `idle` ends it
 * unless another server recorded a use since this one last did, `local` only unloads it here (its row stays, and
 * any server, this one included, serves it again from the row).
 */
export type Scope = 'pool' | 'idle' | 'local';

export interface Session {
  id: string;
  idHash: string;
  /** The initialize params, as stored (session-records.ts). */
  init: string;
  identity: Identity;
  transport: LeanHttpTransport;
  server: McpServer;
  openedAt: number;
  lastActive: number;
  /** When this server last recorded a use in the database (and so learnt the session still exists). */
  recordedAt: number;
  inFlight: number;
  closed: boolean;
}

/** What a session's row is made from. */
export interface SessionFacts {
  id: string;
  idHash: string;
  init: string;
  identity: { credentialId: string; channel: string };
  openedAt: number;
}

/** The database side of the sessions table: rows written, touched and deleted, and deletions waited for. */
export class SessionRecords {
  /** Rows being deleted: a lookup waits for them, so a session ended here is not served again from its row. */
  private readonly ending = new Map<string, Promise<unknown>>();
  readonly recheckMs: number;

  constructor(
    private readonly store: McpSessionStore,
    private readonly idleMs: number,
    private readonly logger: Logger,
  ) {
    this.recheckMs = recheckInterval(idleMs);
  }

  /** The row of a session used at `now`: it expires once idle for idleMs plus the recheck interval (uses between rechecks are not written). */
  row(session: SessionFacts, now: number): StoredMcpSession {
    return {
      id_hash: session.idHash,
      credential_id: session.identity.credentialId,
      channel: session.identity.channel,
      init: session.init,
      created_at: session.openedAt,
      last_used_at: now,
      expires_at: now + this.idleMs + this.recheckMs,
    };
  }

  /** Writes a new session's row; returns the rows the credential's cap dropped. */
  open(session: SessionFacts, now: number, keep: number): Promise<string[]> {
    return this.store.open(this.row(session, now), keep);
  }

  /** The live row of a session id, once any deletion of it under way here has finished. */
  async lookup(sessionId: string, now: number): Promise<StoredMcpSession | undefined> {
    const idHash = hashSessionId(sessionId);
    await this.ending.get(idHash);
    return this.store.get(idHash, now);
  }

  /** Records a use: false when the session ended elsewhere or expired; true too when the database cannot say. */
  async touch(session: SessionFacts, now: number): Promise<boolean> {
    try {
      return await this.store.touch(session.idHash, now, now + this.idleMs + this.recheckMs);
    } catch (err) {
      this.logger.warn(
        { err, session: session.id.slice(0, 8) },
        'could not record a session use; serving it',
      );
      return true;
    }
  }

  /**
   * Deletes the row, once (`idle`: unless another server recorded a use after `recordedAt`). Resolves when it
   * is gone; a failure is logged, and the sweeper drops the row once it expires.
   */
  end(session: SessionFacts, scope: 'pool' | 'idle', recordedAt: number): Promise<unknown> {
    const under = this.ending.get(session.idHash);
    if (under) return under;
    const deleting =
      scope === 'pool' ? this.store.end(session.idHash) : this.store.endIdle(session.idHash, recordedAt);
    const ending = deleting
      .catch((err: unknown) =>
        this.logger.warn({ err, session: session.id.slice(0, 8) }, 'could not end a session record'),
      )
      .finally(() => this.ending.delete(session.idHash));
    this.ending.set(session.idHash, ending);
    return ending;
  }

  /** The deletion of this session's row under way, if any. */
  ended(idHash: string): Promise<unknown> | undefined {
    return this.ending.get(idHash);
  }
}
