// Console sign-in sessions: random secrets kept only as SHA-256, absolute and idle expiry, one CSRF token each.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hashToken } from '../storage/shared.js';

export interface ConsoleSession {
  /** The admin token the merchant signed in with: revoking it ends the session. */
  tokenId: string;
  channel: string;
  /** Sent with every state-changing request; compared in constant time. */
  csrf: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  /** Set on sign-out, revocation or expiry, so open event streams notice. */
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
const MAX_SESSIONS = 1_000;

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
 * In memory, keyed by the hash of the cookie's secret: a restart signs everyone out, and a pool of
 * servers behind one address needs sticky sessions (docs/decisions.md).
 */
export class SessionTable {
  private readonly sessions = new Map<string, ConsoleSession>();

  constructor(
    private readonly limits: SessionLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns the cookie secret; only its hash is kept. */
  create(tokenId: string, channel: string): { secret: string; session: ConsoleSession } {
    const now = this.now();
    this.prune(now);
    if (this.sessions.size >= MAX_SESSIONS) {
      // The oldest sign-in gives way: a flood of sign-ins must not grow memory without bound.
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.end(oldest);
    }
    const secret = randomSecret();
    const session: ConsoleSession = {
      tokenId,
      channel,
      csrf: randomSecret(),
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.limits.ttlMs,
      ended: false,
    };
    this.sessions.set(hashToken(secret), session);
    return { secret, session };
  }

  /** The live session for this cookie secret, touched; an expired one is dropped. */
  find(secret: string | undefined): ConsoleSession | undefined {
    if (!secret) return undefined;
    const key = hashToken(secret);
    const session = this.sessions.get(key);
    if (!session) return undefined;
    const now = this.now();
    if (!this.live(session, now)) {
      this.end(key);
      return undefined;
    }
    session.lastSeenAt = now;
    return session;
  }

  live(session: ConsoleSession, now = this.now()): boolean {
    return !session.ended && now < session.expiresAt && now - session.lastSeenAt < this.limits.idleMs;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** The tokens that live sessions were opened with. */
  tokenIds(): Set<string> {
    return new Set([...this.sessions.values()].map((session) => session.tokenId));
  }

  delete(secret: string | undefined): void {
    if (secret) this.end(hashToken(secret));
  }

  /** Ends every session opened with this token (it was revoked). */
  deleteByToken(tokenId: string): void {
    for (const [key, session] of this.sessions) if (session.tokenId === tokenId) this.end(key);
  }

  private end(key: string): void {
    const session = this.sessions.get(key);
    if (session) session.ended = true;
    this.sessions.delete(key);
  }

  private prune(now: number): void {
    for (const [key, session] of this.sessions) if (!this.live(session, now)) this.end(key);
  }
}
