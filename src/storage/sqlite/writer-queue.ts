// A first-come, first-served queue for the processes writing one SQLite file.
//
// SQLite's write lock cannot be waited for: a busy writer polls, and a process that commits and loops takes the
// lock back within microseconds, so a poller can lose for hundreds of milliseconds (BENCHMARKS.md, scenario 3).
// Here every writer first takes its turn: an open-file-description lock (F_OFD_SETLKW) on one byte of a file
// beside the database. Waiters sleep in the kernel, which queues conflicting requests and wakes them in order,
// and a process that just wrote joins the back of that queue whenever anybody else is waiting.
//
// The turn only orders writers; SQLite's own lock still decides who writes, so a process without the queue
// (the sqlite3 shell, a backup tool) is still safe, merely not queued. The kernel drops a dead process's locks.
//
// Byte TURN is the turn. Byte WAITING is held shared by every process queued for TURN, so that a writer can
// see (by failing to lock it exclusively) that somebody is waiting and must not take the turn ahead of them.
//
// The order is first come, first served as far as the kernel keeps it: it wakes the first waiter (Linux 5.0
// and later queue conflicting waiters behind one another) but does not hand the lock over, so a process
// asking again in the instant between the wake-up and the waiter's retry can get one turn ahead of it.
import { closeSync, openSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

interface FsNativeExtensions {
  tryLock(fd: number, offset: number, length: number, opts?: { shared?: boolean }): boolean;
  waitForLock(fd: number, offset: number, length: number, opts?: { shared?: boolean }): Promise<void>;
  unlock(fd: number, offset: number, length: number): void;
}

const TURN = 0;
const WAITING = 1;
/** setTimeout fires at once for longer delays; nobody waits that long for a turn anyway. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

function loadLocks(): FsNativeExtensions | undefined {
  // Linux only: elsewhere the library falls back to flock(), which locks the whole file, not single bytes.
  if (process.platform !== 'linux') return undefined;
  try {
    return createRequire(import.meta.url)('fs-native-extensions') as FsNativeExtensions;
  } catch {
    return undefined;
  }
}

export class WriterQueue {
  /** This process holds the turn (a transaction is running, or about to). */
  private holding = false;
  /** A kernel wait for the turn is in flight; at most one per process. */
  private waitingInKernel = false;
  /** This process's writers waiting for the turn, first come first served. */
  private readonly waiters: Waiter[] = [];
  private closed = false;

  private constructor(
    private readonly locks: FsNativeExtensions,
    private readonly fd: number,
  ) {}

  /** The queue of the database at `databasePath`, or undefined where it cannot work (then writers poll). */
  static open(databasePath: string): WriterQueue | undefined {
    if (databasePath === ':memory:' || databasePath === '') return undefined;
    const locks = loadLocks();
    if (!locks) return undefined;
    // 'a+' creates the file without truncating it and opens it for reading too, which a shared lock needs.
    // It gets the database's permissions, as SQLite gives its -wal and -shm files. It stays empty.
    // The real path, as SQLite resolves it for its -wal file, so that every name of the file queues together.
    let fd: number;
    try {
      const real = realpathSync(databasePath);
      fd = openSync(`${real}-writers`, 'a+', statSync(real).mode & 0o777);
    } catch {
      // Without the file the writers still exclude each other through SQLite; they only lose the queue.
      return undefined;
    }
    return new WriterQueue(locks, fd);
  }

  /**
   * Takes the turn, synchronously when it is free and nobody is queued. Rejects with `onTimeout()` when
   * `timeoutMs` passes first. Every successful take must be followed by exactly one `give()`.
   */
  take(timeoutMs: number, onTimeout: (waitedMs: number) => unknown): Promise<void> | undefined {
    if (this.closed) return Promise.reject(new Error('The store is closed; nothing was written.'));
    if (this.tryTakeNow()) return undefined;
    const started = performance.now();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(
          () => {
            const at = this.waiters.indexOf(waiter);
            if (at >= 0) this.waiters.splice(at, 1);
            reject(onTimeout(performance.now() - started));
          },
          Math.min(timeoutMs, LONGEST_TIMER_MS),
        ),
      };
      this.waiters.push(waiter);
      this.queueInKernel();
    });
  }

  /**
   * Gives the turn back: straight to this process's next writer while no other process is queued, otherwise
   * to the kernel's queue, which this process then joins at the back.
   */
  give(): void {
    if (!this.holding) throw new Error('WriterQueue.give() without the turn');
    if (this.closed) return;
    const next = this.waiters.length > 0 && !this.othersWaiting() ? this.waiters.shift() : undefined;
    if (next) {
      clearTimeout(next.timer);
      next.resolve();
      return;
    }
    this.holding = false;
    this.locks.unlock(this.fd, TURN, 1);
    this.queueInKernel();
  }

  /**
   * Rejects this process's waiting writers. A kernel wait in flight cannot be cancelled: the descriptor is
   * closed when it returns (after the current holder's transaction), so its number is never reused while a
   * lock request on it is pending, and the process exits only after that.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(
        new Error('The store was closed while this write waited for its turn; nothing was written.'),
      );
    }
    // A kernel wait only starts on an open queue, so one still in flight means close() came during it.
    if (!this.waitingInKernel) closeSync(this.fd);
  }

  private tryTakeNow(): boolean {
    if (this.closed || this.holding || this.waitingInKernel || this.waiters.length > 0) return false;
    if (this.othersWaiting()) return false;
    if (!this.locks.tryLock(this.fd, TURN, 1)) return false;
    this.holding = true;
    return true;
  }

  /** True when another process is queued: it holds WAITING shared, so an exclusive try fails. */
  private othersWaiting(): boolean {
    if (!this.locks.tryLock(this.fd, WAITING, 1)) return true;
    this.locks.unlock(this.fd, WAITING, 1);
    return false;
  }

  private queueInKernel(): void {
    if (this.closed || this.holding || this.waitingInKernel || this.waiters.length === 0) return;
    this.waitingInKernel = true;
    void this.waitInKernel();
  }

  private async waitInKernel(): Promise<void> {
    try {
      // Announce ourselves first, so that whoever holds the turn queues behind us next time. The shared lock
      // is refused only for the instant another process tests it; then it is waited for off the event loop.
      if (!this.locks.tryLock(this.fd, WAITING, 1, { shared: true })) {
        await this.locks.waitForLock(this.fd, WAITING, 1, { shared: true });
      }
      if (!this.closed) await this.locks.waitForLock(this.fd, TURN, 1);
    } catch (error) {
      // The lock call itself failed: the writers can only be told.
      this.waitingInKernel = false;
      this.finishClose();
      if (!this.closed) this.locks.unlock(this.fd, WAITING, 1);
      for (const waiter of this.waiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(error);
      }
      return;
    }
    this.waitingInKernel = false;
    // Closing the descriptor drops every lock this process holds on the file, the turn included.
    if (this.finishClose()) return;
    this.locks.unlock(this.fd, WAITING, 1);
    const next = this.waiters.shift();
    if (!next) {
      // Everybody timed out while we queued: pass the turn straight on.
      this.locks.unlock(this.fd, TURN, 1);
      return;
    }
    clearTimeout(next.timer);
    this.holding = true;
    next.resolve();
  }

  /** After a kernel wait: closes the descriptor if close() came during it; true if the queue is closed. */
  private finishClose(): boolean {
    if (this.closed) closeSync(this.fd);
    return this.closed;
  }
}
