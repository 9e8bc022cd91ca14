// The token endpoint: an authorization code for a grant's first tokens, a refresh token for the next pair.
import express, { type Request, type Response, type Router } from 'express';
import { newId } from '../../domain/rules.js';
import type { TokenPair } from '../../storage/oauth.js';
import type { OAuthContext, ResolvedClient } from '../context.js';
import {
  InvalidGrantError,
  InvalidRequestError,
  InvalidScopeError,
  InvalidTargetError,
  OAuthError,
  UnsupportedGrantTypeError,
} from '../errors.js';
import { redirectHost } from '../hosts.js';
import { comparableResource, parseScopes, single } from '../params.js';
import { hashSecret, newSecret, PKCE_VERIFIER, pkceChallenge, SecretPrefix } from '../secrets.js';
import { authenticateClient } from './client-auth.js';
import { asyncRoute, bodyOf, cors, form, preflight } from './shared.js';

type Body = Record<string, unknown>;

export function tokenRouter(ctx: OAuthContext): Router {
  const { store, clock, logger, accessTtlMs, refreshTtlMs } = ctx;

  function newTokens(now: number): { pair: TokenPair; access: string; refresh: string } {
    const access = newSecret(SecretPrefix.ACCESS);
    const refresh = newSecret(SecretPrefix.REFRESH);
    return {
      access,
      refresh,
      pair: {
        access_hash: hashSecret(access),
        access_expires_at: now + accessTtlMs,
        refresh_hash: hashSecret(refresh),
        refresh_expires_at: now + refreshTtlMs,
      },
    };
  }

  function tokenResponse(tokens: { access: string; refresh: string }, scope: string) {
    return {
      access_token: tokens.access,
      token_type: 'Bearer',
      expires_in: Math.floor(accessTtlMs / 1000),
      refresh_token: tokens.refresh,
      scope,
    };
  }

  function checkTokenResource(body: Body, bound: string): void {
    const requested = single(body, 'resource');
    if (requested !== undefined && comparableResource(requested) !== comparableResource(bound)) {
      throw new InvalidTargetError(`tokens of this grant are only for ${bound}`);
    }
  }

  async function exchangeCode(client: ResolvedClient, body: Body) {
    const code = single(body, 'code');
    const verifier = single(body, 'code_verifier');
    if (!code || !verifier) throw new InvalidRequestError('code and code_verifier are required');
    const codeHash = hashSecret(code);
    const stored = await store.getCode(codeHash);
    const now = clock.now();
    if (!stored || stored.client_id !== client.clientId) {
      throw new InvalidGrantError('the authorization code is unknown or belongs to another client');
    }
    if (stored.used_at === null) {
      if (stored.expires_at <= now) throw new InvalidGrantError('the authorization code has expired');
      if (!PKCE_VERIFIER.test(verifier) || pkceChallenge(verifier) !== stored.code_challenge) {
        throw new InvalidGrantError('code_verifier does not match the code_challenge');
      }
      const redirectUri = single(body, 'redirect_uri');
      if (redirectUri !== undefined && redirectUri !== stored.redirect_uri) {
        throw new InvalidGrantError('redirect_uri differs from the authorization request');
      }
      checkTokenResource(body, stored.resource);
    }
    const tokens = newTokens(now);
    const grantId = newId('grt_', 16);
    const outcome = await store.redeemCode(
      codeHash,
      now,
      {
        id: grantId,
        client_id: client.clientId,
        channel: stored.channel,
        scope: stored.scope,
        resource: stored.resource,
        redirect_host: redirectHost(stored.redirect_uri),
      },
      tokens.pair,
    );
    if (outcome === 'reused') {
      logger.warn(
        { client: client.clientId, grant: stored.grant_id },
        'authorization code reused: its grant is revoked',
      );
      throw new InvalidGrantError('the authorization code was already used');
    }
    logger.info(
      { client: client.clientId, grant: grantId, channel: stored.channel, scope: stored.scope },
      'OAuth grant issued',
    );
    return tokenResponse(tokens, stored.scope);
  }

  async function refresh(client: ResolvedClient, body: Body) {
    const token = single(body, 'refresh_token');
    if (!token) throw new InvalidRequestError('refresh_token is required');
    const refreshHash = hashSecret(token);
    const found = await store.getRefresh(refreshHash);
    const now = clock.now();
    if (!found || found.grant.client_id !== client.clientId || found.grant.revoked_at !== null) {
      throw new InvalidGrantError('the refresh token is unknown, revoked or belongs to another client');
    }
    if (found.used_at === null) {
      if (found.expires_at <= now) throw new InvalidGrantError('the refresh token has expired');
      checkTokenResource(body, found.grant.resource);
      const asked = single(body, 'scope');
      if (asked !== undefined) {
        const granted = found.grant.scope.split(' ');
        if (parseScopes(asked).some((scope) => !granted.includes(scope))) {
          throw new InvalidScopeError('a refresh cannot widen the scope of its grant');
        }
      }
    }
    const tokens = newTokens(now);
    if ((await store.rotateRefresh(refreshHash, now, tokens.pair)) === 'reused') {
      logger.warn(
        { client: client.clientId, grant: found.grant.id },
        'refresh token reused: its grant is revoked',
      );
      throw new InvalidGrantError('the refresh token was already used; the grant is revoked');
    }
    return tokenResponse(tokens, found.grant.scope);
  }

  async function token(req: Request, res: Response): Promise<void> {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    try {
      const body = bodyOf(req);
      const client = await authenticateClient(ctx, req, body);
      const grantType = single(body, 'grant_type');
      if (grantType === 'authorization_code') res.json(await exchangeCode(client, body));
      else if (grantType === 'refresh_token') res.json(await refresh(client, body));
      else throw new UnsupportedGrantTypeError('grant_type must be authorization_code or refresh_token');
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      error.send(res);
    }
  }

  const router = express.Router();
  router.options('/token', cors, preflight);
  router.post('/token', cors, form, asyncRoute(token));
  return router;
}
