// Scenario 5: correctness as a figure. Many buyers race for the last units, as processes on one SQLite file and as
// HTTP clients of one server; stocklock must oversell nothing, the naive read-then-write baseline oversells.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { Caller, httpClient, type RunningServer, startBaselineHttp, startStocklockHttp } from './clients.js';
import {
  benchStoreOptions,
  median,
  type RunSettings,
  type Section,
  section,
  sleep,
  spawnNode,
} from './lib.js';
import { prepareDatabase } from './raw.js';

const WORKER = fileURLToPath(new URL('./race-worker.ts', import.meta.url));
const NAIVE_BUYER = fileURLToPath(new URL('../test/fixtures/naive-buyer.mjs', import.meta.url));
const SKU = 'LAST-ONES';
const LAST_UNITS = 5;
const PROCESSES = 4;
const BUYERS_PER_PROCESS = 8;
const HTTP_CLIENTS = 32;

async function lastUnits(path: string): Promise<void> {
  await prepareDatabase(path, 'FULL', [
    { sku: SKU, name: 'The last ones', price_minor: 1_000, currency: 'EUR', stock: LAST_UNITS },
  ]);
}

/** Units sold, and whether stocklock's audit passed afterwards (always true for the naive shop). */
interface Outcome {
  sold: number;
  auditOk: boolean;
}

async function audit(path: string): Promise<boolean> {
  const store = openSqliteStore(path, benchStoreOptions('FULL'));
  try {
    return (await store.audit()).ok;
  } finally {
    await store.close();
  }
}

async function raceProcesses(path: string, naive: boolean): Promise<Outcome> {
  const workers = Array.from({ length: PROCESSES }, () =>
    spawnNode(naive ? NAIVE_BUYER : WORKER, [path, SKU, String(BUYERS_PER_PROCESS)]),
  );
  try {
    // The naive buyer prints nothing until it is done: give every process time to open the database.
    if (naive) await sleep(500);
    else await Promise.all(workers.map((w) => w.next()));
    for (const w of workers) w.send({ go: true });
    const reports = await Promise.all(workers.map((w) => w.next<number | { sold: number }>()));
    const sold = reports.reduce<number>((sum, r) => sum + (typeof r === 'number' ? r : r.sold), 0);
    return { sold, auditOk: naive || (await audit(path)) };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

async function raceHttp(path: string, naive: boolean): Promise<Outcome> {
  const server: RunningServer = naive
    ? await startBaselineHttp(path)
    : await startStocklockHttp(path, 'FULL');
  const callers = await Promise.all(
    Array.from({ length: HTTP_CLIENTS }, () => Caller.open(() => httpClient(server.url, server.token))),
  );
  let outcomes: boolean[];
  try {
    outcomes = await Promise.all(
      callers.map(async (caller) => {
        if (naive) {
          const result = await caller.attempt('naive_buy', { sku: SKU });
          const block = result.content[0];
          return block?.type === 'text' && block.text === 'sold';
        }
        const cart = await caller.attempt('add_to_cart', { sku: SKU, quantity: 1 });
        if (cart.isError) return false;
        const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
        return !(await caller.attempt('checkout', { cart_id: cartId })).isError;
      }),
    );
  } finally {
    await Promise.all(callers.map((caller) => caller.close()));
    await server.stop();
  }
  return { sold: outcomes.filter(Boolean).length, auditOk: naive || (await audit(path)) };
}

export async function raceScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    '5. The last-unit race',
    `${LAST_UNITS} units left. Processes: ${PROCESSES} processes × ${BUYERS_PER_PROCESS} concurrent buyers on one SQLite ` +
      `file (stocklock: \`addToCart\` then \`checkout\` through SqliteStore; naive: test/fixtures/naive-buyer.mjs, which ` +
      `reads the stock, awaits up to 5 ms, then writes). HTTP: ${HTTP_CLIENTS} SDK clients at once against one server ` +
      '(stocklock: `add_to_cart` then `checkout`; naive: a `naive_buy` tool doing the same read-then-write). ' +
      'Oversold = units sold beyond the stock.',
    [
      'race',
      'runs',
      'stocklock sold',
      'stocklock oversold',
      'naive sold',
      'naive oversold',
      'stocklock audit',
    ],
  );
  const runs = settings.quick ? 1 : 3;
  let stocklockOversold = 0;
  for (const [name, race] of [
    ['processes', raceProcesses],
    ['HTTP clients', raceHttp],
  ] as const) {
    const project: Outcome[] = [];
    const naive: Outcome[] = [];
    for (let r = 0; r < runs; r++) {
      const projectDb = join(settings.dir, `race-${name}-${r}.db`);
      const naiveDb = join(settings.dir, `race-naive-${name}-${r}.db`);
      await lastUnits(projectDb);
      await lastUnits(naiveDb);
      project.push(await race(projectDb, false));
      naive.push(await race(naiveDb, true));
    }
    const worst = Math.max(...project.map((o) => o.sold - LAST_UNITS));
    stocklockOversold = Math.max(stocklockOversold, worst);
    out.rows.push([
      name,
      String(runs),
      String(median(project.map((o) => o.sold))),
      String(Math.max(0, worst)),
      String(median(naive.map((o) => o.sold))),
      String(median(naive.map((o) => Math.max(0, o.sold - LAST_UNITS)))),
      project.every((o) => o.auditOk) ? 'clean' : 'VIOLATIONS',
    ]);
  }
  out.notes.push('stocklock oversold is the worst run; the naive figures are medians.');
  out.goals.push({
    name: 'Last-unit race: units oversold by stocklock',
    target: '0',
    measured: String(Math.max(0, stocklockOversold)),
    met: stocklockOversold <= 0,
  });
  return [out];
}
