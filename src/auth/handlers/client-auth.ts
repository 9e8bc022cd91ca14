// Client authentication at the token and revocation endpoints: client_secret_basic, client_secret_post or none.
import { Buffer } from 'node:buffer';
import type { Request } from 'express';
import { ClientMetadataError } from '../client-metadata.js';
import type { OAuthContext, ResolvedClient } from '../context.js';
import { InvalidClientError, InvalidRequestError } from '../errors.js';
import { single } from '../params.js';
import { hashSecret, sameHash } from '../secrets.js';

/** Basic credentials are percent-encoded (RFC 6749 §2.3.1): a malformed escape is bad credentials, not a crash. */
function formDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new InvalidClientError('malformed Basic credentials');
  }
}

/** The client a request speaks for, authenticated by its secret when it has one. */
export async function authenticateClient(
  ctx: OAuthContext,
  req: Request,
  body: Record<string, unknown>,
): Promise<ResolvedClient> {
  let clientId = single(body, 'client_id');
  let secret = single(body, 'client_secret');
  const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (basic) {
    const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new InvalidClientError('malformed Basic credentials');
    const basicId = formDecode(decoded.slice(0, colon));
    if (clientId !== undefined && clientId !== basicId) {
      throw new InvalidRequestError('client_id differs between the header and the body');
    }
    clientId = basicId;
    secret = formDecode(decoded.slice(colon + 1));
  }
  if (!clientId) throw new InvalidClientError('client_id is required');
  let client: ResolvedClient | undefined;
  try {
    client = await ctx.loadClient(clientId, false);
  } catch (error) {
    if (error instanceof ClientMetadataError) throw new InvalidClientError(error.message);
    throw error;
  }
  if (!client) throw new InvalidClientError('unknown client; register again');
  if (client.secretHash) {
    if (!secret || !sameHash(hashSecret(secret), client.secretHash)) {
      throw new InvalidClientError('client authentication failed');
    }
  }
  return client;
}
