// Console sign-in sessions, kept in the database every server shares: hashes only, absolute and idle expiry.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ConsoleSessionStore, StoredConsoleSession } from '../storage/console-queries.js';
import { hashToken } from '../storage/shared.js';

export interface ConsoleSession {
  /** SHA-256 of the cookie's secret: the row's key. */
  idHash: string;
  /** The admin token the merchant signed in with: revoking it ends the session. */
  tokenId: string;
  channel: string;
  /** Sent with every state-changing request; derived from the cookie's secret, stored only as its hash. */
  csrf: string;
  csrfHash: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  /** Set on sign-out, revocation or expiry (here or on another server), so open event streams notice. */
  ended: boolean;
}

export interface SessionLimits {
  /** A session ends this long after sign-in, however busy. */
  ttlMs: number;
  /** A session unused this long ends. */
  idleMs: number;
}

/** 12 hours: a working day; 1 hour idle: a console left open on a shared counter does not stay signed in. */
export const DEFAULT_SESSION_LIMITS: SessionLimits = { ttlMs: 12 * 3_600_000, idleMs: 3_600_000 };
/** Sign-ins kept at most: a flood of sign-ins must not grow the table without bound. */
const MAX_SESSIONS = 1_000;
/** Sessions this server remembers for its open pages' checks. */
const MAX_TRACKED = 1_000;
/** Last use is written at most this often (a tenth of the idle limit, at most a minute): not a write per request. */
const TOUCH_MAX_MS = 60_000;

export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function sameSecret(given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The session's CSRF token, derived from the cookie's secret: any server holding the cookie can put it in
 * the page, while the database (which has neither) cannot.
 */
export function csrfFor(secret: string): string {
  return createHmac('sha256', secret).update('stocklock console csrf').digest('base64url');
}

/**
 * Sessions live in the database (console_sessions), so every server on one SQLite file or PostgreSQL
 * database accepts the same cookie and a restart signs nobody out. Sessions this server has seen are
 * remembered so its open pages can be ended when the row goes (sign-out or revocation anywhere).
 */
export class SessionTable {
  private readonly tracked = new Map<string, ConsoleSession>();
  private readonly touchEveryMs: number;

  constructor(
    private readonly store: ConsoleSessionStore,
    private readonly limits: SessionLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.touchEveryMs = Math.min(TOUCH_MAX_MS, Math.ceil(limits.idleMs / 10));
  }

  /** Returns the cookie secret; only its hash and its CSRF token's hash are stored. Ended sessions are pruned. */
  async create(tokenId: string, channel: string): Promise<{ secret: string; session: ConsoleSession }> {
    const now = this.now();
    await this.store.prune(now, now - this.limits.idleMs, MAX_SESSIONS - 1);
    const secret = randomSecret();
    const csrf = csrfFor(secret);
    const stored: StoredConsoleSession = {
      id_hash: hashToken(secret),
      csrf_hash: hashToken(csrf),
      token_id: tokenId,
      channel,
      created_at: now,
      last_seen_at: now,
      expires_at: now + this.limits.ttlMs,
    };
    await this.store.insert(stored);
    return { secret, session: this.track(stored, csrf) };
  }

  /** The live session for this cookie secret, its last use recorded; an ended one is deleted. */
  async find(secret: string | undefined): Promise<ConsoleSession | undefined> {
    if (!secret) return undefined;
    const idHash = hashToken(secret);
    const stored = await this.store.get(idHash);
    if (!stored) {
      this.forget(idHash);
      return undefined;
    }
    const now = this.now();
    const session = this.track(stored, csrfFor(secret));
    if (!this.live(session, now)) {
      await this.end(idHash);
      return undefined;
    }
    if (now - session.lastSeenAt >= this.touchEveryMs) {
      await this.store.touch(idHash, now);
      session.lastSeenAt = now;
    }
    return session;
  }

  live(session: ConsoleSession, now = this.now()): boolean {
    return !session.ended && now < session.expiresAt && now - session.lastSeenAt < this.limits.idleMs;
  }

  /** Sessions this server is tracking (open pages, recent requests). */
  get size(): number {
    return this.tracked.size;
  }

  /** The tokens that tracked sessions were opened with. */
  tokenIds(): Set<string> {
    return new Set([...this.tracked.values()].map((session) => session.tokenId));
  }

  async delete(secret: string | undefined): Promise<void> {
    if (secret) await this.end(hashToken(secret));
  }

  /** Ends every session opened with this token (it was revoked), on every server. */
  async deleteByToken(tokenId: string): Promise<void> {
    for (const session of this.tracked.values()) if (session.tokenId === tokenId) session.ended = true;
    for (const [key, session] of this.tracked) if (session.ended) this.tracked.delete(key);
    await this.store.deleteByToken(tokenId);
  }

  /** Marks ended the tracked sessions whose row is gone (signed out or revoked on another server). */
  async recheck(): Promise<void> {
    if (this.tracked.size === 0) return;
    const existing = await this.store.existing([...this.tracked.keys()]);
    for (const [key, session] of this.tracked) {
      if (!existing.has(key) || !this.live(session)) {
        session.ended = true;
        this.tracked.delete(key);
      }
    }
  }

  private track(stored: StoredConsoleSession, csrf: string): ConsoleSession {
    let session = this.tracked.get(stored.id_hash);
    if (!session) {
      if (this.tracked.size >= MAX_TRACKED) {
        const oldest = this.tracked.keys().next().value;
        if (oldest !== undefined) this.tracked.delete(oldest);
      }
      session = {
        idHash: stored.id_hash,
        tokenId: stored.token_id,
        channel: stored.channel,
        csrf,
        csrfHash: stored.csrf_hash,
        createdAt: stored.created_at,
        lastSeenAt: stored.last_seen_at,
        expiresAt: stored.expires_at,
        ended: false,
      };
      this.tracked.set(stored.id_hash, session);
    } else {
      // Another server may have recorded a later use.
      session.lastSeenAt = Math.max(session.lastSeenAt, stored.last_seen_at);
    }
    return session;
  }

  private forget(idHash: string): void {
    const session = this.tracked.get(idHash);
    if (session) session.ended = true;
    this.tracked.delete(idHash);
  }

  private async end(idHash: string): Promise<void> {
    this.forget(idHash);
    await this.store.delete(idHash);
  }
}
