// stocklock as an OAuth 2.1 authorization server and protected resource: composes the endpoints of handlers/.
import express, { type Router } from 'express';
import type { StoredGrant } from '../storage/oauth.js';
import { createContext, type OAuthOptions } from './context.js';
import { authorizeRouter } from './handlers/authorize.js';
import { metadataRouter } from './handlers/metadata.js';
import { registerRouter } from './handlers/register.js';
import { revokeRouter } from './handlers/revoke.js';
import { tokenRouter } from './handlers/token.js';
import { comparableResource, Scope } from './params.js';
import { hashSecret, SecretPrefix } from './secrets.js';

export {
  DEFAULT_ACCESS_TTL_MS,
  DEFAULT_REFRESH_TTL_MS,
  MCP_PATH,
  type OAuthOptions,
  parsePublicUrl,
} from './context.js';
export { redirectUriMatches, SCOPES, Scope } from './params.js';

/** Who an OAuth access token speaks for. Each grant is its own holder inside its channel. */
export interface OAuthIdentity {
  grantId: string;
  clientId: string;
  channel: string;
  admin: boolean;
}

export interface OAuthServer {
  readonly issuer: string;
  /** This server's MCP URL: the only resource its tokens are good for. */
  readonly resource: string;
  readonly resourceMetadataUrl: string;
  /** Mount at the application root, after the Host/Origin checks. */
  readonly router: Router;
  /** True for strings shaped like our OAuth access tokens (cheap; no lookup). */
  isAccessToken(token: string): boolean;
  verifyAccessToken(token: string): Promise<OAuthIdentity | undefined>;
  /** The WWW-Authenticate value for a 401 on /mcp (RFC 9728 §5.1; MCP authorization, scope challenge). */
  challenge(error?: { code: 'invalid_token'; description: string }): string;
}

export function createOAuthServer(options: OAuthOptions): OAuthServer {
  const ctx = createContext(options);
  const router = express.Router();
  router.use(metadataRouter(ctx));
  router.use(authorizeRouter(ctx));
  router.use(registerRouter(ctx));
  router.use(tokenRouter(ctx));
  router.use(revokeRouter(ctx));

  return {
    issuer: ctx.issuer,
    resource: ctx.resource,
    resourceMetadataUrl: ctx.resourceMetadataUrl,
    router,
    isAccessToken: (candidate) => candidate.startsWith(SecretPrefix.ACCESS),
    async verifyAccessToken(candidate) {
      const grant: StoredGrant | undefined = await ctx.store.verifyAccess(
        hashSecret(candidate),
        ctx.clock.now(),
      );
      // A token is good only at the resource it was issued for (RFC 8707): not at a server with another URL.
      if (!grant || comparableResource(grant.resource) !== ctx.resourceKey) return undefined;
      return {
        grantId: grant.id,
        clientId: grant.client_id,
        channel: grant.channel,
        admin: grant.scope.split(' ').includes(Scope.ADMIN),
      };
    },
    challenge(error) {
      const parts = ['realm="stocklock"'];
      if (error) {
        parts.push(`error="${error.code}"`, `error_description="${error.description.replace(/["\\]/g, '')}"`);
      }
      parts.push(`resource_metadata="${ctx.resourceMetadataUrl}"`, `scope="${Scope.SHOP}"`);
      return `Bearer ${parts.join(', ')}`;
    },
  };
}
