// The console's gatekeeping: security headers, the cookie jar, which session a request belongs to, and CSRF.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { hashToken } from '../storage/shared.js';
import { apiError, type ConsoleContext } from './context.js';
import { signInPage } from './pages.js';
import { type ConsoleSession, randomSecret, sameSecret } from './sessions.js';

export const SESSION_COOKIE = 'stocklock_console';
export const SIGN_IN_COOKIE = 'stocklock_console_signin';
/** A token found live is trusted this long before the store is asked again. */
const TOKEN_CHECK_MS = 5_000;

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  // Not no-referrer: Chromium then sends "Origin: null" on form posts, which the Origin check refuses.
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
};

export function cookies(req: Request): Record<string, string> {
  const jar: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    const name = part.slice(0, at).trim();
    try {
      jar[name] = decodeURIComponent(part.slice(at + 1).trim());
    } catch {
      // a malformed cookie is no cookie
    }
  }
  return jar;
}

/** Sets the security headers; a request a browser marks as cross-site never reaches a handler. */
export const guard: RequestHandler = (req, res, next) => {
  res.set(SECURITY_HEADERS);
  if (req.headers['sec-fetch-site'] === 'cross-site') {
    apiError(res, 403, 'FORBIDDEN', 'Cross-site requests are not accepted by the console.');
    return;
  }
  next();
};

/**
 * Which admin tokens are live. Revoked tokens end their sessions. A token found live is trusted for a few
 * seconds; one not found is asked about again at once, so a token made a moment ago signs in.
 */
export class LiveTokens {
  private cached: { ids: Promise<Set<string>>; at: number } | undefined;

  constructor(private readonly ctx: Pick<ConsoleContext, 'store' | 'clock'>) {}

  forget(): void {
    this.cached = undefined;
  }

  async has(tokenId: string): Promise<boolean> {
    const cached = this.cached;
    if (cached && this.ctx.clock.now() - cached.at <= TOKEN_CHECK_MS && (await cached.ids).has(tokenId)) {
      return true;
    }
    return (await this.read()).has(tokenId);
  }

  private read(): Promise<Set<string>> {
    const ids = this.ctx.store
      .listTokens()
      .then((list) => new Set(list.filter((t) => t.admin && t.revoked_at === null).map((t) => t.id)));
    const entry = { ids, at: this.ctx.clock.now() };
    this.cached = entry;
    ids.catch(() => {
      if (this.cached === entry) this.cached = undefined;
    });
    return ids;
  }
}

export interface SessionGate {
  /** The request's live session and its cookie secret, or undefined. */
  current(req: Request): Promise<{ session: ConsoleSession; secret: string } | undefined>;
  /** 401 without a live session; sets res.locals.session and res.locals.secret. */
  requireSession: RequestHandler;
  /** 403 unless the request carries the session's CSRF token (header X-CSRF-Token or form field _csrf). */
  requireCsrf: RequestHandler;
  /** Answers with the sign-in form and its double-submit CSRF cookie (there is no session yet). */
  sendSignIn(res: Response, status: number, problem?: string): void;
}

export function sessionGate(ctx: ConsoleContext, tokens: LiveTokens): SessionGate {
  const { sessions, feed, logger } = ctx;

  async function current(req: Request) {
    const secret = cookies(req)[SESSION_COOKIE];
    const session = await sessions.find(secret);
    if (!session || !secret) return undefined;
    if (!(await tokens.has(session.tokenId))) {
      await sessions.deleteByToken(session.tokenId);
      feed.sweep();
      return undefined;
    }
    return { session, secret };
  }

  function csrfFrom(req: Request): string | undefined {
    const header = req.headers['x-csrf-token'];
    if (typeof header === 'string') return header;
    const body = req.body as { _csrf?: unknown } | undefined;
    return typeof body?._csrf === 'string' ? body._csrf : undefined;
  }

  return {
    current,
    async requireSession(req: Request, res: Response, next: NextFunction) {
      const found = await current(req);
      if (!found) {
        res.set('Cache-Control', 'no-store');
        apiError(res, 401, 'SIGNED_OUT', 'Sign in again: the session ended or was never started.');
        return;
      }
      res.locals.session = found.session;
      res.locals.secret = found.secret;
      next();
    },
    requireCsrf(req: Request, res: Response, next: NextFunction) {
      const session = res.locals.session as ConsoleSession;
      const given = csrfFrom(req);
      // Compared in constant time, as hashes: the table stores only the token's hash.
      if (given === undefined || !sameSecret(hashToken(given), session.csrfHash)) {
        logger.warn(
          { path: req.path, tokenId: session.tokenId },
          'console request refused: missing or wrong CSRF token',
        );
        apiError(
          res,
          403,
          'CSRF',
          'Refused: the request lacks this page’s CSRF token. Reload the page and try again.',
        );
        return;
      }
      next();
    },
    sendSignIn(res: Response, status: number, problem?: string) {
      const csrf = randomSecret();
      res.cookie(SIGN_IN_COOKIE, csrf, { ...ctx.cookieBase, maxAge: 3_600_000 });
      res.status(status).type('html').send(signInPage(csrf, problem));
    },
  };
}
