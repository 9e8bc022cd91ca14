// Console sessions in the shared table, on a real SQLite file and a real PostgreSQL database: hashes only,
// absolute and idle expiry, revocation, pruning, and two servers (two connections) sharing one session.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { csrfFor, SessionTable, sameSecret } from '../../src/console/sessions.js';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { ConsoleQueries } from '../../src/storage/console-queries.js';
import { openStore } from '../../src/storage/open.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import { hashToken } from '../../src/storage/shared.js';
import type { StoreOptions } from '../../src/storage/store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const TTL = 10_000;
const IDLE = 3_000;

function options(clock: ManualClock): StoreOptions {
  return { clock, reservationTtlMs: 900_000, limits: DEFAULT_LIMITS, lockTimeoutMs: 5_000, poolSize: 2 };
}

interface Dialect {
  name: string;
  /** A fresh database for one test: a SQLite path or a PostgreSQL URL. */
  database: () => Promise<string>;
}

describe('console sessions on sqlite', () => {
  consoleSessions({
    name: 'sqlite',
    database: async () => join(tempDir('stocklock-console-s-').dir, 'stocklock.db'),
  });
});

describePostgres('console sessions on postgres', () => {
  let pgDb: TestDatabase | undefined;
  beforeAll(async () => {
    pgDb = await createTestDatabase('stocklock_console_sessions');
  });
  afterAll(async () => {
    await pgDb?.drop();
  });
  consoleSessions({
    name: 'postgres',
    database: async () => {
      if (!pgDb) throw new Error('the test database was not created');
      const probe = await openStore(pgDb.url, options(new ManualClock()));
      await probe.close();
      await pgDb.reset();
      return pgDb.url;
    },
  });
});

function consoleSessions({ database }: Dialect): void {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const done of cleanups.splice(0).reverse()) await done();
  });

  /** Two "servers": each its own console connection and session table, on one database, one clock. */
  async function open() {
    const db = await database();
    const clock = new ManualClock(Date.UTC(2026, 0, 10, 12));
    const store = await openStore(db, options(clock));
    cleanups.push(() => store.close());
    const servers: { queries: ConsoleQueries; sessions: SessionTable }[] = [];
    for (let i = 0; i < 2; i++) {
      const queries = await openConsoleQueries(db, clock);
      cleanups.push(() => queries.close());
      servers.push({
        queries,
        sessions: new SessionTable(queries.sessions, { ttlMs: TTL, idleMs: IDLE }, () => clock.now()),
      });
    }
    const [a, b] = servers as [(typeof servers)[0], (typeof servers)[0]];
    return { a, b, clock };
  }

  it('stores the hashes of the cookie secret and of the CSRF token, never either', async () => {
    const { a, b } = await open();
    const { secret, session } = await a.sessions.create('tok_a', 'ops');
    const stored = await a.queries.sessions.get(hashToken(secret));
    expect(stored).toMatchObject({
      id_hash: hashToken(secret),
      csrf_hash: hashToken(session.csrf),
      token_id: 'tok_a',
    });
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(JSON.stringify(stored)).not.toContain(session.csrf);
    expect(session.csrf).toBe(csrfFor(secret));
    // Server B accepts the cookie made on A, with the same CSRF token.
    const onB = await b.sessions.find(secret);
    expect(onB).toMatchObject({ tokenId: 'tok_a', channel: 'ops', csrf: session.csrf });
    expect(await b.sessions.find(`${secret}x`)).toBeUndefined();
    expect(await b.sessions.find(undefined)).toBeUndefined();
  });

  it('ends a session left idle, and one past its lifetime however busy, and prunes ended rows', async () => {
    const { a, b, clock } = await open();
    const idle = await a.sessions.create('tok_a', 'ops');
    const busy = await a.sessions.create('tok_a', 'ops');
    clock.advance(2_000);
    // Busy on B: its use is recorded in the table, so A sees it too.
    expect(await b.sessions.find(busy.secret)).toBeDefined();
    clock.advance(1_500);
    expect(await a.sessions.find(idle.secret)).toBeUndefined();
    expect(await a.queries.sessions.get(hashToken(idle.secret))).toBeUndefined();
    expect(await a.sessions.find(busy.secret)).toBeDefined();
    for (let i = 0; i < 3; i++) {
      clock.advance(2_000);
      expect(await (i % 2 ? a : b).sessions.find(busy.secret)).toBeDefined();
    }
    clock.advance(2_000);
    expect(await b.sessions.find(busy.secret)).toBeUndefined();

    // Rows of sessions nobody comes back for are pruned at the next sign-in.
    const forgotten = await a.sessions.create('tok_a', 'ops');
    clock.advance(IDLE + 1);
    const fresh = await b.sessions.create('tok_b', 'ops');
    expect(await a.queries.sessions.existing([hashToken(forgotten.secret), hashToken(fresh.secret)])).toEqual(
      new Set([hashToken(fresh.secret)]),
    );
  });

  it('a sign-out or revocation on one server ends the session on the other', async () => {
    const { a, b } = await open();
    const first = await a.sessions.create('tok_a', 'ops');
    const second = await a.sessions.create('tok_a', 'ops');
    const other = await a.sessions.create('tok_c', 'ops');
    const onB = await b.sessions.find(first.secret);
    expect(onB).toBeDefined();
    await a.sessions.delete(first.secret);
    expect(await b.sessions.find(first.secret)).toBeUndefined();
    // B's open pages learn of it on their next check.
    const watched = await b.sessions.find(second.secret);
    await a.sessions.deleteByToken('tok_a');
    expect(watched && b.sessions.live(watched)).toBe(true);
    await b.sessions.recheck();
    expect(watched && b.sessions.live(watched)).toBe(false);
    expect(await b.sessions.find(second.secret)).toBeUndefined();
    expect(await b.sessions.find(other.secret)).toBeDefined();
  });
}

describe('CSRF comparison', () => {
  it('compares exactly', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abd', 'abc')).toBe(false);
    expect(sameSecret('ab', 'abc')).toBe(false);
    expect(sameSecret(undefined, 'abc')).toBe(false);
  });
});
