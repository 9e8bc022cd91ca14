// Two builds of stocklock compared on the same two figures: the store's hot-SKU reserve (addToCart of one unit
// into a new cart, SqliteStore called directly) and add_to_cart over HTTP (`dist/cli.js serve --http`, 32
// minimal keep-alive sessions). Each measurement runs in a fresh child process on a fresh database made by that
// build's own store (so each has its own migrations), and the builds take turns A, B, A, B… so drift on a shared
// machine hits both alike; the report is each build's median rate and CPU per call (the store's process, the
// server's process), and the ratios.
// Usage: node --import tsx bench/before-after.ts ROOT_A ROOT_B [--rounds 5] [--seconds 4] [--sync NORMAL]
// [--figures store,http]
// (each ROOT a checkout with `npm run build` done; A is "before", B "after").
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/http.js';
import { MinimalHttpSession, waitHealthy } from './clients.js';
import { benchCatalog, cpuMs, fmt, HOT_SKU, median, reply, type Sync, spawnNode } from './lib.js';

const SESSIONS = 32;

/** Calls per second, and CPU per call (µs) of the process doing the work: the store's, or the server's. */
interface Sample {
  rate: number;
  cpuUs: number;
}

interface StoreModule {
  openSqliteStore(
    path: string,
    options: Record<string, unknown>,
  ): {
    importProducts(ctx: { channel: string }, rows: unknown[]): Promise<unknown>;
    createToken(channel: string, admin: boolean, label?: string): Promise<{ token: string }>;
    addToCart(ctx: { channel: string }, input: { sku: string; quantity: number }): Promise<unknown>;
    close(): Promise<void>;
  };
}

async function storeOf(root: string): Promise<StoreModule> {
  return (await import(
    pathToFileURL(join(root, 'dist', 'storage', 'sqlite', 'store.js')).href
  )) as StoreModule;
}

/** The options both builds' stores understand (DEFAULT_LIMITS of each build, the channel cap lifted). */
async function optionsOf(root: string, sync: Sync): Promise<Record<string, unknown>> {
  const rules = (await import(pathToFileURL(join(root, 'dist', 'domain', 'rules.js')).href)) as {
    DEFAULT_LIMITS: Record<string, unknown>;
  };
  const clock = (await import(pathToFileURL(join(root, 'dist', 'domain', 'clock.js')).href)) as {
    systemClock: unknown;
  };
  return {
    clock: clock.systemClock,
    reservationTtlMs: 15 * 60_000,
    lockTimeoutMs: 5_000,
    synchronous: sync,
    limits: { ...rules.DEFAULT_LIMITS, maxChannelReserved: 1_000_000_000 },
  };
}

/** In a child: reserves one unit of the hot SKU into a new cart, back to back, for `seconds`; prints the rate. */
async function storeChild(root: string, db: string, sync: Sync, seconds: number): Promise<void> {
  const { openSqliteStore } = await storeOf(root);
  const store = openSqliteStore(db, await optionsOf(root, sync));
  await store.importProducts({ channel: 'cli' }, benchCatalog());
  const ctx = { channel: 'bench' };
  // A warm-up the length of a tenth of the window, so both builds are measured with a warm JIT.
  const warm = performance.now() + seconds * 100;
  while (performance.now() < warm) await store.addToCart(ctx, { sku: HOT_SKU, quantity: 1 });
  let n = 0;
  const cpuAtStart = process.cpuUsage();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  while (performance.now() < deadline) {
    await store.addToCart(ctx, { sku: HOT_SKU, quantity: 1 });
    n += 1;
  }
  const rate = (n * 1000) / (performance.now() - started);
  const cpu = process.cpuUsage(cpuAtStart);
  await store.close();
  reply({ rate, cpuUs: (cpu.user + cpu.system) / n });
}

/** Starts that build's `serve --http` and drives it with 32 minimal sessions calling add_to_cart for `seconds`. */
async function httpRate(root: string, db: string, sync: Sync, seconds: number): Promise<Sample> {
  const { openSqliteStore } = await storeOf(root);
  const store = openSqliteStore(db, await optionsOf(root, sync));
  await store.importProducts({ channel: 'cli' }, benchCatalog());
  const { token } = await store.createToken('bench', false, 'bench');
  await store.close();
  const port = await freePort();
  const cli = join(root, 'dist', 'cli.js');
  const child = spawnNode(cli, [
    'serve',
    '--http',
    '--port',
    String(port),
    '--db',
    db,
    '--synchronous',
    sync,
    '--max-channel-reserved',
    '1000000000',
  ]);
  const url = `http://127.0.0.1:${port}/mcp`;
  try {
    await waitHealthy(url, child);
    const sessions = await Promise.all(
      Array.from({ length: SESSIONS }, () => MinimalHttpSession.open(url, token)),
    );
    const pid = child.process.pid ?? 0;
    const run = async (ms: number) => {
      let n = 0;
      const cpuAtStart = cpuMs(pid);
      const started = performance.now();
      const deadline = started + ms;
      await Promise.all(
        sessions.map(async (session) => {
          while (performance.now() < deadline) {
            await session.call('add_to_cart', { sku: HOT_SKU, quantity: 1 });
            n += 1;
          }
        }),
      );
      return {
        rate: (n * 1000) / (performance.now() - started),
        cpuUs: ((cpuMs(pid) - cpuAtStart) * 1000) / n,
      };
    };
    await run(seconds * 100);
    const sample = await run(seconds * 1000);
    await Promise.all(sessions.map((session) => session.close()));
    return sample;
  } finally {
    await child.stop();
  }
}

async function main(): Promise<void> {
  const [mode] = process.argv.slice(2);
  if (mode === '--store-child') {
    const [, root, db, sync, seconds] = process.argv.slice(2);
    await storeChild(root as string, db as string, sync as Sync, Number(seconds));
    return;
  }
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '4' },
      sync: { type: 'string', default: 'NORMAL' },
      figures: { type: 'string', default: 'store,http' },
    },
  });
  const [before, after] = positionals;
  if (!before || !after)
    throw new Error('usage: before-after.ts ROOT_A ROOT_B [--rounds N] [--seconds S] [--sync NORMAL|FULL]');
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  const sync = (values.sync === 'FULL' ? 'FULL' : 'NORMAL') as Sync;
  const figures = new Set(values.figures.split(','));
  const dir = mkdtempSync(join(tmpdir(), 'stocklock-before-after-'));
  const samples = {
    store: { before: [] as Sample[], after: [] as Sample[] },
    http: { before: [] as Sample[], after: [] as Sample[] },
  };
  let n = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      // A then B in even rounds, B then A in odd ones: neither always goes first.
      const order = r % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
      for (const which of figures.has('store') ? order : []) {
        const root = which === 'before' ? before : after;
        const db = join(dir, `store-${n++}.db`);
        const child = spawnNode(join(import.meta.dirname, 'before-after.ts'), [
          '--store-child',
          root,
          db,
          sync,
          String(seconds),
        ]);
        samples.store[which].push(await child.next<Sample>());
        await child.stop();
      }
      for (const which of figures.has('http') ? order : []) {
        const root = which === 'before' ? before : after;
        samples.http[which].push(await httpRate(root, join(dir, `http-${n++}.db`), sync, seconds));
      }
      const last = (s: Sample[]) => `${fmt.rate(s.at(-1)?.rate ?? 0)}/s ${fmt.rate(s.at(-1)?.cpuUs ?? 0)} µs`;
      process.stderr.write(
        `round ${r + 1}: store ${last(samples.store.before)} | ${last(samples.store.after)}; ` +
          `http ${last(samples.http.before)} | ${last(samples.http.after)}\n`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Throughput swings with whatever else the shared machine runs; CPU per call much less. Besides the ratio of
  // the medians, the median of each round's own ratio: the two builds of a round ran seconds apart.
  const line = (name: string, s: { before: Sample[]; after: Sample[] }) => {
    const rates = { before: s.before.map((x) => x.rate), after: s.after.map((x) => x.rate) };
    const cpu = { before: s.before.map((x) => x.cpuUs), after: s.after.map((x) => x.cpuUs) };
    return [
      `| ${name}, per second | ${fmt.rate(median(rates.before))} | ${fmt.rate(median(rates.after))} | ${fmt.ratio(median(rates.after) / median(rates.before))} | ${fmt.ratio(median(rates.after.map((a, i) => a / (rates.before[i] as number))))} |`,
      `| ${name}, CPU µs per call (ratio: before ÷ after) | ${fmt.rate(median(cpu.before))} | ${fmt.rate(median(cpu.after))} | ${fmt.ratio(median(cpu.before) / median(cpu.after))} | ${fmt.ratio(median(cpu.before.map((b, i) => b / (cpu.after[i] as number))))} |`,
    ].join('\n');
  };
  process.stdout.write(
    [
      `synchronous ${sync}, ${rounds} rounds of ${seconds} s each, alternating; ratios above 1 favour after`,
      "| figure | before (median) | after (median) | ratio of medians | median of the rounds' ratios |",
      '| --- | --- | --- | --- | --- |',
      ...(figures.has('store') ? [line('store reserve, hot SKU', samples.store)] : []),
      ...(figures.has('http') ? [line(`add_to_cart over HTTP, ${SESSIONS} sessions`, samples.http)] : []),
      '',
    ].join('\n'),
  );
}

await main();
