// Scenario 6: resident memory of `stocklock serve --http` with 10,000 open carts and with 1,000 idle sessions,
// beside the baseline echo server holding the same idle sessions.
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  Caller,
  closeClient,
  httpClient,
  type RunningServer,
  startBaselineHttp,
  startStocklockHttp,
} from './clients.js';
import { fmt, HOT_SKU, type RunSettings, rssBytes, type Section, section, sleep } from './lib.js';
import { prepareDatabase } from './store.js';

const LOAD_CLIENTS = 32;
const GOAL_BYTES = 200 * 1024 * 1024;

/** RSS once the process has had a moment to settle after the last request. */
async function settledRss(pid: number): Promise<number> {
  await sleep(1_000);
  return rssBytes(pid);
}

/** Opens `count` SDK sessions (initialize, tools/list, the GET stream) and leaves them idle. */
async function idleSessions(server: RunningServer, count: number): Promise<Client[]> {
  const clients: Client[] = [];
  for (let opened = 0; opened < count; opened += 50) {
    const batch = Math.min(50, count - opened);
    clients.push(
      ...(await Promise.all(Array.from({ length: batch }, () => httpClient(server.url, server.token)))),
    );
  }
  return clients;
}

export async function memoryScenario(settings: RunSettings): Promise<Section[]> {
  const carts = settings.quick ? 200 : 10_000;
  const sessions = settings.quick ? 20 : 1_000;
  const out = section(
    '6. Memory',
    'Resident set size (VmRSS) of the server process, read from /proc one second after the last request. ' +
      `stocklock is \`dist/cli.js serve --http\` (synchronous NORMAL, \`--max-sessions ${sessions + 100}\`); ` +
      `${carts.toLocaleString('en-US')} carts are opened through \`add_to_cart\` by ${LOAD_CLIENTS} clients, whose ` +
      `sessions are then ended; the ${sessions.toLocaleString('en-US')} idle sessions are SDK clients that ` +
      'initialized, listed tools and keep their GET stream open. The baseline is the echo server with the same idle sessions.',
    ['state', 'stocklock RSS MB', 'echo server RSS MB', 'goal ≤ 200 MB'],
  );
  const db = join(settings.dir, 'memory.db');
  await prepareDatabase(db, 'NORMAL');
  const stocklock = await startStocklockHttp(db, 'NORMAL', ['--max-sessions', String(sessions + 100)]);
  const echo = await startBaselineHttp();
  const figures: Record<string, [number, number]> = {};
  try {
    figures.started = [await settledRss(stocklock.pid), await settledRss(echo.pid)];

    const load = await Promise.all(
      Array.from({ length: LOAD_CLIENTS }, () =>
        Caller.open(() => httpClient(stocklock.url, stocklock.token), true),
      ),
    );
    let opened = 0;
    await Promise.all(
      load.map(async (caller) => {
        while (opened < carts) {
          opened += 1;
          await caller.call('add_to_cart', { sku: HOT_SKU, quantity: 1 });
        }
      }),
    );
    await Promise.all(load.map((caller) => caller.close()));
    figures.carts = [await settledRss(stocklock.pid), Number.NaN];

    const held = await idleSessions(stocklock, sessions);
    const heldEcho = await idleSessions(echo, sessions);
    figures.sessions = [await settledRss(stocklock.pid), await settledRss(echo.pid)];
    await Promise.all([...held, ...heldEcho].map(closeClient));
  } finally {
    await stocklock.stop();
    await echo.stop();
  }

  const row = (state: string, [project, baseline]: [number, number]) => {
    out.rows.push([
      state,
      fmt.mb(project),
      Number.isNaN(baseline) ? '—' : fmt.mb(baseline),
      project <= GOAL_BYTES ? 'met' : 'missed',
    ]);
  };
  row('just started', figures.started ?? [Number.NaN, Number.NaN]);
  row(`${carts.toLocaleString('en-US')} open carts`, figures.carts ?? [Number.NaN, Number.NaN]);
  row(
    `${sessions.toLocaleString('en-US')} idle sessions (and the carts)`,
    figures.sessions ?? [Number.NaN, Number.NaN],
  );
  const worst = Math.max(figures.carts?.[0] ?? Number.NaN, figures.sessions?.[0] ?? Number.NaN);
  out.goals.push({
    name: `Memory: RSS with ${carts.toLocaleString('en-US')} open carts, then ${sessions.toLocaleString('en-US')} idle sessions`,
    target: '≤ 200 MB',
    measured: `${fmt.mb(worst)} MB`,
    met: worst <= GOAL_BYTES,
  });
  return [out];
}
