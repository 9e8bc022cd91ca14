// The audit on SQLite off the event loop: a worker thread reads one snapshot on a read-only connection of its own.
import { Worker } from 'node:worker_threads';
import type { AuditReport } from '../../domain/types.js';
import {
  type AuditAsk,
  argsFor,
  auditFlow,
  checkpointParams,
  runAuditAsync,
  saveCheckpointSql,
} from '../audit-flow.js';
import type { AuditOptions } from '../store.js';
import { DRIVER_PATH } from './driver.js';

/**
 * The worker's body, plain JavaScript so the same code runs from src/ (tests, bench) and from dist/. It
 * opens the snapshot (a read transaction and its first read), says so, optionally waits at the test's
 * barrier, then answers the audit's queries one message at a time: the audit's steps (audit-flow.ts) run on
 * the main thread, which only ever waits for a message, while every query runs here. `save` writes the
 * checkpoint on a connection of its own, its waits for the write lock spent in this thread too.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const { path, hold } = workerData;
const db = new Database(path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
// In WAL mode a read transaction's snapshot is fixed by its first read.
db.exec('BEGIN');
db.prepare('SELECT 1 FROM products LIMIT 1').get();
parentPort.postMessage({ snapshot: true });
if (hold) Atomics.wait(new Int32Array(hold), 0, 0);
parentPort.on('message', (message) => {
  try {
    if (message.sql) {
      parentPort.postMessage({ rows: db.prepare(message.sql).all(...message.args) });
    } else if (message.end) {
      db.exec('COMMIT');
      db.close();
      parentPort.postMessage({ ended: true });
    } else if (message.save) {
      const writer = new Database(path, { fileMustExist: true });
      try {
        writer.pragma('busy_timeout = 5000');
        writer.prepare(message.save.sql).run(...message.save.args);
      } finally {
        writer.close();
      }
      parentPort.postMessage({ saved: true });
    }
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message || error) });
  }
});
`;

export interface WorkerAuditOptions extends AuditOptions {
  /** The store's time, asked for once the worker's snapshot exists. */
  now: () => number;
  /** Called when the worker holds its snapshot. */
  onSnapshot?: () => void;
  /**
   * A barrier for tests: after opening its snapshot the worker blocks (Atomics.wait) until element 0 of
   * this buffer's Int32Array is not 0 and is notified. Blocking the main thread so would stop the server.
   */
  hold?: SharedArrayBuffer;
}

interface Reply {
  snapshot?: true;
  rows?: Record<string, unknown>[];
  ended?: true;
  saved?: true;
  error?: string;
}

/** Audits the SQLite file at `path` in a worker thread; the event loop stays free for tool calls meanwhile. */
export async function auditInWorker(path: string, options: WorkerAuditOptions): Promise<AuditReport> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { driver: DRIVER_PATH, path, hold: options.hold },
  });
  let waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  let failed: Error | undefined;
  const fail = (error: Error) => {
    failed ??= error;
    waiting?.reject(error);
    waiting = undefined;
  };
  worker.on('error', fail);
  worker.on('exit', (code) =>
    fail(new Error(`the audit worker stopped (exit code ${code}) before it reported`)),
  );
  const next = () =>
    new Promise<Reply>((resolve, reject) => {
      if (failed) return reject(failed);
      waiting = { resolve, reject };
    });
  worker.on('message', (reply: Reply) => {
    const w = waiting;
    waiting = undefined;
    if (reply.error) w?.reject(new Error(reply.error));
    else w?.resolve(reply);
  });
  const request = (message: unknown) => {
    const reply = next();
    worker.postMessage(message);
    return reply;
  };
  try {
    await next();
    options.onSnapshot?.();
    const outcome = await runAuditAsync(
      auditFlow('sqlite', options.incremental === true),
      async (ask: AuditAsk) => {
        if ('now' in ask) return options.now();
        if ('position' in ask) {
          const { rows } = await request({
            sql: 'SELECT COALESCE(MAX(id), 0) AS id FROM stock_movements',
            args: [],
          });
          return Number(rows?.[0]?.id ?? 0);
        }
        return (await request({ sql: ask.sql, args: argsFor('sqlite', ask.names, ask.params) })).rows;
      },
    );
    await request({ end: true });
    if (options.checkpoint && outcome.checkpoint) {
      const save = saveCheckpointSql('sqlite');
      const args = argsFor('sqlite', save.names, checkpointParams(outcome.checkpoint));
      // Best effort: a file this process may not write is audited all the same, from scratch next time.
      await request({ save: { sql: save.sql, args } }).catch(() => undefined);
    }
    return outcome.report;
  } finally {
    worker.removeAllListeners('exit');
    void worker.terminate();
  }
}
