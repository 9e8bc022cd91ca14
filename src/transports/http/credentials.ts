// Who a request speaks for: its bearer credential checked (and briefly cached), or the 401 to send.
/*
 * The seam for new kinds of credential: `authenticate(req)` is the only thing the rest of the HTTP
 * server asks. Each kind is a BearerVerifier (static tokens today; OAuth access tokens next), tried
 * in order; the first that knows the token gives the identity. Nothing else changes to add one.
 *
 * - Every request is authenticated again, so a revoked credential stops working mid-session.
 * - Verified tokens are cached for `cacheMs` (5 s) keyed by the token's SHA-256; the raw token is
 *   neither kept nor logged. Revocation therefore takes effect within 5 s. Failed verifications
 *   are not cached, so a token created a moment ago works at once.
 * - `auth: false` (--no-auth): every request is a customer on the given channel.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Clock } from '../../domain/clock.js';
import type { Logger } from '../../logger.js';
import { hashToken } from '../../storage/shared.js';
import type { InventoryStore } from '../../storage/store.js';
import { sendRpcError } from './replies.js';

/** What a connection may do and on whose behalf. A holder (who owns carts inside the channel) comes with OAuth grants. */
export interface Identity {
  /**
   * What a session is bound to: later requests on it must present the same credential. The static
   * token's id; for OAuth, the grant's id (its access tokens rotate, the grant does not).
   */
  credentialId: string;
  channel: string;
  admin: boolean;
  /** Who owns carts inside the channel: the OAuth grant; absent for a static token (the whole channel). */
  holder?: string;
}

/** One kind of bearer credential: the identity a token stands for, or undefined when it is not one of ours. */
export type BearerVerifier = (token: string) => Promise<Identity | undefined>;

export type Authentication =
  | { identity: Identity }
  | {
      refusal: {
        /** The value of WWW-Authenticate. */
        challenge: string;
        /** A sentence the client's user can act on. */
        message: string;
        /** For the log: why, never the token. */
        reason: string;
      };
    };

export type Authenticate = (req: IncomingMessage) => Promise<Authentication>;

export interface CredentialOptions {
  /** false (--no-auth): no credentials, every request a customer on `channel`. */
  auth: boolean;
  channel: string;
  /** Tried in order; the first that knows a token decides. */
  verifiers: BearerVerifier[];
  /** How long a verified token is trusted without asking again. */
  cacheMs: number;
  /** What the cache tells the time by. */
  clock: Clock;
  /** The WWW-Authenticate value of a 401 (before any error="…"); a function when known only once listening. */
  challenge?: string | (() => string);
}

const TOKEN_CACHE_MAX_ENTRIES = 10_000;
const REALM = 'Bearer realm="stocklock"';

/** The static tokens of `stocklock token create`. */
export function staticTokens(store: InventoryStore): BearerVerifier {
  return async (token) => {
    const record = await store.verifyToken(token);
    return record ? { credentialId: record.id, channel: record.channel, admin: record.admin } : undefined;
  };
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header ? /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header) : null;
  return match?.[1];
}

/** Verified tokens by SHA-256 for a few seconds; concurrent first uses of one token share one lookup. */
class VerifiedTokenCache {
  private readonly entries = new Map<string, { identity: Promise<Identity | undefined>; until: number }>();

  constructor(
    private readonly lookup: BearerVerifier,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {}

  verify(token: string): Promise<Identity | undefined> {
    const key = hashToken(token);
    const now = this.clock.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) return hit.identity;
    if (this.entries.size >= TOKEN_CACHE_MAX_ENTRIES) this.prune(now);
    const identity = this.lookup(token);
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

/** Turns a request into its identity, or the refusal to answer with. */
export function createAuthenticate(options: CredentialOptions): Authenticate {
  if (!options.auth) {
    const everyone: Authentication = {
      identity: { credentialId: 'no-auth', channel: options.channel, admin: false },
    };
    return async () => everyone;
  }
  const challengeOf = () =>
    typeof options.challenge === 'function' ? options.challenge() : (options.challenge ?? REALM);
  const cache = new VerifiedTokenCache(
    async (token) => {
      for (const verify of options.verifiers) {
        const identity = await verify(token);
        if (identity) return identity;
      }
      return undefined;
    },
    options.cacheMs,
    options.clock,
  );
  return async (req) => {
    const token = bearerToken(req.headers.authorization);
    const identity = token ? await cache.verify(token) : undefined;
    if (identity) return { identity };
    const challenge = challengeOf();
    return {
      refusal: token
        ? {
            challenge: `${challenge}, error="invalid_token"`,
            message:
              'Unauthorized: the token is unknown or revoked. Create one with `stocklock token create --channel NAME`.',
            reason: 'unknown or revoked token',
          }
        : {
            challenge,
            message:
              'Unauthorized: send Authorization: Bearer <token> (create one with `stocklock token create --channel NAME`).',
            reason: 'no bearer token',
          },
    };
  };
}

/** The request's identity, or undefined once the 401 with the challenge has been answered. */
export async function identify(
  authenticate: Authenticate,
  logger: Logger,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<Identity | undefined> {
  const result = await authenticate(req);
  if ('identity' in result) return result.identity;
  const { refusal } = result;
  logger.warn(
    { ip: req.socket.remoteAddress, reason: refusal.reason },
    'refused an unauthenticated MCP request',
  );
  sendRpcError(res, 401, -32000, refusal.message, { 'WWW-Authenticate': refusal.challenge });
  return undefined;
}

/** Puts the identity in `res.locals.identity`, or answers 401 with the challenge. */
export function requireIdentity(authenticate: Authenticate, logger: Logger): RequestHandler {
  return async (req, res, next) => {
    const identity = await identify(authenticate, logger, req, res);
    if (!identity) return;
    res.locals.identity = identity;
    next();
  };
}
