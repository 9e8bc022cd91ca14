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
import { fmt, HOT_SKU, median, type RunSettings, rssBytes, type Section, section, sleep } from './lib.js';
import { prepareDatabase } from './raw.js';

const LOAD_CLIENTS = 32;
const GOAL_BYTES = 200 * 1024 * 1024;

/** RSS once the process has had a moment to settle after the last request: the median of five readings. */
async function settledRss(pid: number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 5; i++) {
    await sleep(250);
    readings.push(rssBytes(pid));
  }
  return median(readings);
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

/** Opens `carts` carts through add_to_cart from LOAD_CLIENTS sessions, then ends those sessions. */
async function openCarts(server: RunningServer, carts: number): Promise<void> {
  const load = await Promise.all(
    Array.from({ length: LOAD_CLIENTS }, () => Caller.open(() => httpClient(server.url, server.token), true)),
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
}

export async function memoryScenario(settings: RunSettings): Promise<Section[]> {
  const carts = settings.quick ? 200 : 10_000;
  const sessions = settings.quick ? 20 : 1_000;
  const cartsText = `${carts.toLocaleString('en-US')} open carts`;
  const sessionsText = `${sessions.toLocaleString('en-US')} idle sessions`;
  const out = section(
    '6. Memory',
    'Resident set size (VmRSS) of the server process, from /proc: the median of five readings over the 1.25 s ' +
      `after the last request. stocklock is \`dist/cli.js serve --http\` (synchronous NORMAL, \`--max-sessions ${sessions + 100}\`). ` +
      `Carts are opened through \`add_to_cart\` by ${LOAD_CLIENTS} clients whose sessions are then ended; idle sessions ` +
      'are SDK clients that initialized, listed the tools and keep their GET stream open. One server takes the carts ' +
      'and then the sessions too; a second, fresh one only the sessions, as does the echo server (the baseline).',
    ['server', 'state', 'stocklock RSS MB', 'echo server RSS MB', 'goal ≤ 200 MB'],
  );
  const figures: Record<'started' | 'carts' | 'both' | 'sessions', [number, number]> = {
    started: [Number.NaN, Number.NaN],
    carts: [Number.NaN, Number.NaN],
    both: [Number.NaN, Number.NaN],
    sessions: [Number.NaN, Number.NaN],
  };
  const first = join(settings.dir, 'memory-carts.db');
  const second = join(settings.dir, 'memory-sessions.db');
  await prepareDatabase(first, 'NORMAL');
  await prepareDatabase(second, 'NORMAL');
  const flags = ['--max-sessions', String(sessions + 100)];
  const loaded = await startStocklockHttp(first, 'NORMAL', flags);
  const fresh = await startStocklockHttp(second, 'NORMAL', flags);
  const echo = await startBaselineHttp();
  const clients: Client[] = [];
  try {
    figures.started = [await settledRss(loaded.pid), await settledRss(echo.pid)];
    await openCarts(loaded, carts);
    figures.carts = [await settledRss(loaded.pid), Number.NaN];
    clients.push(...(await idleSessions(loaded, sessions)));
    figures.both = [await settledRss(loaded.pid), Number.NaN];
    clients.push(...(await idleSessions(fresh, sessions)), ...(await idleSessions(echo, sessions)));
    figures.sessions = [await settledRss(fresh.pid), await settledRss(echo.pid)];
  } finally {
    await Promise.all(clients.map(closeClient));
    await Promise.all([loaded.stop(), fresh.stop(), echo.stop()]);
  }

  const row = (server: string, state: string, [project, baseline]: [number, number]) => {
    out.rows.push([
      server,
      state,
      fmt.mb(project),
      Number.isNaN(baseline) ? '—' : fmt.mb(baseline),
      project <= GOAL_BYTES ? 'met' : 'missed',
    ]);
  };
  row('first', 'just started', figures.started);
  row('first', cartsText, figures.carts);
  row('first', `${cartsText}, then ${sessionsText}`, figures.both);
  row('second', sessionsText, figures.sessions);
  const mb = (bytes: number) => `${fmt.mb(bytes)} MB`;
  out.goals.push(
    {
      name: `Memory: RSS with ${cartsText}`,
      target: '≤ 200 MB',
      measured: mb(figures.carts[0]),
      met: figures.carts[0] <= GOAL_BYTES,
    },
    {
      name: `Memory: RSS with ${sessionsText}`,
      target: '≤ 200 MB',
      measured: `${mb(figures.sessions[0])} (both at once: ${mb(figures.both[0])})`,
      met: figures.sessions[0] <= GOAL_BYTES,
    },
  );
  return [out];
}
