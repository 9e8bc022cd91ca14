// Scenario 7: hot-SKU reserve on the PostgreSQL store (the one-statement reserve, and the general transaction it
// replaced, side by side) against the same SQL on raw `pg` and pgbench's one-row UPDATE at the same client count.
// The raw side replays the statements the store itself sent for one add_to_cart (captured at run time, so the two
// cannot drift apart), each client on its own connection, with a fresh cart id per transaction.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { InventoryStore } from '../src/storage/store.js';
import {
  benchCatalog,
  benchStoreOptions,
  concurrentThroughput,
  fmt,
  HOT_SKU,
  interleaved,
  POSTGRES_REPEATS,
  ROOT,
  type RunSettings,
  type Section,
  scratchDir,
  section,
} from './lib.js';

const ADMIN_URL =
  process.env.STOCKLOCK_BENCH_POSTGRES_URL ??
  process.env.STOCKLOCK_TEST_POSTGRES_URL ??
  'postgres://postgres@127.0.0.1:5432/postgres';
const CTX = { channel: 'bench' };

interface Captured {
  text: string;
  name?: string;
  values?: unknown[];
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Records every statement the store sends while `fn` runs (pool clients are pg.Client instances). */
async function capture(fn: () => Promise<unknown>): Promise<Captured[]> {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  const seen: Captured[] = [];
  proto.query = function (this: unknown, ...args: unknown[]) {
    const [first, second] = args;
    if (typeof first === 'string')
      seen.push({ text: first, values: Array.isArray(second) ? second : undefined });
    else if (first && typeof first === 'object' && 'text' in first) {
      const config = first as Captured;
      seen.push({ text: config.text, name: config.name, values: config.values });
    }
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    proto.query = original;
  }
  return seen;
}

/** Replaces every occurrence of one string in a statement's parameters (arrays included). */
function substitute(value: unknown, from: string, to: string): unknown {
  if (value === from) return to;
  if (Array.isArray(value)) return value.map((v) => substitute(v, from, to));
  return value;
}

/** pgbench's one-row UPDATE: its own table in its own database, an autocommit UPDATE of one row per transaction. */
const PGBENCH_SCRIPT = 'UPDATE one_row SET n = n + 1 WHERE id = 1;\n';

/** Transactions per second of pgbench's one-row UPDATE with `clients` connections for about `windowMs`. */
function pgbenchRate(database: string, script: string, clients: number, windowMs: number): Promise<number> {
  const url = new URL(ADMIN_URL);
  const args = [
    '-n',
    '-M',
    'prepared',
    '-h',
    url.hostname,
    '-p',
    url.port || '5432',
    '-U',
    decodeURIComponent(url.username || 'postgres'),
    '-c',
    String(clients),
    '-j',
    String(Math.min(clients, 2)),
    '-T',
    String(Math.max(1, Math.round(windowMs / 1000))),
    '-f',
    script,
    database,
  ];
  const env = { ...process.env, PGPASSWORD: decodeURIComponent(url.password) };
  return new Promise((resolve, reject) => {
    execFile('pgbench', args, { env }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`pgbench failed: ${stderr || error.message}`));
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1];
      if (!tps) return reject(new Error(`pgbench printed no tps: ${stdout}`));
      resolve(Number(tps));
    });
  });
}

/** On a developer's machine a missing database drops the row with a note; in CI it fails the run. */
function skipped(out: Section, why: string): Section[] {
  if (onCi()) throw new Error(`CI=true and the PostgreSQL benchmark cannot run: ${why}`);
  out.notes.push(`Skipped: ${why}`);
  return [out];
}

/** CI services set CI=true (GitHub Actions, GitLab, Buildkite …); "false" or "0" turns it off. */
export function onCi(): boolean {
  const ci = process.env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

export async function postgresScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    '7. PostgreSQL',
    'Hot-SKU `addToCart` (a new cart, one unit) on the PostgreSQL store with a pool of N connections and N ' +
      'concurrent callers: the one-statement reserve (`stocklock_reserve_new_cart`, one autocommit round trip) and ' +
      'the general transaction it replaced (the same store with `oneStatement: false`, BEGIN … COMMIT), against the ' +
      'same statements on raw `pg` (the bench records what the store sends for one add_to_cart and replays exactly ' +
      'that, named statements, a fresh cart id each time, on N dedicated connections) and against pgbench running ' +
      'a one-row `UPDATE` (`-M prepared -c N -j 2`). Store, raw pg and pgbench each have their own freshly created ' +
      'database, dropped afterwards; the contestants alternate, medians of the repeats.',
    [
      'clients',
      'stocklock tx/s',
      'general tx (before) tx/s',
      'vs before (goal ≥ 2× at 8)',
      'same SQL raw pg tx/s',
      'vs raw',
      'pgbench 1-row UPDATE tx/s',
      'vs pgbench (goal ≥ 0.9× at 8)',
    ],
  );
  if (!existsSync(`${ROOT}/src/storage/postgres/store.ts`)) {
    return skipped(out, 'there is no PostgreSQL store (src/storage/postgres/store.ts).');
  }
  try {
    await withAdmin((client) => client.query('SELECT 1'));
  } catch (error) {
    return skipped(
      out,
      `PostgreSQL at ${new URL(ADMIN_URL).host} did not answer (${(error as Error).message}); set STOCKLOCK_BENCH_POSTGRES_URL to a server the bench may create databases on.`,
    );
  }
  const { openPostgresStore } = await import('../src/storage/postgres/store.js');
  const suffix = randomBytes(4).toString('hex');
  const names = {
    project: `stocklock_bench_${suffix}_store`,
    baseline: `stocklock_bench_${suffix}_raw`,
    pgbench: `stocklock_bench_${suffix}_pgbench`,
  };
  await withAdmin(async (client) => {
    for (const name of Object.values(names)) await client.query(`CREATE DATABASE "${name}"`);
  });
  const ratios: { clients: number; raw: number; before: number; pgbench: number }[] = [];
  let statements = 0;
  const scratch = scratchDir();
  const script = join(scratch.dir, 'one-row-update.sql');
  writeFileSync(script, PGBENCH_SCRIPT);
  try {
    const one = new pg.Client({ connectionString: databaseUrl(names.pgbench) });
    await one.connect();
    try {
      await one.query('CREATE TABLE one_row (id integer PRIMARY KEY, n bigint NOT NULL)');
      await one.query('INSERT INTO one_row VALUES (1, 0)');
    } finally {
      await one.end();
    }
    // Both databases get the schema and catalog through the store, so they start equal.
    const seed = await openPostgresStore(
      databaseUrl(names.baseline),
      benchStoreOptions('FULL', { poolSize: 1 }),
    );
    await seed.importProducts({ channel: 'cli' }, benchCatalog());
    await seed.close();
    const firstStore = await openPostgresStore(
      databaseUrl(names.project),
      benchStoreOptions('FULL', { poolSize: 1 }),
    );
    await firstStore.importProducts({ channel: 'cli' }, benchCatalog());
    await firstStore.close();

    for (const clients of settings.quick ? [8] : [1, 8]) {
      const store: InventoryStore = await openPostgresStore(
        databaseUrl(names.project),
        benchStoreOptions('FULL', { poolSize: clients }),
      );
      // Today's store before the one-statement reserve: every add_to_cart a general transaction.
      const before: InventoryStore = await openPostgresStore(
        databaseUrl(names.project),
        benchStoreOptions('FULL', { poolSize: clients, oneStatement: false }),
      );
      const raw = await Promise.all(
        Array.from({ length: clients }, async () => {
          const client = new pg.Client({ connectionString: databaseUrl(names.baseline) });
          client.on('error', () => undefined);
          await client.connect();
          return client;
        }),
      );
      try {
        // The second call is the one to copy: the first also prepares statements and creates the channel's row.
        await store.addToCart(CTX, { sku: HOT_SKU, quantity: 1 });
        await before.addToCart(CTX, { sku: HOT_SKU, quantity: 1 });
        let cartId = '';
        const sent = await capture(async () => {
          cartId = (await store.addToCart(CTX, { sku: HOT_SKU, quantity: 1 })).cart_id;
        });
        statements = sent.length;
        const replay = async (client: pg.Client) => {
          const fresh = `cart_${randomBytes(16).toString('base64url')}`;
          try {
            for (const s of sent) {
              await client.query({
                text: s.text,
                name: s.name,
                values: s.values?.map((v) => substitute(v, cartId, fresh)),
              });
            }
          } catch (error) {
            await client.query('ROLLBACK').catch(() => undefined);
            throw error;
          }
        };
        const figures = await interleaved(settings.quick ? settings.repeats : POSTGRES_REPEATS, {
          project: () =>
            concurrentThroughput(clients, settings.windowMs * 2, () =>
              store.addToCart(CTX, { sku: HOT_SKU, quantity: 1 }),
            ),
          before: () =>
            concurrentThroughput(clients, settings.windowMs * 2, () =>
              before.addToCart(CTX, { sku: HOT_SKU, quantity: 1 }),
            ),
          baseline: () =>
            concurrentThroughput(clients, settings.windowMs * 2, (worker) =>
              replay(raw[worker] as pg.Client),
            ),
          pgbench: () => pgbenchRate(names.pgbench, script, clients, settings.windowMs * 2),
        });
        const ratio = {
          clients,
          before: figures.project / figures.before,
          raw: figures.project / figures.baseline,
          pgbench: figures.project / figures.pgbench,
        };
        ratios.push(ratio);
        out.rows.push([
          String(clients),
          fmt.rate(figures.project),
          fmt.rate(figures.before),
          fmt.ratio(ratio.before),
          fmt.rate(figures.baseline),
          fmt.ratio(ratio.raw),
          fmt.rate(figures.pgbench),
          fmt.ratio(ratio.pgbench),
        ]);
        if (clients === 8) {
          // A whole sale on the hot SKU (a new cart, then its checkout): both of a buyer's calls.
          const sell = (on: InventoryStore) => async () => {
            const cart = await on.addToCart(CTX, { sku: HOT_SKU, quantity: 1 });
            await on.checkout(CTX, { cartId: cart.cart_id });
          };
          const sales = await interleaved(settings.quick ? settings.repeats : POSTGRES_REPEATS, {
            project: () => concurrentThroughput(clients, settings.windowMs * 2, sell(store)),
            before: () => concurrentThroughput(clients, settings.windowMs * 2, sell(before)),
          });
          out.rows.push([
            `${clients}, sales (add_to_cart + checkout)/s`,
            fmt.rate(sales.project),
            fmt.rate(sales.before),
            fmt.ratio(sales.project / sales.before),
            '—',
            '—',
            '—',
            '—',
          ]);
        }
      } finally {
        await store.close();
        await before.close();
        await Promise.all(raw.map((client) => client.end().catch(() => undefined)));
      }
    }
  } finally {
    scratch.remove();
    await withAdmin(async (client) => {
      for (const name of Object.values(names))
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    });
  }
  out.notes.push(
    `One add_to_cart of a new cart on PostgreSQL is ${statements} round trip${statements === 1 ? '' : 's'}, captured from the store in this run.`,
  );
  const worst = Math.min(...ratios.map((r) => r.raw));
  out.goals.push({
    name: 'PostgreSQL hot-SKU reserve vs. the same SQL on raw pg',
    target: '≥ 0.9×',
    measured: `worst ${fmt.ratio(worst)}`,
    met: worst >= 0.9,
  });
  const at8 = ratios.find((r) => r.clients === 8);
  if (at8) {
    out.goals.push({
      name: 'PostgreSQL hot-SKU reserve, 8 clients: one statement vs. the general transaction (before)',
      target: '≥ 2×',
      measured: fmt.ratio(at8.before),
      met: at8.before >= 2,
    });
    out.goals.push({
      name: "PostgreSQL hot-SKU reserve, 8 clients: vs. pgbench's one-row UPDATE",
      target: '≥ 0.9×',
      measured: fmt.ratio(at8.pgbench),
      met: at8.pgbench >= 0.9,
    });
  }
  return [out];
}
