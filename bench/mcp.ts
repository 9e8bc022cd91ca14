// Scenario 4: add_to_cart + release_cart through the SDK Client over in-memory, stdio and Streamable HTTP
// (1 and 32 sessions), beside an `echo` tool on the same kind of server and transport.
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { McpServer as V2Server } from '@modelcontextprotocol/server';
import { pino } from 'pino';
import { createServer } from '../src/mcp/server.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { createBaselineServer } from './baseline-server.js';
import {
  baselineServerScript,
  Caller,
  type HttpTransport,
  httpClient,
  MinimalHttpSession,
  type RunningServer,
  startBaselineHttp,
  startStocklockHttp,
  startStocklockOnSdk,
  stdioClient,
} from './clients.js';
import {
  benchStoreOptions,
  CLI,
  concurrentThroughput,
  cpuMs,
  fmt,
  HOT_SKU,
  interleaved,
  median,
  type RunSettings,
  type Section,
  type Sync,
  section,
} from './lib.js';
import { prepareDatabase } from './raw.js';

/** One add_to_cart into a new cart and the release_cart that gives the unit back: two calls. */
async function reserveAndRelease(caller: Caller): Promise<void> {
  const cart = await caller.call('add_to_cart', { sku: HOT_SKU, quantity: 1 });
  const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
  await caller.call('release_cart', { cart_id: cartId });
}

async function echoTwice(caller: Caller): Promise<void> {
  await caller.call('echo', { text: HOT_SKU });
  await caller.call('echo', { text: HOT_SKU });
}

/** Calls per second over `sessions` concurrent callers, two calls per operation. */
function callRate(
  callers: Caller[],
  windowMs: number,
  op: (caller: Caller) => Promise<void>,
): Promise<number> {
  return concurrentThroughput(callers.length, windowMs, (worker) => op(callers[worker] as Caller)).then(
    (pairs) => pairs * 2,
  );
}

/** CPU microseconds per call spent by a server process and by this process (the clients), medians over windows. */
export class CpuPerCall {
  private readonly servers: number[] = [];
  private readonly clients: number[] = [];

  async measure(pid: number, run: () => Promise<number>): Promise<number> {
    const server = cpuMs(pid);
    const client = process.cpuUsage();
    const started = performance.now();
    const rate = await run();
    const calls = (rate * (performance.now() - started)) / 1000;
    const used = process.cpuUsage(client);
    this.servers.push(((cpuMs(pid) - server) * 1000) / calls);
    this.clients.push((used.user + used.system) / calls);
    return rate;
  }

  server(): string {
    return fmt.rate(median(this.servers));
  }

  client(): string {
    return fmt.rate(median(this.clients));
  }
}

/** Either SDK's server: the baseline is built on the v1 SDK, stocklock on v2; both take a Transport. */
async function linked(server: Pick<McpServer, 'connect'> | V2Server): Promise<Client> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'stocklock-bench', version: '0.0.0' });
  await Promise.all([
    (server.connect as (transport: typeof serverSide) => Promise<void>)(serverSide),
    client.connect(clientSide),
  ]);
  await client.listTools();
  return client;
}

export async function mcpScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    '4. MCP tool calls',
    'Calls per second through the SDK `Client`: stocklock alternates `add_to_cart` (a new cart, one unit of ' +
      'the hot SKU) and `release_cart`; the baseline calls an `echo` tool on a bare `McpServer` over the same ' +
      "transport (stdio: a child process; HTTP: the SDK's stateful Streamable HTTP pattern on express, in a " +
      "child process, on stocklock's lean transport like stocklock itself). stocklock runs as users run it: " +
      '`dist/cli.js serve`, default log level (info, one line per call), bearer token over HTTP. "HTTP, SDK ' +
      "transport\" is stocklock's tools served by the bench on the SDK's transport (bench/baseline-server.ts, no log lines) against the echo server on the SDK's own transport, for " +
      'comparison. The load generator is this process; HTTP clients reconnect every 1,000 calls.',
    ['transport', 'sessions', 'synchronous', 'stocklock calls/s', 'echo calls/s', 'ratio', 'goal ≥ 0.9×'],
  );
  const windowMs = settings.windowMs;
  const httpWindowMs = settings.windowMs * 2;
  const ratios: { name: string; ratio: number }[] = [];
  const push = (
    transport: string,
    sessions: number,
    sync: Sync,
    figures: { project: number; baseline: number },
  ) => {
    const ratio = figures.project / figures.baseline;
    // The SDK transport's row is a comparison, not stocklock as it ships: it counts toward no goal.
    const comparison = transport.includes('SDK');
    if (!comparison) ratios.push({ name: `${transport} ×${sessions} ${sync}`, ratio });
    out.rows.push([
      transport,
      String(sessions),
      sync,
      fmt.rate(figures.project),
      fmt.rate(figures.baseline),
      fmt.ratio(ratio),
      comparison ? '(comparison)' : ratio >= 0.9 ? 'met' : 'missed',
    ]);
  };

  // In memory: both servers in this process, so the figure is the tool's own cost plus the SDK's.
  {
    const db = join(settings.dir, 'mcp-memory.db');
    await prepareDatabase(db, 'NORMAL');
    const store = openSqliteStore(db, benchStoreOptions('NORMAL'));
    const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
    const project = await Caller.open(() =>
      linked(createServer({ store, channel: 'bench', admin: false, logger, version: 'bench' })),
    );
    const baseline = await Caller.open(() => linked(createBaselineServer()));
    const ctx = { channel: 'bench' };
    const figures = await interleaved(settings.repeats, {
      project: () => callRate([project], windowMs, reserveAndRelease),
      baseline: () => callRate([baseline], windowMs, echoTwice),
      // The same two operations called on the store directly: what the tools cost without MCP.
      store: () =>
        concurrentThroughput(1, windowMs, async () => {
          const cart = await store.addToCart(ctx, { sku: HOT_SKU, quantity: 1 });
          await store.releaseCart(ctx, { cartId: cart.cart_id });
        }).then((pairs) => pairs * 2),
    });
    push('in-memory', 1, 'NORMAL', figures);
    // If the MCP layer cost stocklock no more than it costs echo, a call would take echo's time plus the store's.
    const additive = 1 / (1 / figures.baseline + 1 / figures.store);
    out.notes.push(
      `In memory the store itself is the ceiling: the same add + release called on SqliteStore directly ran ` +
        `${fmt.rate(figures.store)} calls/s, so echo's per-call cost plus the store's would allow ` +
        `${fmt.rate(additive)} calls/s; stocklock reached ${fmt.rate(figures.project)} ` +
        `(${fmt.ratio(figures.project / additive)} of that). The rest is stocklock's MCP layer: input and output ` +
        'schemas (zod on the server, the output schema again in the SDK client), the cart view, one log line per call.',
    );
    await project.close();
    await baseline.close();
    await store.close();
  }

  // stdio: stocklock's CLI and the baseline server, each a child process.
  {
    const db = join(settings.dir, 'mcp-stdio.db');
    await prepareDatabase(db, 'NORMAL');
    const project = await Caller.open(() =>
      stdioClient(process.execPath, [
        CLI,
        'serve',
        '--stdio',
        '--db',
        db,
        '--synchronous',
        'NORMAL',
        '--channel',
        'bench',
      ]),
    );
    const baseline = await Caller.open(() =>
      stdioClient(process.execPath, [baselineServerScript(), 'stdio']),
    );
    push(
      'stdio',
      1,
      'NORMAL',
      await interleaved(settings.repeats, {
        project: () => callRate([project], windowMs, reserveAndRelease),
        baseline: () => callRate([baseline], windowMs, echoTwice),
      }),
    );
    await project.close();
    await baseline.close();
  }

  // Streamable HTTP: 1 and 32 concurrent sessions; the 32-session case also with the default FULL. stocklock runs
  // its default lean transport against an echo server on the same transport; the SDK's transport (stocklock's
  // tools served by the bench on the SDK's transport, against the SDK echo server) runs beside it at 32 sessions.
  let moonshot = { NORMAL: Number.NaN, FULL: Number.NaN };
  let minimalMoonshot = { NORMAL: Number.NaN, FULL: Number.NaN };
  const minimalRows: string[][] = [];
  const echoHttp: Record<HttpTransport, RunningServer | undefined> = { lean: undefined, sdk: undefined };
  try {
    echoHttp.lean = await startBaselineHttp(undefined, 'lean');
    echoHttp.sdk = await startBaselineHttp(undefined, 'sdk');
    const echoes = echoHttp as Record<HttpTransport, RunningServer>;
    for (const sync of ['NORMAL', 'FULL'] as const) {
      const servers: Record<HttpTransport, RunningServer | undefined> = { lean: undefined, sdk: undefined };
      try {
        for (const transport of ['lean', 'sdk'] as const) {
          const db = join(settings.dir, `mcp-http-${sync}-${transport}.db`);
          await prepareDatabase(db, sync);
          servers[transport] =
            transport === 'lean' ? await startStocklockHttp(db, sync) : await startStocklockOnSdk(db, sync);
        }
        const running = servers as Record<HttpTransport, RunningServer>;
        for (const sessions of sync === 'NORMAL' ? [1, 32] : [32]) {
          // The SDK transport's row with the SDK client: 32 sessions, NORMAL only (the client costs the same).
          const transports: HttpTransport[] =
            sync === 'NORMAL' && sessions === 32 ? ['lean', 'sdk'] : ['lean'];
          const callers = new Map<HttpTransport, { project: Caller[]; baseline: Caller[] }>();
          for (const transport of transports) {
            callers.set(transport, {
              project: await Promise.all(
                Array.from({ length: sessions }, () =>
                  Caller.open(() => httpClient(running[transport].url, running[transport].token), true),
                ),
              ),
              baseline: await Promise.all(
                Array.from({ length: sessions }, () =>
                  Caller.open(() => httpClient(echoes[transport].url), true),
                ),
              ),
            });
          }
          for (const transport of transports) {
            const { project, baseline } = callers.get(transport) as { project: Caller[]; baseline: Caller[] };
            const cpu = { project: new CpuPerCall(), baseline: new CpuPerCall() };
            push(
              transport === 'lean' ? 'HTTP' : 'HTTP, SDK transport',
              sessions,
              sync,
              await interleaved(settings.repeats, {
                project: () =>
                  cpu.project.measure(running[transport].pid, () =>
                    callRate(project, httpWindowMs, reserveAndRelease),
                  ),
                baseline: () =>
                  cpu.baseline.measure(echoes[transport].pid, () =>
                    callRate(baseline, httpWindowMs, echoTwice),
                  ),
              }),
            );
            out.notes.push(
              `HTTP${transport === 'sdk' ? ' (SDK transport)' : ''}, ${sessions} session${sessions > 1 ? 's' : ''}, ` +
                `${sync}: CPU per call in the server process ${cpu.project.server()} µs (echo server ` +
                `${cpu.baseline.server()} µs); in the load generator ${cpu.project.client()} µs (against echo ` +
                `${cpu.baseline.client()} µs).`,
            );
          }
          if (sessions === 32) {
            // The moonshot counts add_to_cart alone: every call a new cart holding one unit.
            const lean = callers.get('lean') as { project: Caller[] };
            const adds = await interleaved(settings.repeats, {
              add: () =>
                concurrentThroughput(lean.project.length, httpWindowMs, async (worker) => {
                  await (lean.project[worker] as Caller).call('add_to_cart', { sku: HOT_SKU, quantity: 1 });
                }),
            });
            moonshot = { ...moonshot, [sync]: adds.add };

            // The same servers under a load generator that costs little: what each server can do by itself,
            // on stocklock's lean transport and on the SDK's, each beside the echo server on the same transport.
            const open = (server: RunningServer) =>
              Promise.all(
                Array.from({ length: sessions }, () => MinimalHttpSession.open(server.url, server.token)),
              );
            const minimal = {
              leanProject: await open(running.lean),
              leanEcho: await open(echoes.lean),
              sdkProject: await open(running.sdk),
              sdkEcho: await open(echoes.sdk),
            };
            const adding = (list: MinimalHttpSession[]) => () =>
              concurrentThroughput(sessions, httpWindowMs, async (worker) => {
                await (list[worker] as MinimalHttpSession).call('add_to_cart', { sku: HOT_SKU, quantity: 1 });
              });
            const echoing = (list: MinimalHttpSession[]) => () =>
              concurrentThroughput(sessions, httpWindowMs, async (worker) => {
                await (list[worker] as MinimalHttpSession).call('echo', { text: HOT_SKU });
              });
            const minimalFigures = await interleaved(settings.repeats, {
              leanProject: adding(minimal.leanProject),
              leanEcho: echoing(minimal.leanEcho),
              sdkProject: adding(minimal.sdkProject),
              sdkEcho: echoing(minimal.sdkEcho),
            });
            for (const transport of ['lean', 'sdk'] as const) {
              const project = transport === 'lean' ? minimalFigures.leanProject : minimalFigures.sdkProject;
              const echo = transport === 'lean' ? minimalFigures.leanEcho : minimalFigures.sdkEcho;
              minimalRows.push([
                sync,
                transport === 'lean' ? 'lean (default)' : 'SDK',
                fmt.rate(project),
                fmt.rate(echo),
                fmt.ratio(project / echo),
              ]);
            }
            minimalRows.push([
              sync,
              'lean ÷ SDK',
              fmt.ratio(minimalFigures.leanProject / minimalFigures.sdkProject),
              fmt.ratio(minimalFigures.leanEcho / minimalFigures.sdkEcho),
              '',
            ]);
            minimalMoonshot = { ...minimalMoonshot, [sync]: minimalFigures.leanProject };
            await Promise.all(
              Object.values(minimal).flatMap((list) => list.map((session) => session.close())),
            );
          }
          await Promise.all(
            [...callers.values()].flatMap(({ project, baseline }) =>
              [...project, ...baseline].map((caller) => caller.close()),
            ),
          );
        }
      } finally {
        await Promise.all(Object.values(servers).map((server) => server?.stop()));
      }
    }
  } finally {
    await Promise.all(Object.values(echoHttp).map((server) => server?.stop()));
  }

  const worst = ratios.reduce((a, b) => (b.ratio < a.ratio ? b : a));
  out.goals.push(
    {
      name: 'MCP calls vs. echo, over HTTP (worst of 1 and 32 sessions; both on the lean transport)',
      target: '≥ 0.9×',
      measured: fmt.ratio(Math.min(...ratios.filter((r) => r.name.startsWith('HTTP ×')).map((r) => r.ratio))),
      met: ratios.filter((r) => r.name.startsWith('HTTP ×')).every((r) => r.ratio >= 0.9),
    },
    {
      name: 'MCP calls vs. echo, every transport',
      target: '≥ 0.9×',
      measured: `worst ${fmt.ratio(worst.ratio)} (${worst.name})`,
      met: worst.ratio >= 0.9,
    },
    {
      name: 'Moonshot: add_to_cart over HTTP, 32 sessions',
      target: '≥ 3,000 calls/s',
      measured:
        `SDK client ${fmt.rate(moonshot.NORMAL)} (NORMAL), ${fmt.rate(moonshot.FULL)} (FULL); ` +
        `minimal client ${fmt.rate(minimalMoonshot.NORMAL)} (NORMAL), ${fmt.rate(minimalMoonshot.FULL)} (FULL)`,
      met: Math.max(moonshot.NORMAL, minimalMoonshot.NORMAL) >= 3_000,
    },
  );
  const minimalSection = section(
    '4b. HTTP server capacity (minimal client)',
    'The same two servers, 32 sessions, driven by a minimal MCP client instead of the SDK `Client`: plain ' +
      'keep-alive POSTs of `tools/call` that check the answer is a result and not an error (`MinimalHttpSession` ' +
      'in bench/clients.ts). It costs the load generator a fraction of the SDK client, so more of the two cores ' +
      'go to the server. stocklock: `add_to_cart` alone (a new cart, one unit); echo: one `echo` call. Each ' +
      "row pairs stocklock and the echo server on the same transport: stocklock's lean one (the default) or the " +
      "SDK's (stocklock's tools served by the bench on it, bench/baseline-server.ts); all four alternate in the same windows.",
    ['synchronous', 'transport', 'stocklock add_to_cart/s', 'echo calls/s', 'ratio'],
  );
  minimalSection.rows.push(...minimalRows);
  out.notes.push(
    `add_to_cart alone over HTTP with 32 sessions: ${fmt.rate(moonshot.NORMAL)} calls/s with synchronous NORMAL, ` +
      `${fmt.rate(moonshot.FULL)} with the default FULL.`,
  );
  return [out, minimalSection];
}
