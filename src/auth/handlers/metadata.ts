// Discovery: authorization server metadata (RFC 8414) and protected resource metadata (RFC 9728).
// Clients register by client ID metadata document first (the MCP authorization spec's order since 2025-11-25;
// 2026-07-28 deprecates dynamic registration), so the document support comes before the registration endpoint,
// which stays for clients that have no document.
import express, { type Router } from 'express';
import type { OAuthContext } from '../context.js';
import { MCP_PATH } from '../context.js';
import { SCOPES } from '../params.js';
import { cors, preflight } from './shared.js';

export function metadataRouter(ctx: OAuthContext): Router {
  const { issuer } = ctx;
  const authorizationServer = {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    client_id_metadata_document_supported: true,
    // Deprecated (its answers carry a Deprecation header), kept for clients without a metadata document.
    registration_endpoint: `${issuer}/register`,
    revocation_endpoint: `${issuer}/revoke`,
    revocation_endpoint_auth_methods_supported: ['none', 'client_secret_post', 'client_secret_basic'],
    scopes_supported: SCOPES,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    // 'none' beside client_id_metadata_document_supported: a metadata-document client is public, and some
    // clients (Claude) use their document only when both are advertised.
    token_endpoint_auth_methods_supported: ['none', 'client_secret_post', 'client_secret_basic'],
    code_challenge_methods_supported: ['S256'],
    authorization_response_iss_parameter_supported: true,
  };
  const protectedResource = {
    resource: ctx.resource,
    authorization_servers: [issuer],
    scopes_supported: SCOPES,
    bearer_methods_supported: ['header'],
    resource_name: 'stocklock inventory',
  };

  const router = express.Router();
  // Clients look for the resource's metadata under its path and, some of them, at the root.
  for (const path of [
    `/.well-known/oauth-protected-resource${MCP_PATH}`,
    '/.well-known/oauth-protected-resource',
  ]) {
    router.options(path, cors, preflight);
    router.get(path, cors, (_req, res) => void res.json(protectedResource));
  }
  router.options('/.well-known/oauth-authorization-server', cors, preflight);
  router.get(
    '/.well-known/oauth-authorization-server',
    cors,
    (_req, res) => void res.json(authorizationServer),
  );
  return router;
}
