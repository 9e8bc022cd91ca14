// Token revocation (RFC 7009): either token of a grant ends the whole grant.
import express, { type Request, type Response, type Router } from 'express';
import type { StoredGrant } from '../../storage/oauth.js';
import type { OAuthContext } from '../context.js';
import { InvalidRequestError, OAuthError } from '../errors.js';
import { single } from '../params.js';
import { hashSecret, SecretPrefix } from '../secrets.js';
import { authenticateClient } from './client-auth.js';
import { asyncRoute, bodyOf, cors, form, preflight } from './shared.js';

export function revokeRouter(ctx: OAuthContext): Router {
  const { store, clock, logger } = ctx;

  /** The grant a presented access or refresh token belongs to, whatever state the token is in. */
  async function grantOfToken(token: string): Promise<StoredGrant | undefined> {
    const hash = hashSecret(token);
    if (token.startsWith(SecretPrefix.REFRESH)) return (await store.getRefresh(hash))?.grant;
    // An expired or already revoked access token has nothing left to revoke.
    if (token.startsWith(SecretPrefix.ACCESS)) return store.verifyAccess(hash, clock.now());
    return undefined;
  }

  /**
   * Ends the grant of the presented token: its access and refresh tokens both stop working (RFC 7009 §2.1
   * lets revoking either end the grant; a signed-out connector wants nothing of it left). An unknown token,
   * or one issued to another client, is answered 200 like a revoked one (§2.2), so the endpoint tells a
   * caller nothing about tokens that are not its own.
   */
  async function revoke(req: Request, res: Response): Promise<void> {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    try {
      const body = bodyOf(req);
      const client = await authenticateClient(ctx, req, body);
      const token = single(body, 'token');
      if (!token) throw new InvalidRequestError('token is required');
      const grant = await grantOfToken(token);
      if (grant && grant.client_id === client.clientId && grant.revoked_at === null) {
        await store.revokeGrant(grant.id, clock.now(), 'revoked by the client');
        logger.info({ client: client.clientId, grant: grant.id }, 'OAuth grant revoked by its client');
      }
      res.status(200).end();
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      error.send(res);
    }
  }

  const router = express.Router();
  router.options('/revoke', cors, preflight);
  router.post('/revoke', cors, form, asyncRoute(revoke));
  return router;
}
