// Rate-limit counters in the SQLite file itself, so every process on it shares them.
import type Database from 'better-sqlite3';
import { RateLimiterSQLite } from 'rate-limiter-flexible';
import type { RateLimiter } from '../../domain/limits.js';
import { limiterCache, RATE_LIMIT_TABLE, toRateLimiter } from '../limits.js';

/** The library's own table definition, made before the first count: the library would make it a tick late. */
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${RATE_LIMIT_TABLE} (key TEXT PRIMARY KEY, points INTEGER NOT NULL DEFAULT 0, expire INTEGER)`;

export function sqliteLimiters(db: Database.Database) {
  let created = false;
  const ensureTable = () => {
    if (created) return;
    // A database that takes no writes right now: the limiter counts in memory until it does.
    try {
      db.prepare(CREATE_TABLE).run();
      created = true;
    } catch {}
  };
  return limiterCache((name, points, durationS): RateLimiter => {
    const limiter = toRateLimiter(
      points,
      durationS,
      (insurance) =>
        new RateLimiterSQLite({
          storeClient: db,
          storeType: 'better-sqlite3',
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
      consume(key) {
        ensureTable();
        return limiter.consume(key);
      },
      check(key) {
        ensureTable();
        return limiter.check(key);
      },
    };
  });
}
