// Group commit: the store's writes that arrive while a batch is being written share the next transaction.
//
// The first write to arrive schedules a flush (setImmediate, so every request the event loop has already read joins
// it). The flush takes the writers' turn once, begins one IMMEDIATE transaction and runs each write in its own
// SAVEPOINT: a write that throws (a refusal, a bad input) rolls back only itself and is refused alone. One COMMIT,
// so one WAL sync under synchronous=FULL, makes the whole batch durable, and only then is any write of the batch
// answered, refusals included (a refusal may rest on an earlier write of the same batch). Each write still reads
// the clock inside its body, under the lock. A batch runs synchronously, its sync included: requests arriving
// meanwhile wait in their sockets, are read when it is done, and form the next batch.
import type Database from 'better-sqlite3';
import { refuse } from '../../domain/errors.js';
import { isBusy, sleep, writeFailure } from './write-errors.js';
import type { WriterQueue } from './writer-queue.js';

/**
 * The most writes in one batch. A batch holds the lock (and the event loop) for all of its bodies; at roughly
 * 0.1 ms per reserve, 64 keep that under about 10 ms, so readers and other processes' writers are not starved.
 */
export const MAX_BATCH_WRITES = 64;

interface Write {
  body: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** performance.now() when the write was submitted: --lock-timeout counts from here. */
  submitted: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export interface GroupCommitStats {
  /** Transactions the writes ran in (a lone refusal's, rolled back, included). */
  batches: number;
  /** Writes that ran in those transactions. */
  writes: number;
  /** The most writes one transaction carried. */
  largest: number;
}

export interface GroupCommitOptions {
  lockTimeoutMs: number;
  writers?: WriterQueue;
  maxWrites?: number;
}

/** The turn could not be had in time: thrown by the writers queue, caught below. */
const TURN_TIMED_OUT = Symbol('turn timed out');

export class GroupCommit {
  private readonly queue: Write[] = [];
  private flushing = false;
  private readonly drainWaiters: (() => void)[] = [];
  /** The flush is waiting for the writers' turn or for SQLite's lock held elsewhere. */
  private waiting = false;
  private readonly stats: GroupCommitStats = { batches: 0, writes: 0, largest: 0 };
  private readonly sql: Record<
    'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo',
    Database.Statement
  >;

  constructor(
    private readonly db: Database.Database,
    private readonly options: GroupCommitOptions,
  ) {
    this.sql = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT group_write'),
      release: db.prepare('RELEASE group_write'),
      rollbackTo: db.prepare('ROLLBACK TO group_write'),
    };
  }

  /** Runs `body` (synchronous, no transaction of its own needed) in the next batch; settles once that is durable. */
  submit<R>(body: () => R): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({
        body,
        resolve: resolve as (value: unknown) => void,
        reject,
        submitted: performance.now(),
      });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /**
   * Resolves once the writes submitted so far are answered, or are waiting: for another process's turn or lock
   * (closing the store then refuses them: nothing was written). The store drains before it closes, so a write
   * submitted just before close() is written as it would have been without group commit.
   */
  drained(): Promise<void> {
    if (!this.flushing || this.waiting) return Promise.resolve();
    return new Promise((done) => this.drainWaiters.push(done));
  }

  /** Marks the flush as waiting (or not) for a turn or a lock, and lets close() go on while it waits. */
  private setWaiting(waiting: boolean): void {
    this.waiting = waiting;
    if (waiting) for (const done of this.drainWaiters.splice(0)) done();
  }

  /** A copy of the counters (tests and the bench read how many writes shared a transaction). */
  counters(): GroupCommitStats {
    return { ...this.stats };
  }

  private async flush(): Promise<void> {
    try {
      for (let attempt = 0; this.queue.length > 0; ) {
        // Writes that SQLite kept answering busy are queued again; --lock-timeout still ends their wait.
        this.refuseExpired();
        if (this.queue.length === 0) break;
        const busy = await this.runBatch();
        if (busy) {
          // Another process outside the queue holds SQLite's lock: back off with jitter, as unbatched writes do.
          this.refuseExpired();
          this.setWaiting(true);
          await sleep(Math.random() * Math.min(2 + attempt, 10));
          this.setWaiting(false);
          attempt++;
          continue;
        }
        attempt = 0;
        // Let the event loop read requests and serve reads before the next batch.
        if (this.queue.length > 0) await new Promise((done) => setImmediate(done));
      }
    } finally {
      this.flushing = false;
      for (const done of this.drainWaiters.splice(0)) done();
    }
  }

  /** One transaction for up to maxWrites queued writes. True when SQLite's lock was busy (nothing settled). */
  private async runBatch(): Promise<boolean> {
    const { writers } = this.options;
    if (writers) {
      const oldest = this.queue[0] as Write;
      const remaining = Math.max(0, this.options.lockTimeoutMs - (performance.now() - oldest.submitted));
      const turn = writers.take(remaining, () => TURN_TIMED_OUT);
      if (turn) {
        try {
          this.setWaiting(true);
          await turn;
        } catch (error) {
          if (error === TURN_TIMED_OUT) this.refuseExpired();
          // The queue was closed (the store is closing) or its lock call failed: no write can run.
          else for (const write of this.queue.splice(0)) write.reject(error);
          return false;
        } finally {
          this.setWaiting(false);
        }
      }
    }
    const batch = this.queue.splice(0, this.maxWrites());
    let settle: () => void;
    try {
      const result = this.writeBatch(batch);
      if (result === 'busy') return true;
      settle = result;
    } catch (error) {
      // Not a write's own failure (those are settled above) but the batch's machinery: answer its writes, never
      // leave them waiting, and leave no transaction open.
      try {
        if (this.db.open && this.db.inTransaction) this.sql.rollback.run();
      } catch {
        // Already answered below with the first error; SQLite ends the transaction when the connection closes.
      }
      settle = () => {
        for (const write of batch) write.reject(error);
      };
    } finally {
      // Given back before anybody is answered: the turn is never held across an await.
      writers?.give();
    }
    settle();
    return false;
  }

  /** BEGIN, each write in its savepoint, COMMIT; returns how to answer the batch's writes, or 'busy'. */
  private writeBatch(batch: Write[]): 'busy' | (() => void) {
    const { sql } = this;
    try {
      sql.begin.run();
    } catch (error) {
      if (isBusy(error)) {
        this.queue.unshift(...batch);
        return 'busy';
      }
      return () => {
        for (const write of batch) write.reject(writeFailure(error, false));
      };
    }
    if (batch.length === 1) return this.writeAlone(batch[0] as Write);
    const outcomes: Outcome[] = [];
    /** Writes to run again in a later transaction (SQLite said busy, or the transaction was lost before them). */
    const again: Write[] = [];
    for (let i = 0; i < batch.length; i++) {
      const write = batch[i] as Write;
      sql.savepoint.run();
      try {
        const value = write.body();
        sql.release.run();
        outcomes.push({ ok: true, value });
      } catch (error) {
        if (this.db.inTransaction) {
          sql.rollbackTo.run();
          sql.release.run();
          if (isBusy(error)) again.push(write);
          else outcomes.push({ ok: false, error: writeFailure(error, false) });
          continue;
        }
        // SQLite rolled the whole transaction back (an I/O error, a full disk): the writes before this one are
        // lost with it and get its error (or run again when it was only busy); the writes after it never ran.
        const done = batch.slice(0, i).filter((w) => !again.includes(w));
        const rest = batch.slice(i + 1);
        if (isBusy(error)) {
          this.queue.unshift(...again, ...done, write, ...rest);
          return 'busy';
        }
        this.queue.unshift(...again, ...rest);
        const failure = writeFailure(error, false);
        return () => {
          for (const lost of [...done, write]) lost.reject(failure);
        };
      }
    }
    this.queue.unshift(...again);
    const ran = batch.filter((w) => !again.includes(w));
    try {
      sql.commit.run();
    } catch (error) {
      if (this.db.inTransaction) sql.rollback.run();
      if (isBusy(error)) {
        this.queue.unshift(...ran);
        return 'busy';
      }
      this.count(ran.length);
      // Every write of the batch gets the COMMIT's failure: even a refusal was decided on writes now undone.
      const failure = writeFailure(error, true);
      return () => {
        for (const write of ran) write.reject(failure);
      };
    }
    this.count(ran.length);
    return () => {
      ran.forEach((write, i) => {
        const outcome = outcomes[i] as Outcome;
        if (outcome.ok) write.resolve(outcome.value);
        else write.reject(outcome.error);
      });
    };
  }

  /** A batch of one needs no savepoint: its transaction is its own, exactly as without group commit. */
  private writeAlone(write: Write): 'busy' | (() => void) {
    let value: unknown;
    try {
      value = write.body();
    } catch (error) {
      return this.failAlone(write, error, false);
    }
    try {
      this.sql.commit.run();
    } catch (error) {
      return this.failAlone(write, error, true);
    }
    this.count(1);
    return () => write.resolve(value);
  }

  /** A lone write's body or COMMIT failed: back to the queue when busy, else its error (as writeFailure maps it). */
  private failAlone(write: Write, error: unknown, committing: boolean): 'busy' | (() => void) {
    if (this.db.inTransaction) this.sql.rollback.run();
    if (isBusy(error)) {
      this.queue.unshift(write);
      return 'busy';
    }
    this.count(1);
    const failure = writeFailure(error, committing);
    return () => write.reject(failure);
  }

  private count(writes: number): void {
    if (writes === 0) return;
    this.stats.batches += 1;
    this.stats.writes += writes;
    this.stats.largest = Math.max(this.stats.largest, writes);
  }

  private maxWrites(): number {
    return this.options.maxWrites ?? MAX_BATCH_WRITES;
  }

  /** Refuses with STORE_BUSY every queued write that has waited past --lock-timeout. */
  private refuseExpired(): void {
    const now = performance.now();
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const write = this.queue[i] as Write;
      const waited = now - write.submitted;
      if (waited >= this.options.lockTimeoutMs) {
        this.queue.splice(i, 1);
        write.reject(refuse.busy(Math.round(waited)));
      }
    }
  }
}
