// Client metadata from either registration path: DCR bodies (RFC 7591) and Client ID Metadata Documents, checked alike.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface ClientMetadata {
  client_name?: string;
  client_uri?: string;
  redirect_uris: string[];
  token_endpoint_auth_method: 'none' | 'client_secret_post' | 'client_secret_basic';
  /** OpenID Connect's `native` (desktop and command-line apps, loopback redirects) or `web`, when the client says. */
  application_type?: ApplicationType;
}

const APPLICATION_TYPES = ['native', 'web'] as const;
export type ApplicationType = (typeof APPLICATION_TYPES)[number];

/** Text a client chose, cut short for a refusal's message: pages and log lines stay small. */
export function clip(text: string, max = 120): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** A registration or metadata document that cannot be accepted; the message says why. */
export class ClientMetadataError extends Error {
  constructor(
    message: string,
    /** What went wrong on the network, for the log only: the page must not tell open ports from closed. */
    readonly detail?: string,
  ) {
    super(message);
  }
}

// Every registration is stored and anyone may register: what one can make the database keep is bounded.
const MAX_REDIRECT_URIS = 10;
const MAX_URI_LENGTH = 512;
const MAX_NAME_LENGTH = 200;
const AUTH_METHODS = ['none', 'client_secret_post', 'client_secret_basic'] as const;
const LOOPBACK_REDIRECT_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * A redirect URI a client may register: https anywhere, or http to loopback (native apps, RFC 8252 §7.3);
 * never a fragment or credentials. A private-use scheme (evilapp://claude.ai/…) is refused: any app may
 * claim it, and the host it names proves nothing about where the browser goes.
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
  if (url.protocol === 'http:' && !LOOPBACK_REDIRECT_HOSTS.has(url.hostname)) {
    throw new ClientMetadataError(`redirect URI "${uri}" must use https (http is only for loopback)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ClientMetadataError(
      `redirect URI "${uri}" uses the scheme ${url.protocol}; only https (or http to loopback) is accepted`,
    );
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
  // Which redirect URIs are allowed does not depend on it: https anywhere, http to loopback (above).
  const applicationType = doc.application_type;
  if (applicationType !== undefined && !APPLICATION_TYPES.includes(applicationType as never)) {
    throw new ClientMetadataError(
      `application_type "${clip(String(applicationType))}" is not supported; use ${APPLICATION_TYPES.join(' or ')}`,
    );
  }
  const name = doc.client_name;
  if (name !== undefined && (typeof name !== 'string' || name.length > MAX_NAME_LENGTH)) {
    throw new ClientMetadataError(`client_name must be a string of at most ${MAX_NAME_LENGTH} characters`);
  }
  const clientUri = doc.client_uri;
  if (
    clientUri !== undefined &&
    (typeof clientUri !== 'string' || !/^https:\/\//i.test(clientUri) || clientUri.length > MAX_URI_LENGTH)
  ) {
    throw new ClientMetadataError(`client_uri must be an https URL of at most ${MAX_URI_LENGTH} characters`);
  }
  return {
    ...(typeof name === 'string' && name.trim() ? { client_name: name.trim() } : {}),
    ...(typeof clientUri === 'string' ? { client_uri: clientUri } : {}),
    redirect_uris: uris.map(checkRedirectUri),
    token_endpoint_auth_method: method as ClientMetadata['token_endpoint_auth_method'],
    ...(applicationType !== undefined ? { application_type: applicationType as ApplicationType } : {}),
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

/**
 * The IPv4 address an IPv6 address carries and routes to, if any: mapped (::ffff:a.b.c.d), translated
 * (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4 (2002:aabb:ccdd::/48) and NAT64 (64:ff9b::/96).
 */
function embeddedIPv4(ip: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const bytes = ip.toByteArray();
  const range = ip.range();
  if (range === 'ipv4Mapped' || range === 'rfc6145') return new ipaddr.IPv4(bytes.slice(12));
  if (range === '6to4') return new ipaddr.IPv4(bytes.slice(2, 6));
  const nat64 = ip.parts[0] === 0x64 && ip.parts[1] === 0xff9b && ip.parts.slice(2, 6).every((p) => p === 0);
  if (nat64) return new ipaddr.IPv4(bytes.slice(12));
  const compatible =
    bytes.slice(0, 12).every((b) => b === 0) && range !== 'unspecified' && range !== 'loopback';
  if (compatible) return new ipaddr.IPv4(bytes.slice(12));
  return undefined;
}

/**
 * Why this address may not be fetched, or undefined when it may. Only ipaddr.js's ordinary unicast range
 * is public; an IPv6 address carrying an IPv4 one is judged by the IPv4 address it reaches.
 */
export function refusedAddress(address: string, allowLoopback: boolean): string | undefined {
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.parse(address.replace(/%.*$/, ''));
  } catch {
    return `${address} is not an IP address`;
  }
  const v6 = ip.kind() === 'ipv6' ? (ip as ipaddr.IPv6) : undefined;
  const embedded = v6 ? embeddedIPv4(v6) : undefined;
  const range = (embedded ?? ip).range();
  if (range === 'unicast') return undefined;
  if (range === 'loopback') {
    // Loopback reached by translation (6to4, NAT64, compatible) is someone else's loopback: never.
    const direct = !embedded || v6?.range() === 'ipv4Mapped';
    return allowLoopback && direct
      ? undefined
      : `${address} is a loopback address (allowed only while this server itself runs on loopback)`;
  }
  return `${address} is a private or reserved address`;
}

/** A CIMD client_id: an https URL with a path, no fragment, credentials or dot segments. */
export function isClientMetadataUrl(clientId: string): boolean {
  return clientId.startsWith('https://');
}

function checkClientIdUrl(clientId: string): URL {
  if (clientId.length > MAX_URI_LENGTH) {
    throw new ClientMetadataError(
      `client_id "${clip(clientId)}" is longer than ${MAX_URI_LENGTH} characters`,
    );
  }
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
        response.on('error', (error) => reject(unreachable(error.message)));
      },
    );
    // Refused, reset, unreachable, not TLS, too slow: one answer, so the page cannot be used to probe ports.
    const unreachable = (detail: string) =>
      new ClientMetadataError(
        `the metadata document at ${clientId} could not be fetched (no answer over https within ${options.timeoutMs} ms)`,
        detail,
      );
    const deadline = setTimeout(() => {
      request.destroy();
      reject(unreachable('timeout'));
    }, options.timeoutMs);
    request.on('close', () => clearTimeout(deadline));
    request.on('error', (error) => {
      clearTimeout(deadline);
      reject(error instanceof ClientMetadataError ? error : unreachable(error.message));
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
      `the metadata document at ${clientId} names client_id ${clip(JSON.stringify(named) ?? 'nothing')}; it must name its own URL`,
    );
  }
  const metadata = parseClientMetadata(doc, 'none');
  if (metadata.token_endpoint_auth_method !== 'none') {
    throw new ClientMetadataError('a metadata-document client must use token_endpoint_auth_method "none"');
  }
  return metadata;
}
