// The group-commit scenario's baseline: stocklock's SQLite store with every write its own IMMEDIATE transaction,
// as the store ran before group commit. The same operations and statements; only the write path differs: the
// writers' turn (writer-queue.ts), BEGIN IMMEDIATE, the body, COMMIT, and busy retries off the event loop.
import { refuse } from '../src/domain/errors.js';
import { Database } from '../src/storage/sqlite/driver.js';
import { openSqliteStore, SqliteStore } from '../src/storage/sqlite/store.js';
import { isBusy, sleep, writeFailure } from '../src/storage/sqlite/write-errors.js';
import { WriterQueue } from '../src/storage/sqlite/writer-queue.js';
import type { StoreOptions } from '../src/storage/store.js';

export class UnbatchedSqliteStore extends SqliteStore {
  /** Set when a transaction's body has returned: an error after that came from its COMMIT. */
  private committing = false;
  private immediate?: <R>(body: () => R) => R;

  protected override write<R>(body: () => R): Promise<R> {
    this.immediate ??= this.db.transaction((inner: () => unknown) => {
      const result = inner();
      this.committing = true;
      return result;
    }).immediate as <R>(inner: () => R) => R;
    const run = this.immediate;
    return this.withRetries(() => run(body));
  }

  private async withRetries<R>(fn: () => R): Promise<R> {
    const started = performance.now();
    const timeoutMs = this.options.lockTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (this.writers) {
        const remaining = Math.max(0, timeoutMs - (performance.now() - started));
        const turn = this.writers.take(remaining, () => refuse.busy(Math.round(performance.now() - started)));
        if (turn) await turn;
      }
      this.committing = false;
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw writeFailure(error, this.committing);
      } finally {
        // Given back before any wait: the turn is never held across an await.
        this.writers?.give();
      }
      const waited = performance.now() - started;
      if (waited >= timeoutMs) throw refuse.busy(Math.round(waited));
      await sleep(Math.random() * Math.min(2 + attempt, 10));
    }
  }
}

/** Opens (and migrates, through the store itself) `path` as an unbatched store with the store's own pragmas. */
export async function openUnbatchedStore(path: string, options: StoreOptions): Promise<UnbatchedSqliteStore> {
  await openSqliteStore(path, options).close();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  db.pragma('foreign_keys = ON');
  // The store's own short busy timeout: it retries off the event loop instead.
  db.pragma('busy_timeout = 5');
  return new UnbatchedSqliteStore(db, options, WriterQueue.open(path));
}
