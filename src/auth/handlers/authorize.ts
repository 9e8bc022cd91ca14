// The authorization endpoint: GET shows the consent page, POST records the decision and redirects with a code.
import { randomBytes } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import { clientName, type OAuthContext } from '../context.js';
import { consentPage, errorPage } from '../pages.js';
import { grantedScope, readCookie, Scope, sameText } from '../params.js';
import { hashSecret, newSecret, SecretPrefix } from '../secrets.js';
import {
  type AuthorizationRequest,
  type Resolution,
  redirectWith,
  resolveAuthorization,
} from './authorization-request.js';
import { asyncRoute, bodyOf, form, pageHeaders } from './shared.js';

const CODE_TTL_MS = 5 * 60_000;

export function authorizeRouter(ctx: OAuthContext): Router {
  const { store, clock, logger, csrfCookie } = ctx;

  /** The request again, as hidden fields of the consent form (none of it secret). */
  function requestFields(request: AuthorizationRequest): Record<string, string> {
    return {
      response_type: 'code',
      client_id: request.client.clientId,
      redirect_uri: request.redirectUri,
      code_challenge: request.codeChallenge,
      code_challenge_method: 'S256',
      scope: request.scopes.join(' '),
      resource: request.resource,
      ...(request.state !== undefined ? { state: request.state } : {}),
    };
  }

  function showConsent(
    res: Response,
    request: AuthorizationRequest,
    csrf: string,
    status = 200,
    error?: string,
  ): void {
    pageHeaders(res, request.redirectUri);
    res.status(status).send(
      consentPage({
        clientName: clientName(request.client),
        clientId: request.client.clientId,
        registration: request.client.kind,
        returnOrigin: request.returnOrigin,
        channel: request.channel,
        adminRequested: request.scopes.includes(Scope.ADMIN),
        fields: requestFields(request),
        csrf,
        ...(error ? { error } : {}),
      }),
    );
  }

  function answer(res: Response, resolution: Exclude<Resolution, { kind: 'ok' }>, status = 302): void {
    if (resolution.kind === 'page') {
      pageHeaders(res);
      res.status(resolution.status).send(resolution.html);
    } else {
      res.set('Cache-Control', 'no-store').redirect(status, resolution.url);
    }
  }

  async function showAuthorization(req: Request, res: Response): Promise<void> {
    const resolution = await resolveAuthorization(ctx, req.query as Record<string, unknown>);
    if (resolution.kind !== 'ok') return answer(res, resolution);
    const csrf = readCookie(req, csrfCookie) ?? randomBytes(32).toString('base64url');
    res.cookie(csrfCookie, csrf, {
      httpOnly: true,
      sameSite: 'strict',
      secure: ctx.secureCookies,
      path: '/',
    });
    showConsent(res, resolution.request, csrf);
  }

  async function decide(req: Request, res: Response): Promise<void> {
    const body = bodyOf(req);
    const cookie = readCookie(req, csrfCookie);
    const sent = typeof body.csrf_token === 'string' ? body.csrf_token : undefined;
    if (!cookie || !sent || !sameText(cookie, sent)) {
      logger.warn({ ip: req.socket.remoteAddress }, 'refused a consent form without a valid CSRF token');
      pageHeaders(res);
      res
        .status(403)
        .send(
          errorPage(
            'This form has expired',
            'The sign-in form could not be verified. Go back to the app and connect again.',
          ),
        );
      return;
    }
    // The POSTed form carries the whole request: everything is checked again, as if it came fresh.
    const resolution = await resolveAuthorization(ctx, body);
    if (resolution.kind !== 'ok') return answer(res, resolution, 303);
    const request = resolution.request;
    const decision = body.decision;
    if (decision === 'deny') {
      logger.info(
        { client: request.client.clientId, channel: request.channel },
        'sign-in denied on the consent page',
      );
      res.redirect(
        303,
        redirectWith(ctx.issuer, request.redirectUri, {
          error: 'access_denied',
          error_description: 'the user denied access',
          state: request.state,
        }),
      );
      return;
    }
    let admin = false;
    if (decision === 'allow_admin') {
      const token = typeof body.admin_token === 'string' ? body.admin_token.trim() : '';
      if (!token || !(await ctx.isAdminToken(token))) {
        logger.warn({ client: request.client.clientId }, 'consent page: admin sign-in refused');
        showConsent(
          res,
          request,
          cookie,
          401,
          'That is not a live admin token. Shopping can still be allowed without one.',
        );
        return;
      }
      admin = true;
    } else if (decision !== 'allow') {
      pageHeaders(res);
      res.status(400).send(errorPage('Bad sign-in request', 'Choose Allow or Deny.'));
      return;
    }
    const code = newSecret(SecretPrefix.CODE);
    const now = clock.now();
    await store.saveCode({
      code_hash: hashSecret(code),
      client_id: request.client.clientId,
      redirect_uri: request.redirectUri,
      code_challenge: request.codeChallenge,
      scope: grantedScope(admin),
      resource: request.resource,
      channel: request.channel,
      created_at: now,
      expires_at: now + CODE_TTL_MS,
      used_at: null,
      grant_id: null,
    });
    logger.info(
      { client: request.client.clientId, channel: request.channel, admin },
      'sign-in allowed on the consent page',
    );
    res
      .set('Cache-Control', 'no-store')
      .redirect(303, redirectWith(ctx.issuer, request.redirectUri, { code, state: request.state }));
  }

  const router = express.Router();
  router.get('/authorize', asyncRoute(showAuthorization));
  router.post('/authorize', form, asyncRoute(decide));
  return router;
}
