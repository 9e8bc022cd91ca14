// Dynamic Client Registration (RFC 7591): open to anyone; the host map and the consent decide who signs in.
// Deprecated since MCP 2026-07-28 in favour of client ID metadata documents, and kept for clients without one.
import express, { type Request, type Response, type Router } from 'express';
import { newId } from '../../domain/rules.js';
import type { StoredClient } from '../../storage/oauth.js';
import { type ClientMetadata, ClientMetadataError, parseClientMetadata } from '../client-metadata.js';
import type { OAuthContext } from '../context.js';
import { InvalidClientMetadataError, TooManyRequestsError } from '../errors.js';
import { clientAddressKey } from '../limits.js';
import { hashSecret, newSecret, SecretPrefix } from '../secrets.js';
import { asyncRoute, cors, json, preflight } from './shared.js';

/** 2026-07-28T00:00:00Z, the MCP revision that deprecates dynamic registration. */
const REGISTRATION_DEPRECATED_AT = 1_785_196_800;

export function registerRouter(ctx: OAuthContext): Router {
  const { store, clock, logger } = ctx;

  async function register(req: Request, res: Response): Promise<void> {
    res.set('Cache-Control', 'no-store');
    // RFC 9745: deprecated since the MCP revision of 2026-07-28 (a Structured Field date, epoch seconds).
    res.set('Deprecation', `@${REGISTRATION_DEPRECATED_AT}`);
    const verdict = await ctx.rate('register', clientAddressKey(req));
    if (!verdict.allowed) {
      logger.warn({ address: clientAddressKey(req) }, 'client registration refused: rate limit');
      new TooManyRequestsError(
        'too many client registrations from this address; retry later',
        verdict.retryAfterMs,
      ).send(res);
      return;
    }
    let metadata: ClientMetadata;
    try {
      // RFC 7591 §2: a client that names no method gets client_secret_basic.
      metadata = parseClientMetadata(req.body, 'client_secret_basic');
    } catch (error) {
      if (!(error instanceof ClientMetadataError)) throw error;
      new InvalidClientMetadataError(error.message).send(res);
      return;
    }
    const clientId = newId('cli_');
    const secret =
      metadata.token_endpoint_auth_method === 'none' ? undefined : newSecret(SecretPrefix.CLIENT_SECRET);
    const now = clock.now();
    const stored: StoredClient = {
      client_id: clientId,
      kind: 'dcr',
      metadata: JSON.stringify(metadata),
      secret_hash: secret ? hashSecret(secret) : null,
      created_at: now,
      fetched_at: now,
    };
    await store.saveClient(stored);
    logger.info(
      { client: clientId, name: metadata.client_name, method: metadata.token_endpoint_auth_method },
      'registered an OAuth client',
    );
    res.status(201).json({
      client_id: clientId,
      client_id_issued_at: Math.floor(now / 1000),
      // 0: the secret never expires (RFC 7591 §3.2.1); the SDK's 30-day default would strand connectors.
      ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
      ...metadata,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    });
  }

  const router = express.Router();
  router.options('/register', cors, preflight);
  router.post('/register', cors, json, asyncRoute(register));
  return router;
}
