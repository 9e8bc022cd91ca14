// The PostgreSQL store's way to the database: one transaction per write under one lock budget, its retries,
// and the one-statement hot paths' settlement of a lost connection.
import type pg from 'pg';
import type { DatabaseTime } from '../../domain/clock.js';
import { refuse, StockError } from '../../domain/errors.js';
import type { StoreOptions } from '../store.js';
import { PostgresEngine } from './engine.js';
import {
  isConnectionLost,
  isDefiniteRollback,
  isLockWait,
  isRetryable,
  pgCode,
  readOnlyRefusal,
} from './errors.js';
import { CHANNEL_CAP_RECHECK } from './one-statement.js';
import { S, type Statement } from './statements.js';
import { Tx } from './tx.js';

/** Deadlocks and serialization failures are retried this many times (within the lock budget), then STORE_BUSY. */
const MAX_ATTEMPTS = 8;

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const ignoreLostConnection = () => undefined;

export class WritePath {
  constructor(
    private readonly pool: pg.Pool,
    private readonly options: StoreOptions,
  ) {}

  /**
   * Runs `fn` in one transaction. Every wait of the call shares one deadline, --lock-timeout after it began: the
   * pool, each lock, and the retries of deadlocks, serialization failures and lost connections (which run the
   * whole transaction again, with jitter, a bounded number of times). Past it the call is STORE_BUSY. A
   * connection lost during COMMIT is OUTCOME_UNKNOWN: the commit may have happened.
   */
  async write<R>(fn: (e: PostgresEngine) => Promise<R>, started = performance.now()): Promise<R> {
    const deadline = started + this.options.lockTimeoutMs;
    const busy = () => refuse.busy(Math.round(performance.now() - started));
    for (let attempt = 1; ; attempt++) {
      const client = await this.acquire(deadline, busy);
      // A connection that dies between two statements emits 'error', which would crash the process unheard;
      // the next statement fails with it instead.
      client.on('error', ignoreLostConnection);
      let broken: Error | undefined;
      let committing = false;
      try {
        if (performance.now() >= deadline) throw busy();
        // Each attempt reads the database's time after its first lock (Tx.now): a call that waited for a
        // connection, a lock or a retry decides with the time it got the lock at.
        const tx = new Tx(client, this.databaseTime(), deadline);
        await tx.begin();
        const engine = new PostgresEngine(tx, this.options.limits);
        const result = await fn(engine);
        await engine.flush();
        committing = true;
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        if (committing && !isDefiniteRollback(error))
          throw refuse.outcomeUnknown('The database connection failed', error);
        if (error instanceof StockError) throw error;
        if (isLockWait(error)) throw busy();
        const readOnly = readOnlyRefusal(error);
        if (readOnly) throw readOnly;
        if (!isRetryable(error) && !isConnectionLost(error)) throw error;
        if (attempt >= MAX_ATTEMPTS) throw busy();
      } finally {
        client.removeListener('error', ignoreLostConnection);
        client.release(broken);
      }
      // Jittered, growing backoff so the transactions that collided do not collide again in lockstep.
      const backoff = Math.random() * Math.min(2 ** attempt, 50);
      if (performance.now() + backoff >= deadline) throw busy();
      await sleep(backoff);
    }
  }

  /** A pooled connection, waited for no later than the call's deadline (then STORE_BUSY). */
  private acquire(deadline: number, busy: () => StockError): Promise<pg.PoolClient> {
    const remaining = deadline - performance.now();
    if (remaining <= 0) return Promise.reject(busy());
    return new Promise((resolve, reject) => {
      let gaveUp = false;
      let timer: NodeJS.Timeout;
      // The event loop's clock is coarse: a timer may fire a little before the deadline, so it checks.
      const giveUpAtDeadline = () => {
        const left = deadline - performance.now();
        if (left > 0) {
          timer = setTimeout(giveUpAtDeadline, Math.ceil(left));
          return;
        }
        gaveUp = true;
        reject(busy());
      };
      timer = setTimeout(giveUpAtDeadline, Math.ceil(remaining));
      this.pool.connect((error, client, release) => {
        // pg-pool cannot withdraw a queued request: a connection that comes too late goes straight back.
        if (gaveUp) {
          if (client) release();
          return;
        }
        clearTimeout(timer);
        if (client) resolve(client);
        else reject(isLockWait(error) ? busy() : error);
      });
    });
  }

  databaseTime(): DatabaseTime {
    return this.options.clock.databaseTime?.() ?? { fixedAt: null, offsetMs: 0 };
  }

  async query<T>(statement: Statement, values: unknown[]): Promise<T[]> {
    const result = await this.pool.query({ name: statement.name, text: statement.text, values });
    return result.rows as T[];
  }

  /**
   * A hot path in one round trip: one statement in autocommit, its own transaction (one-statement.ts). Undefined
   * when the general path must decide; nothing was written then. The call's one lock budget covers both. A
   * connection lost under the statement is settled: once its backend has exited, its transaction either
   * committed (`committed` finds `key`, and `recover` reads the answer) or never will (the general path runs the
   * call, as a retry would). A backend still there at the deadline leaves the outcome unknown.
   */
  async oneStatement<Row, R>(call: {
    statement: Statement;
    values: (time: DatabaseTime, remainingMs: number) => unknown[];
    started: number;
    answer: (rows: Row[]) => R | undefined;
    committed: Statement;
    key: string;
    recover: () => Promise<R>;
  }): Promise<R | undefined> {
    const deadline = call.started + this.options.lockTimeoutMs;
    const busy = () => refuse.busy(Math.round(performance.now() - call.started));
    const client = await this.acquire(deadline, busy);
    client.on('error', ignoreLostConnection);
    const backend = (client as pg.PoolClient & { processID?: number | null }).processID ?? undefined;
    let rows: Row[] | undefined;
    let failure: unknown;
    try {
      const remaining = Math.ceil(deadline - performance.now());
      if (remaining <= 0) throw busy();
      const { statement } = call;
      const values = call.values(this.databaseTime(), remaining);
      rows = (await client.query({ name: statement.name, text: statement.text, values })).rows as Row[];
    } catch (error) {
      failure = error;
    } finally {
      client.removeListener('error', ignoreLostConnection);
      client.release(isConnectionLost(failure) ? (failure as Error) : undefined);
    }
    if (failure === undefined) return call.answer(rows ?? []);
    if (failure instanceof StockError) throw failure;
    if (isConnectionLost(failure)) {
      await this.backendGone(backend, deadline, failure);
      const found = (await this.query<{ found: boolean }>(call.committed, [call.key]))[0]?.found;
      return found ? call.recover() : undefined;
    }
    // Rolled back whole: the general path decides (the channel cap exactly, a deadlock by retrying).
    if (pgCode(failure) === CHANNEL_CAP_RECHECK || isRetryable(failure)) return undefined;
    if (isLockWait(failure)) throw busy();
    throw readOnlyRefusal(failure) ?? failure;
  }

  /** Waits until a lost connection's backend has exited (so its transaction has ended), else OUTCOME_UNKNOWN. */
  private async backendGone(backend: number | undefined, deadline: number, failure: unknown): Promise<void> {
    const unknown = () => refuse.outcomeUnknown('The database connection failed', failure);
    if (backend === undefined) throw unknown();
    try {
      while ((await this.query<{ alive: boolean }>(S.backendAlive, [backend]))[0]?.alive) {
        if (performance.now() >= deadline) throw unknown();
        await sleep(5);
      }
    } catch (error) {
      if (error instanceof StockError) throw error;
      throw unknown();
    }
  }
}
