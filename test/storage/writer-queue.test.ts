// The writers' queue on real files: turns are given in the order they were asked for, a writer that just
// wrote queues behind those already waiting, a wait that outlasts --lock-timeout is STORE_BUSY, and a store
// waiting for its turn changes nothing until it gets it. Each WriterQueue opened here is its own open file
// description, so two of them in one process contend exactly as two processes do.
import { readFileSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isStockError } from '../../src/domain/errors.js';
import { WriterQueue } from '../../src/storage/sqlite/writer-queue.js';
import { sqliteStore } from '../helpers/sqlite.js';

const linux = process.platform === 'linux';
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const undo of cleanup.splice(0).reverse()) await undo();
});

function openQueue(databasePath: string): WriterQueue {
  const queue = WriterQueue.open(databasePath);
  if (!queue) throw new Error('the writers queue is not available on this platform');
  cleanup.push(() => queue.close());
  return queue;
}

/** Takes the turn now or fails the test: the queue was free. */
function takeNow(queue: WriterQueue): void {
  expect(queue.take(1_000, () => new Error('timed out'))).toBeUndefined();
}

/** How many requests the kernel has queued for the turn byte of this database's writers file. */
function queuedForTurn(databasePath: string): number {
  const inode = statSync(`${databasePath}-writers`).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((line) => line.includes('->') && line.includes(`:${inode} 0 0`)).length;
}

/** Every lock, held or queued, on this database's writers file. */
function locksOnWritersFile(databasePath: string): number {
  const inode = statSync(`${databasePath}-writers`).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((line) => line.includes(`:${inode} `)).length;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`gave up waiting: ${what}\n${readFileSync('/proc/locks', 'utf8')}`);
    }
    await new Promise((done) => setTimeout(done, 2));
  }
}

describe.runIf(linux)('writers queue (Linux)', () => {
  it('wakes waiters in the order they asked, and a writer that just wrote does not take the turn at once', async () => {
    const { store, path } = await sqliteStore();
    cleanup.push(() => store.close());
    const [holder, first, second] = [openQueue(path), openQueue(path), openQueue(path)];
    const order: string[] = [];
    /** Each turn is recorded and given straight back, so no test step can wait on a turn held by another. */
    const turn = (queue: WriterQueue, name: string) =>
      queue
        .take(5_000, () => new Error(`${name} timed out`))
        ?.then(() => {
          order.push(name);
          queue.give();
        });
    takeNow(holder);

    const firstTurn = turn(first, 'first');
    await until(() => queuedForTurn(path) === 1, 'the first waiter queued in the kernel');
    const secondTurn = turn(second, 'second');
    await until(() => queuedForTurn(path) === 2, 'the second waiter queued in the kernel');

    holder.give();
    // The holder wants the turn again at once, but others are waiting: it must not take it synchronously.
    const holderTurn = turn(holder, 'holder');
    expect(holderTurn).toBeInstanceOf(Promise);
    await Promise.all([firstTurn, secondTurn, holderTurn]);
    // The kernel keeps its waiters in order. It does not hand the turn over, though: the woken waiter takes it
    // when it runs, so a process that asks again in that instant can get one turn ahead of it.
    expect(order.filter((name) => name !== 'holder')).toEqual(['first', 'second']);
    expect(order).toHaveLength(3);
  });

  it('a store waits for its turn without blocking the event loop and writes once it is given', async () => {
    const { store, path } = await sqliteStore();
    cleanup.push(() => store.close());
    const other = openQueue(path);
    takeNow(other);

    let written = false;
    const reserve = store.addToCart({ channel: 'web' }, { sku: 'MUG-WHT', quantity: 2 }).then((cart) => {
      written = true;
      return cart;
    });
    await until(() => queuedForTurn(path) === 1, 'the store queued in the kernel');
    // Reads never queue: they go on while the writer waits.
    expect((await store.checkStock(['MUG-WHT'])).products[0]).toMatchObject({ available: 5 });
    expect(written).toBe(false);

    other.give();
    expect((await reserve).lines).toMatchObject([{ sku: 'MUG-WHT', quantity: 2 }]);
    expect((await store.checkStock(['MUG-WHT'])).products[0]).toMatchObject({ available: 3 });
    expect((await store.audit()).ok).toBe(true);
  });

  it('refuses with STORE_BUSY when the turn does not come within the lock timeout, and changes nothing', async () => {
    const { store, path } = await sqliteStore({ lockTimeoutMs: 80 });
    cleanup.push(() => store.close());
    const other = openQueue(path);
    takeNow(other);

    const error = await store.addToCart({ channel: 'web' }, { sku: 'MUG-WHT', quantity: 1 }).catch((e) => e);
    expect(isStockError(error) && error.code).toBe('STORE_BUSY');
    expect((error as { details: { waited_ms: number } }).details.waited_ms).toBeGreaterThanOrEqual(75);
    expect((await store.checkStock(['MUG-WHT'])).products[0]).toMatchObject({ available: 5 });

    // The abandoned kernel wait passes the turn straight on; the next write goes through.
    other.give();
    await until(() => queuedForTurn(path) === 0, 'the abandoned wait returned');
    expect((await store.addToCart({ channel: 'web' }, { sku: 'MUG-WHT', quantity: 1 })).status).toBe('open');
    expect((await store.audit()).ok).toBe(true);
  });

  it('writers of one process that queue together each get a turn, in the order they came', async () => {
    const { store, path } = await sqliteStore();
    cleanup.push(() => store.close());
    const other = openQueue(path);
    takeNow(other);
    const done: number[] = [];
    const writes = [1, 2, 3].map((n) =>
      store.addToCart({ channel: `bot-${n}` }, { sku: 'TEE-BLK-M', quantity: n }).then(() => done.push(n)),
    );
    await until(() => queuedForTurn(path) === 1, 'the store queued in the kernel');
    other.give();
    await Promise.all(writes);
    expect(done).toEqual([1, 2, 3]);
    expect((await store.checkStock(['TEE-BLK-M'])).products[0]).toMatchObject({ available: 4 });
  });

  it('closing a store while it waits for its turn rejects the wait and leaves the queue usable', async () => {
    const { store, path } = await sqliteStore();
    const other = openQueue(path);
    takeNow(other);
    const waiting = store.addToCart({ channel: 'web' }, { sku: 'MUG-WHT', quantity: 1 }).catch((e) => e);
    await until(() => queuedForTurn(path) === 1, 'the store queued in the kernel');
    await store.close();
    expect(String(await waiting)).toMatch(/closed while this write waited for its turn; nothing was written/);
    other.give();
    // The closed store's wait still gets the turn from the kernel; it is dropped as the wait returns.
    await until(() => locksOnWritersFile(path) === 0, 'the closed wait returned and dropped its locks');
    takeNow(other);
    other.give();
  });

  it('refuses at once to queue a write on a closed queue', async () => {
    const { store, path } = await sqliteStore();
    cleanup.push(() => store.close());
    const queue = WriterQueue.open(path);
    queue?.close();
    // A minute-long timeout: the test would time out if the refusal waited for it.
    await expect(queue?.take(60_000, () => new Error('timed out'))).rejects.toThrow(
      'The store is closed; nothing was written.',
    );
  });
});
