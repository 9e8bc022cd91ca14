// The audit on SQLite off the event loop: a worker thread reads one snapshot on a read-only connection of its own.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { AuditReport } from '../../domain/types.js';
import { type AuditRows, auditQueries, auditReport, TIMED_AUDIT_QUERIES } from '../audit.js';

/**
 * The worker's body, plain JavaScript so the same code runs from src/ (tests, bench) and from dist/. It
 * opens the snapshot (a read transaction and its first read), says so, optionally waits at the test's
 * barrier, runs the untimed checks, then the timed ones at the time the main thread sends back: the store's
 * clock is read only once the snapshot exists, as the store's own audit does.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const { path, queries, timed, hold } = workerData;
const db = new Database(path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
const rows = {};
let now;
parentPort.once('message', (message) => {
  now = message.now;
  finish();
});
// In WAL mode a read transaction's snapshot is fixed by its first read.
db.exec('BEGIN');
db.prepare('SELECT 1 FROM products LIMIT 1').get();
parentPort.postMessage({ snapshot: true });
if (hold) Atomics.wait(new Int32Array(hold), 0, 0);
for (const [key, sql] of Object.entries(queries)) {
  if (!timed.includes(key)) rows[key] = db.prepare(sql).all();
}
// Messages arrive only once this script has run to its end, so finish() runs once, with every row read.
function finish() {
  if (now === undefined) return;
  for (const key of timed) rows[key] = db.prepare(queries[key]).all({ now });
  db.exec('COMMIT');
  db.close();
  parentPort.postMessage({ rows });
}
finish();
`;

export interface WorkerAuditOptions {
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

const driver = createRequire(import.meta.url).resolve('better-sqlite3');

/** Audits the SQLite file at `path` in a worker thread; the event loop stays free for tool calls meanwhile. */
export function auditInWorker(path: string, options: WorkerAuditOptions): Promise<AuditReport> {
  const queries = auditQueries('sqlite');
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, path, queries, timed: [...TIMED_AUDIT_QUERIES], hold: options.hold },
    });
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      void worker.terminate();
    };
    worker.on('message', (message: { snapshot?: true; rows?: AuditRows }) => {
      if (message.snapshot) {
        worker.postMessage({ now: options.now() });
        options.onSnapshot?.();
      } else if (message.rows) {
        const rows = message.rows;
        settle(() => resolve(auditReport(rows)));
      }
    });
    worker.on('error', (error) => settle(() => reject(error)));
    worker.on('exit', (code) =>
      settle(() => reject(new Error(`the audit worker stopped (exit code ${code}) before it reported`))),
    );
  });
}
