// A year of sales: what a merchant's everyday actions cost the shoppers once the history is large, on both stores.
// Runs in `npm run bench`; alone: `npm run bench -- --only year-of-sales` (sizes: STOCKLOCK_BENCH_YEAR_SIZES=10000,100000;
// one store: STOCKLOCK_BENCH_YEAR_STORES=sqlite or postgres).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import pg from 'pg';
import { openStore } from '../src/storage/open.js';
import { Database } from '../src/storage/sqlite/driver.js';
import { freePort } from '../test/helpers/http.js';
import { closeClient, httpClient } from './clients.js';
import { type HistorySize, historySize, historyStatements } from './history.js';
import {
  benchStoreOptions,
  CLI,
  fmt,
  percentile,
  type RunSettings,
  rssBytes,
  type Section,
  section,
  spawnNode,
} from './lib.js';

const ADMIN_URL =
  process.env.STOCKLOCK_BENCH_POSTGRES_URL ??
  process.env.STOCKLOCK_TEST_POSTGRES_URL ??
  'postgres://postgres@127.0.0.1:5432/postgres';
const FULL_SIZES = [10_000, 100_000, 1_000_000];
const QUICK_SIZES = [10_000];
/** Within this of idle, a shopper does not notice the merchant's action (the bar). */
const STALL_LIMIT = 2;

interface Target {
  store: 'SQLite' | 'PostgreSQL';
  db: string;
  /** Creates and migrates the empty database; returns its size then. */
  create(): Promise<number>;
  fill(statements: string[]): Promise<void>;
  bytes(): Promise<number>;
  drop(): Promise<void>;
}

function sqliteTarget(dir: string, orders: number): Target {
  const db = join(dir, `year-${orders}.db`);
  const files = [db, `${db}-wal`, `${db}-shm`, `${db}.writers`];
  return {
    store: 'SQLite',
    db,
    async create() {
      await (await openStore(db, benchStoreOptions('FULL'))).close();
      return this.bytes();
    },
    async fill(statements) {
      const raw = new Database(db);
      raw.pragma('synchronous = OFF');
      raw.exec('BEGIN');
      for (const sql of statements) raw.exec(sql);
      raw.exec('COMMIT');
      raw.exec('ANALYZE');
      raw.pragma('wal_checkpoint(TRUNCATE)');
      raw.close();
    },
    async bytes() {
      return files.slice(0, 2).reduce((sum, f) => sum + (existsSync(f) ? statSync(f).size : 0), 0);
    },
    async drop() {
      for (const f of [...files, `${db}.backup`]) rmSync(f, { force: true });
    },
  };
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>, url = ADMIN_URL): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function postgresTarget(orders: number): Target {
  const name = `stocklock_year_${orders}_${randomBytes(3).toString('hex')}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = url.toString();
  return {
    store: 'PostgreSQL',
    db,
    async create() {
      await admin((c) => c.query(`CREATE DATABASE "${name}"`));
      await (await openStore(db, benchStoreOptions('FULL'))).close();
      return this.bytes();
    },
    async fill(statements) {
      await admin(async (c) => {
        await c.query('BEGIN');
        for (const sql of statements) await c.query(sql);
        await c.query('COMMIT');
        await c.query('VACUUM ANALYZE');
      }, db);
    },
    async bytes() {
      return admin(async (c) => {
        const { rows } = await c.query('SELECT pg_database_size(current_database()) AS size');
        return Number(rows[0].size);
      }, db);
    },
    async drop() {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

function cli(args: string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 64 * 1024 * 1024 }, (error, _out, stderr) => {
      if (error) return reject(new Error(`stocklock ${args[0]} failed: ${stderr || error.message}`));
      resolve(performance.now() - started);
    });
  });
}

interface Served {
  base: string;
  pid: number;
  startupMs: number;
  stop(): Promise<void>;
}

async function serve(db: string, port: number): Promise<Served> {
  const started = performance.now();
  const child = spawnNode(CLI, ['serve', '--http', '--port', String(port), '--db', db], {
    env: { STOCKLOCK_LOG_LEVEL: 'warn' },
  });
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.process.exitCode !== null) throw new Error(`the server exited with ${child.process.exitCode}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (performance.now() - started > 120_000) throw new Error('the server did not become healthy in 120 s');
    await new Promise((resume) => setTimeout(resume, 20));
  }
  return {
    base,
    pid: child.process.pid ?? 0,
    startupMs: performance.now() - started,
    stop: () => child.stop(),
  };
}

/** Signs in to the console as a browser would; returns the cookie and the page's CSRF token. */
async function signIn(base: string, adminToken: string): Promise<{ cookie: string; csrf: string }> {
  const form = await fetch(`${base}/console/`);
  const signInCookie = (form.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const formCsrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
  const signedIn = await fetch(`${base}/console/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: signInCookie },
    body: new URLSearchParams({ token: adminToken, _csrf: formCsrf }).toString(),
  });
  const cookie = signedIn.headers
    .getSetCookie()
    .map((c) => c.split(';')[0] ?? '')
    .find((c) => c.startsWith('stocklock_console='));
  if (!cookie) throw new Error(`console sign-in failed: HTTP ${signedIn.status}`);
  const shell = await (await fetch(`${base}/console/`, { headers: { Cookie: cookie } })).text();
  const csrf = /name="csrf-token" content="([^"]+)"/.exec(shell)?.[1] ?? '';
  return { cookie, csrf };
}

/** check_stock calls one after another: `count` of them, or until `until` settles. */
async function shopperLatencies(shopper: Client, skus: number, until: Promise<unknown> | number) {
  const times: number[] = [];
  let done = typeof until === 'number';
  if (typeof until !== 'number') void until.finally(() => (done = true)).catch(() => undefined);
  for (let i = 0; typeof until === 'number' ? i < until : !done || times.length < 5; i++) {
    const t0 = performance.now();
    const result = await shopper.callTool({
      name: 'check_stock',
      arguments: { skus: [`Y-${(i * 13) % skus}`] },
    });
    if (result.isError) throw new Error('check_stock was refused');
    times.push(performance.now() - t0);
  }
  const sorted = times.sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), calls: times.length };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

export interface Measured {
  store: string;
  orders: number;
  skus: number;
  fillMs: number;
  bytesPerOrder: number;
  startupMs: number;
  idle: { p50: number; p99: number };
  /** The console's first audit: no checkpoint yet, so the whole history (it saves the first checkpoint). */
  audit: { p50: number; p99: number; ms: number; ok: boolean };
  /** The console's next audit, after `SALES_BETWEEN` more sales: incremental from that checkpoint. */
  incremental: { p50: number; p99: number; ms: number; ok: boolean; since: number | undefined };
  csv: { p50: number; p99: number; ms: number; mb: number; rssGrowthMb: number };
  pages: Record<string, number>;
  sweepMs: number;
  backupMs: number | undefined;
  cliAuditMs: number;
  cliIncrementalMs: number;
}

/** Sales made between the console's first (full) audit and its incremental one. */
const SALES_BETWEEN = 200;

async function measure(target: Target, size: HistorySize, quick: boolean, port: number): Promise<Measured> {
  const empty = await target.create();
  const dialect = target.store === 'SQLite' ? 'sqlite' : 'postgres';
  const fill = await timed(() => target.fill(historyStatements(size, Date.now(), dialect)));
  const bytes = (await target.bytes()) - empty;
  const store = await openStore(target.db, benchStoreOptions('FULL'));
  const { token: adminToken } = await store.createToken('ops', true, 'year bench');
  const { token: shopperToken } = await store.createToken('web', false, 'year bench shopper');
  await store.close();

  const server = await serve(target.db, port);
  const shopper = await httpClient(`${server.base}/mcp`, shopperToken);
  try {
    const calls = quick ? 100 : 1_000;
    await shopperLatencies(shopper, size.skus, 50);
    const idle = await shopperLatencies(shopper, size.skus, calls);
    const { cookie, csrf } = await signIn(server.base, adminToken);
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${server.base}/console/api/${path}`, {
        ...init,
        headers: { Cookie: cookie, 'X-CSRF-Token': csrf },
      });

    const auditRun = timed(
      async () => (await (await api('audit', { method: 'POST' })).json()) as { ok: boolean },
    );
    const duringAudit = await shopperLatencies(shopper, size.skus, auditRun);
    const audit = await auditRun;
    if (!audit.value.ok)
      throw new Error('the audit finds the generated history unbalanced: see bench/history.ts');

    for (let i = 0; i < SALES_BETWEEN; i++) {
      const added = await shopper.callTool({
        name: 'add_to_cart',
        arguments: { sku: `Y-${(i * 7) % size.skus}`, quantity: 1 },
      });
      const cartId = (added.structuredContent as { cart_id?: string } | undefined)?.cart_id;
      if (added.isError || !cartId) throw new Error('add_to_cart was refused');
      const sold = await shopper.callTool({ name: 'checkout', arguments: { cart_id: cartId } });
      if (sold.isError) throw new Error('checkout was refused');
    }
    const incrementalRun = timed(
      async () =>
        (await (await api('audit', { method: 'POST' })).json()) as {
          ok: boolean;
          since?: { movement: number };
        },
    );
    const duringIncremental = await shopperLatencies(shopper, size.skus, incrementalRun);
    const incremental = await incrementalRun;
    if (!incremental.value.ok) throw new Error('the incremental audit finds the history unbalanced');

    const rssBefore = rssBytes(server.pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssBytes(server.pid));
    }, 25);
    const exportRun = timed(async () => {
      const res = await api('ledger.csv');
      let received = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) received += chunk.length;
      return received;
    });
    const duringCsv = await shopperLatencies(shopper, size.skus, exportRun);
    const exported = await exportRun;
    clearInterval(sampler);

    const firstPage = (await (await api('ledger')).json()) as { movements: { id: number }[] };
    const middle = Math.floor((firstPage.movements[0]?.id ?? 2) / 2);
    const pages: Record<string, number> = {};
    for (const [label, path] of [
      ['Stock', 'stock?q='],
      ['Stock search', 'stock?q=Y-12'],
      ['Holds', 'holds'],
      ['Channels', 'channels'],
      ['Orders', 'orders'],
      ['Orders, channel, paid', 'orders?channel=claude&status=paid'],
      ['Orders, needs refund', 'orders?needs_refund=true'],
      ['Ledger', 'ledger'],
      ['Ledger, channel, mid-history page', `ledger?channel=claude&before=${middle}`],
      ['Ledger, SKU', 'ledger?sku=Y-7'],
      ['Ledger, kind expire', `ledger?kind=expire&before=${middle}`],
    ] as const) {
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) runs.push((await timed(async () => (await api(path)).arrayBuffer())).ms);
      pages[label] = runs.sort((a, b) => a - b)[1] as number;
    }

    const sweepMs = await cli(['sweep', '--db', target.db]);
    const backupMs =
      target.store === 'SQLite' ? await cli(['backup', `${target.db}.backup`, '--db', target.db]) : undefined;
    return {
      store: target.store,
      orders: size.orders,
      skus: size.skus,
      fillMs: fill.ms,
      bytesPerOrder: bytes / size.orders,
      startupMs: server.startupMs,
      idle,
      audit: { ...duringAudit, ms: audit.ms, ok: audit.value.ok },
      incremental: {
        ...duringIncremental,
        ms: incremental.ms,
        ok: incremental.value.ok,
        since: incremental.value.since?.movement,
      },
      csv: {
        ...duringCsv,
        ms: exported.ms,
        mb: exported.value / 2 ** 20,
        rssGrowthMb: (rssPeak - rssBefore) / 2 ** 20,
      },
      pages,
      sweepMs,
      backupMs,
      cliAuditMs: 0,
      cliIncrementalMs: 0,
    };
  } finally {
    await closeClient(shopper);
    await server.stop();
  }
}

export async function yearOfSalesScenario(settings: RunSettings): Promise<Section[]> {
  const sizes = process.env.STOCKLOCK_BENCH_YEAR_SIZES
    ? process.env.STOCKLOCK_BENCH_YEAR_SIZES.split(',').map(Number)
    : settings.quick
      ? QUICK_SIZES
      : FULL_SIZES;
  const results: Measured[] = [];
  for (const orders of sizes) {
    const only = process.env.STOCKLOCK_BENCH_YEAR_STORES;
    const targets = [sqliteTarget(settings.dir, orders), postgresTarget(orders)].filter(
      (t) => !only || only.split(',').includes(t.store === 'SQLite' ? 'sqlite' : 'postgres'),
    );
    for (const target of targets) {
      process.stderr.write(
        `bench: year of sales, ${target.store}, ${orders.toLocaleString('en-US')} orders…\n`,
      );
      try {
        const measured = await measure(target, historySize(orders), settings.quick, await freePort());
        measured.cliAuditMs = await cli(['audit', '--full', '--db', target.db]);
        // From the checkpoint the full audit just saved.
        measured.cliIncrementalMs = await cli(['audit', '--db', target.db]);
        results.push(measured);
        // Each result as it comes: a long run stopped part-way still leaves its figures.
        process.stderr.write(`bench: year of sales: ${JSON.stringify(measured)}\n`);
      } finally {
        await target.drop();
      }
    }
  }
  return report(results);
}

export function report(results: Measured[]): Section[] {
  const latency = section(
    'Year of sales: a shopper while the merchant audits and exports',
    "A history written straight into the tables (bench/history.ts: sold, released, expired and open carts, their ledger, orders, idempotency records, OAuth grants and tokens; the audit finds it balanced), then `stocklock serve --http` on it and one shopper calling `check_stock` one call after another: idle, during the console's first Audit (POST /console/api/audit: no checkpoint yet, so the whole history; it saves one), during its next Audit after 200 more sales (incremental from that checkpoint) and during the console's ledger CSV export. Times in ms.",
    [
      'store',
      'orders',
      'SKUs',
      'idle p50 / p99',
      'during full audit p50 / p99',
      'full audit',
      'during incremental audit p50 / p99',
      'incremental audit',
      'during CSV p50 / p99',
      'CSV export',
      'CSV MB',
      'server RSS growth MB',
    ],
  );
  const upkeep = section(
    'Year of sales: pages, upkeep and size',
    "The same databases: console API answers (median of 3; the ledger pages are keyset pages of 100), the CLI's `sweep`, `backup` (SQLite), `audit --full` and then `audit` (incremental from the checkpoint `--full` saved; process start included), the server's start-up to a healthy `/healthz`, the time to write the history, and the bytes on disk per order (the whole database: every table and index, divided by the orders).",
    [
      'store',
      'orders',
      ...Object.keys(results[0]?.pages ?? {}),
      'sweep',
      'backup',
      'CLI audit --full',
      'CLI audit (incremental)',
      'start-up',
      'history written in',
      'bytes per order',
    ],
  );
  for (const r of results) {
    latency.rows.push([
      r.store,
      r.orders.toLocaleString('en-US'),
      r.skus.toLocaleString('en-US'),
      `${fmt.ms(r.idle.p50)} / ${fmt.ms(r.idle.p99)}`,
      `${fmt.ms(r.audit.p50)} / ${fmt.ms(r.audit.p99)}`,
      fmt.ms(r.audit.ms),
      `${fmt.ms(r.incremental.p50)} / ${fmt.ms(r.incremental.p99)}`,
      fmt.ms(r.incremental.ms),
      `${fmt.ms(r.csv.p50)} / ${fmt.ms(r.csv.p99)}`,
      fmt.ms(r.csv.ms),
      r.csv.mb.toFixed(1),
      r.csv.rssGrowthMb.toFixed(1),
    ]);
    upkeep.rows.push([
      r.store,
      r.orders.toLocaleString('en-US'),
      ...Object.values(r.pages).map(fmt.ms),
      fmt.ms(r.sweepMs),
      r.backupMs === undefined ? '—' : fmt.ms(r.backupMs),
      fmt.ms(r.cliAuditMs),
      fmt.ms(r.cliIncrementalMs),
      fmt.ms(r.startupMs),
      `${(r.fillMs / 1000).toFixed(1)} s`,
      Math.round(r.bytesPerOrder).toLocaleString('en-US'),
    ]);
  }
  const largest = Math.max(...results.map((r) => r.orders));
  for (const r of results.filter((x) => x.orders === largest)) {
    for (const [what, during] of [
      ['console full audit', r.audit],
      ['console incremental audit', r.incremental],
      ['ledger CSV export', r.csv],
    ] as const) {
      const ratio = during.p99 / r.idle.p99;
      latency.goals.push({
        name: `${r.store}, ${largest.toLocaleString('en-US')} orders: a shopper's p99 during the ${what}`,
        target: `within ${STALL_LIMIT}× of idle`,
        measured: `${fmt.ms(during.p99)} ms against ${fmt.ms(r.idle.p99)} ms idle (${fmt.ratio(ratio)})`,
        met: ratio <= STALL_LIMIT,
      });
    }
  }
  return [latency, upkeep];
}
