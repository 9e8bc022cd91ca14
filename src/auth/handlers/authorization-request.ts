// Checking an authorization request, from the query (GET) or the consent form (POST), before anything is shown.
import { ClientMetadataError, checkRedirectUri } from '../client-metadata.js';
import { clientName, type OAuthContext, type ResolvedClient } from '../context.js';
import {
  InvalidRequestError,
  InvalidTargetError,
  OAuthError,
  UnsupportedResponseTypeError,
} from '../errors.js';
import { channelForHost, redirectHost } from '../hosts.js';
import { errorPage, unmappedHostPage } from '../pages.js';
import {
  comparableResource as comparable,
  parseScopes,
  redirectUriMatches,
  type Scope,
  safeHost,
  single,
} from '../params.js';
import { PKCE_CHALLENGE } from '../secrets.js';

/** A validated authorization request, ready to show on the consent page or to turn into a code. */
export interface AuthorizationRequest {
  client: ResolvedClient;
  redirectUri: string;
  state: string | undefined;
  codeChallenge: string;
  scopes: Scope[];
  resource: string;
  channel: string;
  /** Exactly where the browser goes back to: scheme, host and port. */
  returnOrigin: string;
}

export type Resolution =
  | { kind: 'ok'; request: AuthorizationRequest }
  | { kind: 'page'; status: number; html: string }
  | { kind: 'redirect'; url: string };

const page = (status: number, title: string, message: string): Resolution => ({
  kind: 'page',
  status,
  html: errorPage(title, message),
});

/** The client's redirect URI with these parameters and, per RFC 9207, our issuer added. */
export function redirectWith(
  issuer: string,
  redirectUri: string,
  params: Record<string, string | undefined>,
): string {
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.set(key, value);
  // RFC 9207: the response names its issuer, so a client talking to several servers cannot be mixed up.
  url.searchParams.set('iss', issuer);
  return url.href;
}

/** The client and the redirect URI it may return to; failures are pages, never redirects. */
async function clientAndRedirect(
  ctx: OAuthContext,
  params: Record<string, unknown>,
): Promise<Resolution | { client: ResolvedClient; redirectUri: string }> {
  const clientId = single(params, 'client_id');
  if (!clientId)
    return page(
      400,
      'Sign-in request incomplete',
      'The app did not say who it is (client_id is missing). Go back to the app and connect again.',
    );
  const client = await ctx.loadClient(clientId, true);
  if (!client) {
    return page(
      400,
      'Unknown app',
      'This shop does not know the app that sent you here. Go back to the app and connect again: it will register anew.',
    );
  }
  const requested = single(params, 'redirect_uri');
  if (requested === undefined) {
    if (client.metadata.redirect_uris.length !== 1) {
      return page(
        400,
        'Sign-in request incomplete',
        'The app did not say where to return (redirect_uri is missing).',
      );
    }
    return { client, redirectUri: checkRedirectUri(client.metadata.redirect_uris[0]) };
  }
  if (!client.metadata.redirect_uris.some((registered) => redirectUriMatches(requested, registered))) {
    ctx.logger.warn(
      { client: client.clientId, redirectHost: safeHost(requested) },
      'refused an unregistered redirect URI',
    );
    return page(
      400,
      'Unregistered return address',
      'The app asked to return to an address it did not register, so this sign-in was stopped.',
    );
  }
  // A registration stored before the https-only rule may still hold another scheme.
  return { client, redirectUri: checkRedirectUri(requested) };
}

/** Checks a whole authorization request: a consent page to show, an error page, or an error redirect. */
export async function resolveAuthorization(
  ctx: OAuthContext,
  params: Record<string, unknown>,
): Promise<Resolution> {
  // Until the client and its redirect URI are known good, errors are shown here, never redirected.
  let known: Awaited<ReturnType<typeof clientAndRedirect>>;
  try {
    known = await clientAndRedirect(ctx, params);
  } catch (error) {
    if (error instanceof ClientMetadataError) {
      ctx.logger.warn(
        { reason: error.message, ...(error.detail ? { detail: error.detail } : {}) },
        'refused a client metadata document',
      );
      return page(400, 'The app could not be verified', error.message);
    }
    if (error instanceof OAuthError) return page(400, 'Bad sign-in request', error.message);
    throw error;
  }
  if ('kind' in known) return known;
  const { client, redirectUri } = known;
  // From here errors go back to the client, so only to a host the merchant allows.
  const host = redirectHost(redirectUri);
  const mapping = channelForHost(host, await ctx.store.hostRules());
  if (!mapping.channel) {
    ctx.logger.warn({ client: client.clientId, host }, 'refused a sign-in from an unmapped host');
    return {
      kind: 'page',
      status: 403,
      html: unmappedHostPage(host, mapping.channel === null, clientName(client)),
    };
  }

  let state: string | undefined;
  try {
    state = single(params, 'state');
    if (single(params, 'response_type') !== 'code') {
      throw new UnsupportedResponseTypeError('response_type must be code');
    }
    const codeChallenge = single(params, 'code_challenge');
    if (single(params, 'code_challenge_method') !== 'S256' || !codeChallenge) {
      throw new InvalidRequestError('PKCE is required: send code_challenge with code_challenge_method S256');
    }
    if (!PKCE_CHALLENGE.test(codeChallenge)) {
      throw new InvalidRequestError('code_challenge must be 43 base64url characters (S256)');
    }
    const requestedResource = single(params, 'resource');
    if (requestedResource !== undefined && comparable(requestedResource) !== ctx.resourceKey) {
      throw new InvalidTargetError(`this server issues tokens only for ${ctx.resource}`);
    }
    const scopes = parseScopes(single(params, 'scope'));
    return {
      kind: 'ok',
      request: {
        client,
        redirectUri,
        state,
        codeChallenge,
        scopes,
        resource: ctx.resource,
        channel: mapping.channel,
        returnOrigin: new URL(redirectUri).origin,
      },
    };
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    return {
      kind: 'redirect',
      url: redirectWith(ctx.issuer, redirectUri, {
        error: error.code,
        error_description: error.message,
        state,
      }),
    };
  }
}
