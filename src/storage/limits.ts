// Rate limiters over rate-limiter-flexible, one table for every limiter, both dialects alike.
import { RateLimiterMemory, RateLimiterRes, type RateLimiterStoreAbstract } from 'rate-limiter-flexible';
import type { RateLimiter } from '../domain/limits.js';

/** The library's table, created by the library's own statement (its schema is the library's, not ours). */
export const RATE_LIMIT_TABLE = 'stocklock_rate_limits';

/**
 * Wraps a store-backed limiter: a database that cannot count right now (busy, read-only, gone) falls back
 * to counting in this process's memory, so a limit still holds per server and no request fails for it.
 */
export function toRateLimiter(
  points: number,
  durationS: number,
  make: (insurance: RateLimiterMemory) => RateLimiterStoreAbstract,
): RateLimiter {
  let made: RateLimiterStoreAbstract | undefined;
  const limiter = () => {
    made ??= make(new RateLimiterMemory({ points, duration: durationS }));
    return made;
  };
  return {
    async consume(key) {
      try {
        await limiter().consume(key);
        return { allowed: true };
      } catch (refusal) {
        if (refusal instanceof RateLimiterRes) return { allowed: false, retryAfterMs: refusal.msBeforeNext };
        throw refusal;
      }
    },
    async check(key) {
      const used = await limiter().get(key);
      return used && used.consumedPoints >= points
        ? { allowed: false, retryAfterMs: used.msBeforeNext }
        : { allowed: true };
    },
  };
}

/** One limiter per name and rate, made once: each holds a timer that clears expired rows. */
export function limiterCache(make: (name: string, points: number, durationS: number) => RateLimiter) {
  const made = new Map<string, RateLimiter>();
  return (name: string, points: number, durationS: number): RateLimiter => {
    const id = `${name}/${points}/${durationS}`;
    let limiter = made.get(id);
    if (!limiter) {
      limiter = make(name, points, durationS);
      made.set(id, limiter);
    }
    return limiter;
  };
}
