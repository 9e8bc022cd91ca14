// Reading OAuth request parameters: single values, scopes, redirect URIs and resource indicators compared.
import { Buffer } from 'node:buffer';
import { timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { InvalidRequestError, InvalidScopeError } from './errors.js';

export const Scope = { SHOP: 'stock:shop', ADMIN: 'stock:admin' } as const;
export type Scope = (typeof Scope)[keyof typeof Scope];
export const SCOPES: readonly Scope[] = [Scope.SHOP, Scope.ADMIN];

/** A request parameter given once, or undefined; a repeated parameter is an error (RFC 6749 §3.1). */
export function single(source: Record<string, unknown>, name: string): string | undefined {
  const value = source[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new InvalidRequestError(`${name} must be given once`);
  return value;
}

const LOOPBACK_IP_REDIRECT = new Set(['127.0.0.1', '[::1]']);

/** Exact match; for loopback IP redirects the port may differ (RFC 8252 §7.3). */
export function redirectUriMatches(requested: string, registered: string): boolean {
  if (requested === registered) return true;
  let req: URL;
  let reg: URL;
  try {
    req = new URL(requested);
    reg = new URL(registered);
  } catch {
    return false;
  }
  return (
    req.protocol === 'http:' &&
    reg.protocol === 'http:' &&
    LOOPBACK_IP_REDIRECT.has(req.hostname) &&
    req.hostname === reg.hostname &&
    req.pathname === reg.pathname &&
    req.search === reg.search &&
    !req.hash
  );
}

/** The form of a URL for comparing resource indicators: no fragment, no trailing slash. */
export function comparableResource(value: string): string | undefined {
  try {
    const url = new URL(value);
    url.hash = '';
    return url.href.replace(/\/$/, '');
  } catch {
    return undefined;
  }
}

export function parseScopes(requested: string | undefined): Scope[] {
  const words = (requested ?? '').split(' ').filter((w) => w.length > 0);
  const known: Scope[] = [];
  for (const word of words) {
    if ((SCOPES as readonly string[]).includes(word)) known.push(word as Scope);
    // offline_access asks for a refresh token, which every grant gets anyway.
    else if (word !== 'offline_access')
      throw new InvalidScopeError(`unknown scope "${word}"; this server offers ${SCOPES.join(', ')}`);
  }
  // ChatGPT omits the scope on reconnect: an omitted scope means shopping.
  return known.length === 0 ? [Scope.SHOP] : [...new Set(known)];
}

export const grantedScope = (admin: boolean) => (admin ? `${Scope.SHOP} ${Scope.ADMIN}` : Scope.SHOP);

export function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}

/** Compares two strings in constant time. */
export function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The host of a URI for a log line, or undefined when it is not a URL. */
export function safeHost(uri: string): string | undefined {
  try {
    return new URL(uri).host;
  } catch {
    return undefined;
  }
}
