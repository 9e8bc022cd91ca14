// MCP sessions (the 2025 revisions' Mcp-Session-Id) kept in the database, so any server of a pool answers any session.
/*
 * A server keeps its sessions in memory and comes here only to open one, to end one, to find one it does
 * not know (opened on another server, or before a restart), and every few seconds to mark one used and
 * learn whether it still exists. Only the SHA-256 of a session id is stored. Timestamps are epoch ms.
 */

export interface StoredMcpSession {
  id_hash: string;
  /** The credential (static token id, OAuth grant id) the session is bound to. */
  credential_id: string;
  channel: string;
  /** The initialize request's params (protocol version, capabilities, client info), as JSON text. */
  init: string;
  created_at: number;
  last_used_at: number;
  /** Past this, with no later use recorded, the session is over; the sweeper drops it. */
  expires_at: number;
}

export interface McpSessionStore {
  /**
   * Records a new session, then drops the credential's sessions beyond its newest `keep` (by last use): one
   * transaction, one credential at a time. Returns the id hashes dropped.
   */
  open(session: StoredMcpSession, keep: number): Promise<string[]>;
  /** The session, if it exists and has not expired at `now`. */
  get(idHash: string, now: number): Promise<StoredMcpSession | undefined>;
  /** Records a use at `now` and its new expiry; false when the session is gone or expired. */
  touch(idHash: string, now: number, expiresAt: number): Promise<boolean>;
  /** Ends the session for every server. */
  end(idHash: string): Promise<void>;
  /** Ends it only if no use was recorded after `lastUsedAt` (another server may be serving it). */
  endIdle(idHash: string, lastUsedAt: number): Promise<boolean>;
  /** Drops sessions expired at `now`; returns how many. */
  prune(now: number): Promise<number>;
}
