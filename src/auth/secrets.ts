// Secrets OAuth hands out (codes, tokens, client secrets) and the one hash the store keeps of each.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Prefixes tell secret scanners, logs and the bearer check what a string is without a lookup. */
export const SecretPrefix = {
  ACCESS: 'sla_',
  REFRESH: 'slr_',
  CODE: 'slc_',
  CLIENT_SECRET: 'slcs_',
} as const;

/** 256 random bits: guessing is hopeless, so a single SHA-256 is all the hashing a stored copy needs. */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares two hex digests in constant time. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** RFC 7636 S256: BASE64URL(SHA256(verifier)). */
export function pkceChallenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** RFC 7636 §4.1: 43 to 128 unreserved characters. */
export const PKCE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** An S256 challenge is exactly 43 base64url characters. */
export const PKCE_CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;
