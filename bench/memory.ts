// Scenario 6: resident memory of `stocklock serve --http` with 10,000 open carts and with 1,000 idle sessions,
// beside the baseline echo server holding the same idle sessions.
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  Caller,
  closeClient,
  type HttpTransport,
  httpClient,
  type RunningServer,
  startBaselineHttp,
  startStocklockHttp,
  startStocklockOnSdk,
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
      'and then the sessions too; fresh ones only the sessions: stocklock on its lean transport (the default), ' +
      "without the merchant console (`--no-console`), and stocklock's tools served by the bench on the SDK transport (bench/baseline-server.ts), each beside " +
      'the echo server (the baseline) on the same transport. Each set of idle sessions is ended before the next opens.',
    ['server', 'state', 'stocklock RSS MB', 'echo server RSS MB', 'goal ≤ 200 MB'],
  );
  const nan: [number, number] = [Number.NaN, Number.NaN];
  const figures: Record<'started' | 'carts' | 'both' | 'sessions' | 'noConsole' | 'sdk', [number, number]> = {
    started: nan,
    carts: nan,
    both: nan,
    sessions: nan,
    noConsole: nan,
    sdk: nan,
  };
  const flags = [
    '--max-sessions',
    String(sessions + 100),
    '--max-sessions-per-credential',
    String(sessions + 100),
  ];
  const servers: RunningServer[] = [];
  const start = async (name: string, extra: string[] = []) => {
    const db = join(settings.dir, `memory-${name}.db`);
    await prepareDatabase(db, 'NORMAL');
    const server = await startStocklockHttp(db, 'NORMAL', [...flags, ...extra]);
    servers.push(server);
    return server;
  };
  const startOnSdk = async () => {
    const db = join(settings.dir, 'memory-sdk.db');
    await prepareDatabase(db, 'NORMAL');
    const server = await startStocklockOnSdk(db, 'NORMAL');
    servers.push(server);
    return server;
  };
  const startEcho = async (transport: HttpTransport) => {
    const server = await startBaselineHttp(undefined, transport);
    servers.push(server);
    return server;
  };
  /** RSS of each server once it holds `sessions` idle sessions; the sessions are ended afterwards. */
  const holding = async (...held: RunningServer[]): Promise<number[]> => {
    const clients: Client[] = [];
    try {
      for (const server of held) clients.push(...(await idleSessions(server, sessions)));
      const rss: number[] = [];
      for (const server of held) rss.push(await settledRss(server.pid));
      return rss;
    } finally {
      await Promise.all(clients.map(closeClient));
    }
  };
  try {
    const loaded = await start('carts');
    const echo = await startEcho('lean');
    figures.started = [await settledRss(loaded.pid), await settledRss(echo.pid)];
    await openCarts(loaded, carts);
    figures.carts = [await settledRss(loaded.pid), Number.NaN];
    figures.both = [(await holding(loaded))[0] as number, Number.NaN];
    const [fresh, echoLean] = await holding(await start('sessions'), echo);
    figures.sessions = [fresh as number, echoLean as number];
    figures.noConsole = [
      (await holding(await start('no-console', ['--no-console'])))[0] as number,
      Number.NaN,
    ];
    const [sdk, echoSdk] = await holding(await startOnSdk(), await startEcho('sdk'));
    figures.sdk = [sdk as number, echoSdk as number];
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
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
  row('third, `--no-console`', sessionsText, figures.noConsole);
  row('fourth, SDK transport', sessionsText, figures.sdk);
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
