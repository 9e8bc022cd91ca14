// Where an add_to_cart over HTTP spends the server's CPU: runs `stocklock serve --http` under `node --cpu-prof`,
// drives it with the minimal keep-alive client, then sums the profile's self time by package and by function.
// Usage (after `npm run build`): node --import tsx bench/profile-http.ts [--sync FULL|NORMAL] [--sessions 32]
//   [--seconds 10] [--keep DIR] [--modern]   (--modern: 2026-07-28 requests instead of 2025 sessions)   (--keep leaves the .cpuprofile there, for Chrome DevTools or speedscope)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { freePort } from '../test/helpers/http.js';
import { MinimalHttpSession } from './clients.js';
import { benchStoreOptions, CLI, concurrentThroughput, fmt, HOT_SKU, type Sync, spawnNode } from './lib.js';
import { prepareDatabase } from './store.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The package a script belongs to: an npm package, stocklock's own folder under dist/, or Node itself. */
function groupOf(url: string): string | undefined {
  if (url === '') return undefined;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  // The SDK is two layers here: its Streamable HTTP transport, and JSON-RPC with the tool machinery.
  if (pkg?.[1] === '@modelcontextprotocol/sdk')
    return /streamableHttp/i.test(url) ? 'SDK Streamable HTTP transport' : 'SDK JSON-RPC and tools';
  if (pkg) return pkg[1];
  const own = /\/dist\/(?:([^/]+)\/)?/.exec(url);
  if (own) return `stocklock ${own[1] ?? '(root)'}`;
  if (url.startsWith('node:')) return 'node (http, streams, timers…)';
  return url;
}

/** Self time per node in ms; a native frame (no script) is charged to the nearest caller that has one. */
function summarise(profile: CpuProfile): {
  total: number;
  groups: Map<string, number>;
  functions: Map<string, number>;
  callers: Map<string, number>;
} {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  const callers = new Map<string, number>();
  let total = 0;
  for (const [id, ms] of self) {
    const node = byId.get(id);
    if (!node) continue;
    total += ms;
    const { functionName, url, lineNumber } = node.callFrame;
    let group: string;
    if (url === '' && functionName.startsWith('(')) {
      group = functionName; // (idle), (program), (garbage collector)
    } else {
      let caller: number | undefined = id;
      let owner: string | undefined;
      while (caller !== undefined && owner === undefined) {
        owner = groupOf(byId.get(caller)?.callFrame.url ?? '');
        caller = parent.get(caller);
      }
      group = url === '' ? `native, called from ${owner ?? '?'}` : (owner ?? '?');
    }
    groups.set(group, (groups.get(group) ?? 0) + ms);
    // Node's own work (http, streams, native writes) charged to the package that asked for it.
    let asker: number | undefined = id;
    let payer: string | undefined;
    while (asker !== undefined && payer === undefined) {
      const owner = groupOf(byId.get(asker)?.callFrame.url ?? '');
      if (owner && !owner.startsWith('node ')) payer = owner;
      asker = parent.get(asker);
    }
    const layer = group.startsWith('(')
      ? group
      : (payer ?? 'node, on its own (socket reads, parser, timers)');
    callers.set(layer, (callers.get(layer) ?? 0) + ms);
    const name = `${functionName || '(anonymous)'} ${url === '' ? `[${group}]` : `${url.replace(/^.*\/(node_modules|dist)\//, '')}:${lineNumber + 1}`}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
  }
  return { total, groups, functions, callers };
}

function top(entries: Map<string, number>, total: number, count: number): string[] {
  return [...entries]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => `| ${name} | ${fmt.rate(ms)} | ${((100 * ms) / total).toFixed(1)} % |`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sync: { type: 'string', default: 'FULL' },
      sessions: { type: 'string', default: '32' },
      seconds: { type: 'string', default: '10' },
      keep: { type: 'string' },
      modern: { type: 'boolean', default: false },
    },
  });
  const sync = values.sync as Sync;
  const sessions = Number(values.sessions);
  const dir = mkdtempSync(join(tmpdir(), 'stocklock-profile-'));
  const profileDir = values.keep ?? join(dir, 'profile');
  try {
    const db = join(dir, 'profile.db');
    await prepareDatabase(db, sync);
    const store = openSqliteStore(db, benchStoreOptions(sync));
    const { token } = await store.createToken('bench', false, 'profile');
    await store.close();
    const port = await freePort();
    const server = spawnNode(
      CLI,
      [
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
      ],
      {
        env: { STOCKLOCK_LOG_LEVEL: 'info' },
        stderrFile: `${db}.log`,
        nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir],
      },
    );
    const url = `http://127.0.0.1:${port}/mcp`;
    for (let i = 0; ; i++) {
      if ((await fetch(url.replace(/\/mcp$/, '/healthz')).catch(() => undefined))?.ok) break;
      if (i > 400) throw new Error('the server did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const clients = await Promise.all(
      Array.from({ length: sessions }, () =>
        values.modern ? MinimalHttpSession.openModern(url, token) : MinimalHttpSession.open(url, token),
      ),
    );
    const rate = await concurrentThroughput(sessions, Number(values.seconds) * 1000, async (worker) => {
      await (clients[worker] as MinimalHttpSession).call('add_to_cart', { sku: HOT_SKU, quantity: 1 });
    });
    await Promise.all(clients.map((client) => client.close()));
    await server.stop(30_000); // SIGTERM: the server exits by itself, and Node writes the profile on exit
    const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no profile in ${profileDir}`);
    const { total, groups, functions, callers } = summarise(
      JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile,
    );
    const lines = [
      `add_to_cart over HTTP, ${sessions} minimal keep-alive ${values.modern ? '2026-07-28 clients' : 'sessions'}, synchronous ${sync}: ` +
        `${fmt.rate(rate)} calls/s for ${values.seconds} s; server profile ${fmt.rate(total)} ms ` +
        '(start-up and shutdown included).',
      '',
      '| self time by package | ms | share |',
      '| --- | --- | --- |',
      ...top(groups, total, 20),
      '',
      '| self time charged to the package that called into Node | ms | share |',
      '| --- | --- | --- |',
      ...top(callers, total, 20),
      '',
      '| self time by function | ms | share |',
      '| --- | --- | --- |',
      ...top(functions, total, 25),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (values.keep) process.stderr.write(`profile kept: ${join(profileDir, file)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
