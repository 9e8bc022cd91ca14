// Helpers every store uses the same way: request fingerprints, token hashing, search terms.
import { createHash, randomBytes } from 'node:crypto';
import { refuse } from '../domain/errors.js';
import { iso } from '../domain/rules.js';
import type { CallContext, TokenRecord } from '../domain/types.js';
import type { IssuedToken } from './store.js';

/** A stable digest of a request, to tell an idempotent replay from a reused key. */
export function fingerprint(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

/** The holder column of a cart: an OAuth grant's id, or '' for the whole channel (static tokens, stdio). */
export function holderOf(ctx: CallContext): string {
  return ctx.holder ?? '';
}

/**
 * A call that may carry an idempotency key: its record is scoped by channel (and OAuth holder) and tool, so one
 * shopper's key never replays another's cart.
 */
export interface KeyedCall {
  channel: string;
  tool: string;
  key: string;
  print: string;
}

/** The keyed call of a tool, or undefined when the caller sent no key. */
export function keyedCall(
  ctx: CallContext,
  tool: string,
  key: string | undefined,
  request: unknown[],
): KeyedCall | undefined {
  if (key === undefined) return undefined;
  // A holder's records live under their own scope; a channel name (a-z 0-9 . _ -) never contains '#'.
  const channel = ctx.holder ? `${ctx.channel}#${ctx.holder}` : ctx.channel;
  return { channel, tool, key, print: fingerprint(request) };
}

/** The result stored for this call's key, or undefined; the key reused for another request is refused. */
export function replayOf(
  call: KeyedCall,
  record: { fingerprint: string; result: string } | undefined,
): unknown {
  if (!record) return undefined;
  if (record.fingerprint !== call.print) throw refuse.idempotencyConflict(call.key);
  return JSON.parse(record.result);
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

/** A token row as either store returns it (SQLite keeps booleans as 0/1). */
export interface StoredToken {
  id: string;
  channel: string;
  admin: number | boolean;
  label: string | null;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

export function tokenRecord(row: StoredToken): TokenRecord {
  return {
    id: row.id,
    channel: row.channel,
    admin: Boolean(row.admin),
    label: row.label,
    created_at: iso(row.created_at),
    revoked_at: row.revoked_at === null ? null : iso(row.revoked_at),
    last_used_at: row.last_used_at === null ? null : iso(row.last_used_at),
  };
}

/** What `token create` returns: the secret, shown once, and the record of a token made at `now`. */
export function issuedToken(
  token: string,
  record: { id: string; channel: string; admin: boolean; label: string | null },
  now: number,
): IssuedToken {
  return { token, record: { ...record, created_at: iso(now), revoked_at: null, last_used_at: null } };
}
