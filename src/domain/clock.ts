// Time comes from a clock object so tests can move it without sleeping.

/**
 * How a store on a shared database (PostgreSQL) tells the time. Servers of one database agree on which
 * holds are live only if they all take the time from the database, so that is the rule: the database's
 * clock plus `offsetMs` (0 in production; tests move it to drive expiry without sleeping). A test clock
 * may instead name the instant outright with `fixedAt`.
 */
export interface DatabaseTime {
  fixedAt: number | null;
  offsetMs: number;
}

export interface Clock {
  /** Milliseconds since the Unix epoch: what an embedded (SQLite) store decides by. */
  now(): number;
  /** The time on a shared database; left out, the database's own clock as it is. */
  databaseTime?(): DatabaseTime;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  databaseTime: () => ({ fixedAt: null, offsetMs: 0 }),
};

/** A clock that only moves when told to, on every store: it stands in for the database's clock too. */
export class ManualClock implements Clock {
  constructor(private current = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.current;
  }

  databaseTime(): DatabaseTime {
    return { fixedAt: this.current, offsetMs: 0 };
  }

  advance(ms: number): void {
    this.current += ms;
  }

  set(ms: number): void {
    this.current = ms;
  }
}
