// Scenario "eras": add_to_cart over HTTP with 32 clients on each protocol era, beside the build it replaces.
/*
 * One stocklock server of this build answers both eras: 2025-11-25 sessions (initialize, then tools/call on
 * the session's lean transport) and 2026-07-28 requests (no session: the `_meta` envelope and the Mcp-Method /
 * Mcp-Name headers on every POST, answered by the caller's kept server). The "before" figure is the same
 * command's server from another build (STOCKLOCK_BENCH_BEFORE_CLI, the dist/cli.js of a checkout of main),
 * started the same way, its 2025 sessions measured in the same interleaved rounds: the machine is noisy, so
 * before and after alternate. The clients are minimal (keep-alive POSTs, no SDK), so the figures are what each
 * server does by itself. Each server has its own SQLite file.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MinimalHttpSession, type RunningServer, startStocklockHttp } from './clients.js';
import {
  concurrentThroughput,
  fmt,
  HOT_SKU,
  interleaved,
  type RunSettings,
  type Section,
  section,
} from './lib.js';
import { CpuPerCall } from './mcp.js';
import { prepareDatabase } from './raw.js';

const CLIENTS = 32;
/** At least this many interleaved rounds: the figures swing with the machine's load. */
const REPEATS = 5;

export async function erasScenario(settings: RunSettings): Promise<Section[]> {
  const before = process.env.STOCKLOCK_BENCH_BEFORE_CLI;
  const out = section(
    '10. Both protocol eras over HTTP',
    `\`add_to_cart\` (a new cart, one unit of the hot SKU) per second over HTTP with ${CLIENTS} clients, each ` +
      'era against the same server of this build, and the 2025 sessions of the build before it (' +
      (before ? `\`${before}\`` : 'not run: set STOCKLOCK_BENCH_BEFORE_CLI to a dist/cli.js of main') +
      '), in interleaved rounds. Minimal clients (plain keep-alive POSTs); the server CPU per call is the server ' +
      "process's user + system time over the calls it answered.",
    [
      'server',
      'era',
      'add_to_cart/s (median, range)',
      'server CPU µs/call',
      'ratio to before',
      'goal ≥ 0.9×',
    ],
  );
  const windowMs = settings.windowMs * 2;
  const servers: RunningServer[] = [];
  const sessions: MinimalHttpSession[] = [];
  try {
    const start = async (name: string, cli?: string) => {
      const db = join(settings.dir, `eras-${name}.db`);
      await prepareDatabase(db, 'NORMAL');
      const server = await startStocklockHttp(db, 'NORMAL', [], 'bench', cli);
      servers.push(server);
      return server;
    };
    const after = await start('after');
    const old = before && existsSync(before) ? await start('before', before) : undefined;
    const open = async (server: RunningServer, modern: boolean) => {
      const list = await Promise.all(
        Array.from({ length: CLIENTS }, () =>
          modern
            ? MinimalHttpSession.openModern(server.url, server.token)
            : MinimalHttpSession.open(server.url, server.token),
        ),
      );
      sessions.push(...list);
      return list;
    };
    const callers = {
      legacy: await open(after, false),
      modern: await open(after, true),
      before: old ? await open(old, false) : [],
    };
    const cpu = { legacy: new CpuPerCall(), modern: new CpuPerCall(), before: new CpuPerCall() };
    const adding = (name: keyof typeof callers, server: RunningServer) => () =>
      cpu[name].measure(server.pid, () =>
        concurrentThroughput(CLIENTS, windowMs, async (worker) => {
          await (callers[name][worker] as MinimalHttpSession).call('add_to_cart', {
            sku: HOT_SKU,
            quantity: 1,
          });
        }),
      );
    const contestants = {
      legacy: adding('legacy', after),
      modern: adding('modern', after),
      ...(old ? { before: adding('before', old) } : {}),
    } as Record<'legacy' | 'modern' | 'before', () => Promise<number>>;
    // One untimed round first: each server builds its sessions' (or its kept) servers and warms its JIT.
    for (const run of Object.values(contestants)) await run();
    cpu.legacy = new CpuPerCall();
    cpu.modern = new CpuPerCall();
    cpu.before = new CpuPerCall();
    // Every round's figure too, for the range beside the median.
    const rounds: Record<string, number[]> = { legacy: [], modern: [], before: [] };
    const recorded = Object.fromEntries(
      Object.entries(contestants).map(([name, run]) => [
        name,
        async () => {
          const rate = await run();
          rounds[name]?.push(rate);
          return rate;
        },
      ]),
    ) as typeof contestants;
    const figures = await interleaved(Math.max(settings.repeats, REPEATS), recorded);
    const range = (name: string) => {
      const list = rounds[name] ?? [];
      return list.length ? ` (${fmt.rate(Math.min(...list))}–${fmt.rate(Math.max(...list))})` : '';
    };
    const base = old ? figures.before : Number.NaN;
    const row = (
      server: string,
      era: string,
      name: keyof typeof rounds,
      meter: CpuPerCall,
      goal: boolean,
    ) => {
      const rate = figures[name as keyof typeof figures];
      const ratio = rate / base;
      out.rows.push([
        server,
        era,
        `${fmt.rate(rate)}${range(name)}`,
        meter.server(),
        old ? fmt.ratio(ratio) : 'n/a',
        goal && old ? (ratio >= 0.9 ? 'met' : 'missed') : '',
      ]);
      if (goal && old)
        out.goals.push({
          name: `add_to_cart over HTTP, ${CLIENTS} clients, ${era}, vs. main's 2025 sessions`,
          target: '≥ 0.9×',
          measured: fmt.ratio(ratio),
          met: ratio >= 0.9,
        });
    };
    if (old) row('before (main)', '2025-11-25 (initialize)', 'before', cpu.before, false);
    row('this build', '2025-11-25 (initialize)', 'legacy', cpu.legacy, true);
    row('this build', '2026-07-28 (per request)', 'modern', cpu.modern, true);
  } finally {
    await Promise.all(sessions.map((session) => session.close()));
    await Promise.all(servers.map((server) => server.stop()));
  }
  return [out];
}
