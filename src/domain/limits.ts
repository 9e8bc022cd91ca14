// Rate limits: how often one caller may do a costly thing, and the defaults a busy shop lives with.
import { parseDuration } from './rules.js';

/** `points` requests per `durationS` seconds, counted per key (an address, a grant, a code). */
export interface Rate {
  points: number;
  durationS: number;
}

export type RateVerdict = { allowed: true } | { allowed: false; retryAfterMs: number };

/** A counter kept in the store, so every server of a pool shares it. */
export interface RateLimiter {
  /** Counts one request for `key`; over the limit, says how long until the next one is allowed. */
  consume(key: string): Promise<RateVerdict>;
  /** Whether `key` has used up its requests, without counting one (for limits that count failures only). */
  check(key: string): Promise<RateVerdict>;
}

export interface RateLimits {
  /** Consent form posts (and so new grants) per client address. */
  consent: Rate | null;
  /** Dynamic client registrations per client address. */
  register: Rate | null;
  /** Token requests per grant (refresh). */
  tokenPerGrant: Rate | null;
  /** Token requests per authorization code. */
  tokenPerCode: Rate | null;
  /** Failed console sign-ins per client address. */
  consoleSignIn: Rate | null;
  /** New carts (add_to_cart without cart_id) per OAuth grant. */
  newCarts: Rate | null;
}

/**
 * Sized for a shop with thousands of ChatGPT and Claude shoppers: a shopper's browser posts consent a
 * few times a day; a host's backend registers and calls the token endpoint for all its users from a few
 * addresses, so those are counted per grant and code, and registration per address is wide.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  consent: { points: 30, durationS: 600 },
  register: { points: 300, durationS: 600 },
  tokenPerGrant: { points: 60, durationS: 3600 },
  tokenPerCode: { points: 10, durationS: 300 },
  consoleSignIn: { points: 10, durationS: 900 },
  newCarts: { points: 30, durationS: 600 },
};

/** "30/10m" (30 per 10 minutes), or "off" (null: no limit). */
export function parseRate(text: string, flag: string): Rate | null {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'off') return null;
  const match = /^(\d+)\s*\/\s*(.+)$/.exec(trimmed);
  const points = Number(match?.[1]);
  if (!match || !Number.isSafeInteger(points) || points < 1) {
    throw new Error(`${flag} must be COUNT/DURATION (e.g. 30/10m) or off, got "${text}"`);
  }
  const ms = parseDuration(match[2] as string);
  if (ms < 1000) throw new Error(`${flag}: the window must be at least 1s, got "${text}"`);
  return { points, durationS: Math.round(ms / 1000) };
}

/** "30/10m" as parseRate reads it back, or "off". */
export function formatRate(rate: Rate | null): string {
  if (!rate) return 'off';
  const { points, durationS } = rate;
  if (durationS % 3600 === 0) return `${points}/${durationS / 3600}h`;
  if (durationS % 60 === 0) return `${points}/${durationS / 60}m`;
  return `${points}/${durationS}s`;
}
