// Signing in with an admin token, and signing out: the two form posts outside the JSON API.
import express, { type Router } from 'express';
import type { ConsoleContext } from '../context.js';
import { cookies, SESSION_COOKIE, type SessionGate, SIGN_IN_COOKIE } from '../middleware.js';
import { type ConsoleSession, sameSecret } from '../sessions.js';

export function signInRoutes(router: Router, ctx: ConsoleContext, gate: SessionGate): void {
  const { store, sessions, feed, logger, cookieBase } = ctx;
  const form = express.urlencoded({ extended: false, limit: '8kb' });

  // A customer token is refused: a console sees and changes every channel.
  router.post('/sign-in', form, async (req, res) => {
    res.set('Cache-Control', 'no-store');
    const body = (req.body ?? {}) as { token?: unknown; _csrf?: unknown };
    // Double-submit: the form's token must match the cookie set with the form.
    const expected = cookies(req)[SIGN_IN_COOKIE];
    if (!expected || !sameSecret(typeof body._csrf === 'string' ? body._csrf : undefined, expected)) {
      logger.warn({ ip: req.socket.remoteAddress }, 'console sign-in refused: missing or wrong CSRF token');
      gate.sendSignIn(
        res,
        403,
        'The form expired or cookies are blocked. Reload the page and sign in again.',
      );
      return;
    }
    const token = typeof body.token === 'string' ? body.token.trim() : '';
    const record = token ? await store.verifyToken(token) : undefined;
    if (!record) {
      logger.warn({ ip: req.socket.remoteAddress }, 'console sign-in refused: unknown or revoked token');
      gate.sendSignIn(res, 401, 'That token is unknown or revoked.');
      return;
    }
    if (!record.admin) {
      logger.warn({ tokenId: record.id, channel: record.channel }, 'console sign-in refused: customer token');
      gate.sendSignIn(
        res,
        403,
        `That is a customer token (channel "${record.channel}"). The console needs an admin token: npx stocklock token create --channel ops --admin`,
      );
      return;
    }
    const { secret } = await sessions.create(record.id, record.channel);
    logger.info({ tokenId: record.id, channel: record.channel }, 'console sign-in');
    res.clearCookie(SIGN_IN_COOKIE, cookieBase);
    res.cookie(SESSION_COOKIE, secret, { ...cookieBase, maxAge: ctx.sessionTtlMs });
    res.redirect(303, './');
  });

  router.post('/sign-out', form, gate.requireSession, gate.requireCsrf, async (_req, res) => {
    const session = res.locals.session as ConsoleSession;
    await sessions.delete(res.locals.secret as string);
    feed.sweep();
    logger.info({ tokenId: session.tokenId }, 'console sign-out');
    res.clearCookie(SESSION_COOKIE, cookieBase);
    res.redirect(303, './');
  });
}
