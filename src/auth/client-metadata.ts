// Client metadata from either registration path: DCR bodies (RFC 7591) and Client ID Metadata Documents, checked alike.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export interface ClientMetadata {
  client_name?: string;
  client_uri?: string;
  redirect_uris: string[];
  token_endpoint_auth_method: 'none' | 'client_secret_post' | 'client_secret_basic';
}

/** A registration or metadata document that cannot be accepted; the message says why. */
export class ClientMetadataError extends Error {}

const MAX_REDIRECT_URIS = 20;
const MAX_URI_LENGTH = 2000;
const MAX_NAME_LENGTH = 200;
const AUTH_METHODS = ['none', 'client_secret_post', 'client_secret_basic'] as const;
const LOOPBACK_REDIRECT_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);
const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'file:', 'blob:', 'about:', 'vbscript:', 'ftp:']);

/**
 * A redirect URI a client may register: https anywhere, http only to loopback (native apps, RFC 8252 §7.3),
 * or a private-use scheme of a native app (cursor://, vscode://); never a fragment or a script scheme.
 */
export function checkRedirectUri(uri: unknown): string {
  if (typeof uri !== 'string' || uri.length === 0 || uri.length > MAX_URI_LENGTH) {
    throw new ClientMetadataError(`redirect URI must be a URL of at most ${MAX_URI_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new ClientMetadataError(`redirect URI "${uri}" is not an absolute URL`);
  }
  if (url.hash || uri.includes('#')) throw new ClientMetadataError(`redirect URI "${uri}" has a fragment`);
  if (url.username || url.password)
    throw new ClientMetadataError(`redirect URI "${uri}" carries credentials`);
  if (FORBIDDEN_SCHEMES.has(url.protocol)) {
    throw new ClientMetadataError(
      `redirect URI "${uri}" uses the scheme ${url.protocol}, which cannot receive a code`,
    );
  }
  if (url.protocol === 'http:' && !LOOPBACK_REDIRECT_HOSTS.has(url.hostname)) {
    throw new ClientMetadataError(`redirect URI "${uri}" must use https (http is only for loopback)`);
  }
  return uri;
}

/** Validates client metadata from a DCR body or a CIMD document; unknown fields are dropped. */
export function parseClientMetadata(
  body: unknown,
  defaultAuthMethod: ClientMetadata['token_endpoint_auth_method'],
): ClientMetadata {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ClientMetadataError('client metadata must be a JSON object');
  }
  const doc = body as Record<string, unknown>;
  const uris = doc.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0) {
    throw new ClientMetadataError('redirect_uris must list at least one redirect URI');
  }
  if (uris.length > MAX_REDIRECT_URIS) {
    throw new ClientMetadataError(`redirect_uris may list at most ${MAX_REDIRECT_URIS} URIs`);
  }
  const method = doc.token_endpoint_auth_method ?? defaultAuthMethod;
  if (!AUTH_METHODS.includes(method as never)) {
    throw new ClientMetadataError(
      `token_endpoint_auth_method "${String(method)}" is not supported; use one of ${AUTH_METHODS.join(', ')}`,
    );
  }
  for (const [field, allowed] of [
    ['grant_types', ['authorization_code', 'refresh_token']],
    ['response_types', ['code']],
  ] as const) {
    const value = doc[field];
    if (value === undefined) continue;
    if (!Array.isArray(value) || value.some((v) => !(allowed as readonly string[]).includes(v as string))) {
      throw new ClientMetadataError(`${field} may only contain ${allowed.join(', ')}`);
    }
  }
  const name = doc.client_name;
  if (name !== undefined && (typeof name !== 'string' || name.length > MAX_NAME_LENGTH)) {
    throw new ClientMetadataError(`client_name must be a string of at most ${MAX_NAME_LENGTH} characters`);
  }
  const clientUri = doc.client_uri;
  if (clientUri !== undefined && (typeof clientUri !== 'string' || !/^https:\/\//i.test(clientUri))) {
    throw new ClientMetadataError('client_uri must be an https URL');
  }
  return {
    ...(typeof name === 'string' && name.trim() ? { client_name: name.trim() } : {}),
    ...(typeof clientUri === 'string' ? { client_uri: clientUri } : {}),
    redirect_uris: uris.map(checkRedirectUri),
    token_endpoint_auth_method: method as ClientMetadata['token_endpoint_auth_method'],
  };
}

// ------------------------------------------------------------------ Client ID Metadata Documents

export interface FetchOptions {
  /** True only when this server itself runs on loopback (development): loopback documents are then allowed. */
  allowLoopback: boolean;
  maxBytes: number;
  timeoutMs: number;
  /** Extra trusted CA certificates (PEM), for a private CA; the system store is used besides. */
  ca?: string;
}

export const DEFAULT_FETCH: Omit<FetchOptions, 'allowLoopback'> = { maxBytes: 16 * 1024, timeoutMs: 5_000 };

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Addresses a metadata fetch must never reach: private, link-local, shared, multicast, reserved. */
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 3],
] as const) {
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:10.0.0.1), else the address itself. */
function unmapped(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1] as string, family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

/** Why this address may not be fetched, or undefined when it may. */
export function refusedAddress(address: string, allowLoopback: boolean): string | undefined {
  const { address: plain, family } = unmapped(address);
  if (allowLoopback && LOOPBACK.check(plain, family)) return undefined;
  if (NOT_PUBLIC.check(plain, family)) {
    return LOOPBACK.check(plain, family)
      ? `${address} is a loopback address (allowed only while this server itself runs on loopback)`
      : `${address} is a private or reserved address`;
  }
  return undefined;
}

/** A CIMD client_id: an https URL with a path, no fragment, credentials or dot segments. */
export function isClientMetadataUrl(clientId: string): boolean {
  return clientId.startsWith('https://');
}

function checkClientIdUrl(clientId: string): URL {
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    throw new ClientMetadataError(`client_id "${clientId}" is not a URL`);
  }
  if (url.protocol !== 'https:') throw new ClientMetadataError('a client_id URL must use https');
  if (
    url.pathname === '/' ||
    url.hash ||
    url.username ||
    url.password ||
    /\/\.\.?(\/|$)/.test(url.pathname)
  ) {
    throw new ClientMetadataError(
      `client_id "${clientId}" must be an https URL with a path, and no fragment, credentials or dot segments`,
    );
  }
  if (url.href !== clientId)
    throw new ClientMetadataError(`client_id "${clientId}" is not in normal form (${url.href})`);
  return url;
}

/** dns.lookup that refuses names resolving to an address we may not reach; checked on the address connected to. */
function guardedLookup(allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 4);
      const refused = addresses.map((a) => refusedAddress(a.address, allowLoopback)).find(Boolean);
      if (refused) return callback(new ClientMetadataError(`${hostname} resolves to ${refused}`), '', 4);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0] as LookupAddress;
      return callback(null, first.address, first.family);
    });
  };
}

/**
 * Fetches and checks a Client ID Metadata Document: https only, no redirects, a size cap and a deadline, no
 * private addresses, and the document must name itself as client_id.
 */
export async function fetchClientMetadata(clientId: string, options: FetchOptions): Promise<ClientMetadata> {
  const url = checkClientIdUrl(clientId);
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal)) {
    const refused = refusedAddress(literal, options.allowLoopback);
    if (refused) throw new ClientMetadataError(`client_id ${clientId} points at ${refused}`);
  }
  const body = await new Promise<string>((resolve, reject) => {
    const fail = (message: string) => {
      request.destroy();
      reject(new ClientMetadataError(message));
    };
    const request = httpsRequest(
      url,
      {
        method: 'GET',
        headers: { accept: 'application/json', 'user-agent': 'stocklock' },
        lookup: guardedLookup(options.allowLoopback),
        ...(options.ca ? { ca: options.ca } : {}),
        agent: false,
      },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          fail(`the metadata document at ${clientId} redirects (${status}); redirects are not followed`);
          return;
        }
        if (status !== 200) {
          fail(`the metadata document at ${clientId} answered HTTP ${status}`);
          return;
        }
        const declared = Number(response.headers['content-length']);
        if (declared > options.maxBytes) {
          fail(`the metadata document at ${clientId} is larger than ${options.maxBytes} bytes`);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            fail(`the metadata document at ${clientId} is larger than ${options.maxBytes} bytes`);
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        response.on('error', (error) =>
          reject(new ClientMetadataError(`reading ${clientId} failed: ${error.message}`)),
        );
      },
    );
    const deadline = setTimeout(
      () => fail(`the metadata document at ${clientId} did not arrive within ${options.timeoutMs} ms`),
      options.timeoutMs,
    );
    request.on('close', () => clearTimeout(deadline));
    request.on('error', (error) => {
      clearTimeout(deadline);
      reject(
        error instanceof ClientMetadataError
          ? error
          : new ClientMetadataError(`fetching ${clientId} failed: ${error.message}`),
      );
    });
    request.end();
  });
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new ClientMetadataError(`the metadata document at ${clientId} is not JSON`);
  }
  const named = (doc as { client_id?: unknown } | null)?.client_id;
  if (named !== clientId) {
    throw new ClientMetadataError(
      `the metadata document at ${clientId} names client_id ${JSON.stringify(named)}; it must name its own URL`,
    );
  }
  const metadata = parseClientMetadata(doc, 'none');
  if (metadata.token_endpoint_auth_method !== 'none') {
    throw new ClientMetadataError('a metadata-document client must use token_endpoint_auth_method "none"');
  }
  return metadata;
}
