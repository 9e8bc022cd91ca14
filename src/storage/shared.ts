// Helpers every store uses the same way: request fingerprints, token hashing, search terms.
import { createHash, randomBytes } from 'node:crypto';

/** A stable digest of a request, to tell an idempotent replay from a reused key. */
export function fingerprint(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

/** Tokens carry 256 random bits, so one SHA-256 is enough: there is nothing to brute-force. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** `slk_` makes a leaked token easy for secret scanners to recognise. */
export function newTokenSecret(): string {
  return `slk_${randomBytes(32).toString('base64url')}`;
}

/** Splits a search query into LIKE patterns, escaping LIKE's own wildcards. */
export function searchTerms(query: string): string[] {
  return query
    .trim()
    .split(/\s+/)
    .filter((term) => term.length > 0)
    .slice(0, 10)
    .map((term) => term.replace(/[\\%_]/g, (c) => `\\${c}`));
}
