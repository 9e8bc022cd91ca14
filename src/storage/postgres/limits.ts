// Rate-limit counters in the PostgreSQL database, so every server of a pool shares them.
import type pg from 'pg';
import { RateLimiterPostgres } from 'rate-limiter-flexible';
import type { RateLimiter } from '../../domain/limits.js';
import { limiterCache, RATE_LIMIT_TABLE, toRateLimiter } from '../limits.js';

/** The library's own table definition; servers racing to make it are harmless (IF NOT EXISTS). */
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${RATE_LIMIT_TABLE} (key varchar(255) PRIMARY KEY, points integer NOT NULL DEFAULT 0, expire bigint)`;

export function postgresLimiters(pool: pg.Pool) {
  let table: Promise<boolean> | undefined;
  // Made before the first count; a failure is tried again next time (meanwhile the count is in memory).
  const ensureTable = () =>
    (table ??= pool.query(CREATE_TABLE).then(
      () => true,
      () => {
        table = undefined;
        return false;
      },
    ));
  return limiterCache((name, points, durationS): RateLimiter => {
    const limiter = toRateLimiter(
      points,
      durationS,
      (insurance) =>
        new RateLimiterPostgres({
          storeClient: pool,
          storeType: 'pool',
          tableName: RATE_LIMIT_TABLE,
          tableCreated: true,
          clearExpiredByTimeout: true,
          keyPrefix: name,
          points,
          duration: durationS,
          insuranceLimiter: insurance,
        }),
    );
    return {
      async consume(key) {
        await ensureTable();
        return limiter.consume(key);
      },
      async check(key) {
        await ensureTable();
        return limiter.check(key);
      },
    };
  });
}
