// Scenario: the hostile crowd. Honest shoppers buy over HTTP at a shopper's pace while one address with no
// credentials (bench/hostile-attacker.ts, a process of its own) registers OAuth clients, mints grants, holds what
// they may, opens sessions and sends oversized and nested bodies as fast as it can. The server runs with every
// limit at its default. Measured: the honest shoppers' latency against a quiet run of the same load, their lost
// sessions and errors, and what the attacker held at most (read from the database and /healthz while it ran).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { channelTokens, MinimalHttpSession, type RunningServer, startStocklockHttp } from './clients.js';
import { buyerAgent, latencyRow, openSessions, rpcResult, timed } from './flash-sale.js';
import {
  benchStoreOptions,
  cpuMs,
  fmt,
  percentile,
  type RunSettings,
  type Section,
  type Sync,
  section,
  sleep,
  spawnNode,
} from './lib.js';
import { prepareDatabase } from './store.js';

/** The server's default durability. */
const SYNC: Sync = 'FULL';
/** The SKU the attacker's grants try to hold, and the honest shoppers' 49 others. */
const HOT_SKU = 'HOT-1';
const SKUS = [HOT_SKU, ...Array.from({ length: 49 }, (_, i) => `ITEM-${String(i).padStart(2, '0')}`)];
/** A shopper looks, adds and checks out, then thinks for 1–3 s before the next purchase. */
const THINK_MS = [1_000, 3_000] as const;
const POLL_MS = 500;
const P99_GOAL = 2;

interface Honest {
  latencies: number[];
  calls: number;
  sessionsLost: number;
  errors: number;
  errorSample?: string;
  purchases: number;
}

interface Watch {
  /** Most units held at once by OAuth grants (the attacker's: the honest shoppers hold on static tokens). */
  held: number;
  grants: number;
  registrations: number;
  codes: number;
  /** Most sessions open beyond the honest shoppers' own. */
  attackerSessions: number;
  /** Live bytes of the database (pages in use) at the start and the end of the window. */
  bytesAtStart: number;
  bytesAtEnd: number;
  fileBytes: number;
  seconds: number;
}

interface Run {
  honest: Honest;
  watch: Watch;
  /** CPU time over the window as a share of one core: the server's, and the attacker's own process. */
  serverCpu: number;
  attackerCpu: number;
  attacker?: { counts: Record<string, number>; grants: number };
}

function liveBytes(reader: BetterSqlite3.Database): number {
  const pages = reader.pragma('page_count', { simple: true }) as number;
  const free = reader.pragma('freelist_count', { simple: true }) as number;
  const size = reader.pragma('page_size', { simple: true }) as number;
  return (pages - free) * size;
}

/** Reads the database and /healthz every POLL_MS until `done` resolves; keeps the most seen of each. */
async function watch(db: string, url: string, shoppers: number, done: Promise<unknown>): Promise<Watch> {
  const reader = new Database(db, { readonly: true });
  const one = (sql: string) => (reader.prepare(sql).get() as { n: number | null }).n ?? 0;
  const started = performance.now();
  const seen: Watch = {
    held: 0,
    grants: 0,
    registrations: 0,
    codes: 0,
    attackerSessions: 0,
    bytesAtStart: liveBytes(reader),
    bytesAtEnd: 0,
    fileBytes: 0,
    seconds: 0,
  };
  const health = url.replace(/\/mcp$/, '/healthz');
  let finished = false;
  void done.then(() => {
    finished = true;
  });
  try {
    while (!finished) {
      seen.held = Math.max(
        seen.held,
        one(
          "SELECT SUM(l.held) AS n FROM cart_lines l JOIN carts c ON c.id = l.cart_id WHERE c.holder <> '' AND c.status = 'open'",
        ),
      );
      seen.grants = Math.max(seen.grants, one('SELECT COUNT(*) AS n FROM oauth_grants'));
      seen.registrations = Math.max(seen.registrations, one('SELECT COUNT(*) AS n FROM oauth_clients'));
      seen.codes = Math.max(seen.codes, one('SELECT COUNT(*) AS n FROM oauth_codes'));
      const answer = await fetch(health).catch(() => undefined);
      const sessions = answer?.ok ? ((await answer.json()) as { sessions: number }).sessions : 0;
      seen.attackerSessions = Math.max(seen.attackerSessions, sessions - shoppers);
      await Promise.race([sleep(POLL_MS), done]);
    }
    seen.bytesAtEnd = liveBytes(reader);
    seen.seconds = (performance.now() - started) / 1000;
    const size = (path: string) => {
      try {
        return statSync(path).size;
      } catch {
        return 0;
      }
    };
    seen.fileBytes = size(db) + size(`${db}-wal`);
    return seen;
  } finally {
    reader.close();
  }
}

/** One shopper until the deadline: check_stock, add_to_cart (a new cart), checkout, then a pause. */
async function shop(
  start: MinimalHttpSession,
  reopen: () => Promise<MinimalHttpSession>,
  deadline: number,
  out: Honest,
): Promise<void> {
  let session = start;
  const call = async (name: string, args: Record<string, unknown>) => {
    const { ms, value } = await timed(() => session.send(name, args)).catch((error: Error) => ({
      ms: Number.NaN,
      value: { status: 0, body: error.message },
    }));
    out.calls += 1;
    if (value.status === 404) {
      // The session was ended under it: a client initializes again, and the shopper has lost it.
      out.sessionsLost += 1;
      session = await reopen();
      return undefined;
    }
    const result = value.status === 200 ? rpcResult(value.body) : undefined;
    if (!result || result.isError) {
      out.errors += 1;
      out.errorSample ??= `${name}: ${value.status} ${value.body.slice(0, 200)}`;
      return undefined;
    }
    out.latencies.push(ms);
    return result;
  };
  // Shoppers start spread over one pause, not all at once.
  await sleep(Math.random() * THINK_MS[1]);
  while (performance.now() < deadline) {
    const sku = SKUS[Math.floor(Math.random() * SKUS.length)] as string;
    await call('check_stock', { skus: [sku] });
    const added = await call('add_to_cart', { sku, quantity: 1 });
    const cartId = added?.structuredContent?.cart_id;
    if (cartId && (await call('checkout', { cart_id: cartId }))) out.purchases += 1;
    const pause = THINK_MS[0] + Math.random() * (THINK_MS[1] - THINK_MS[0]);
    await sleep(Math.min(pause, Math.max(0, deadline - performance.now())));
  }
}

async function run(
  dir: string,
  name: string,
  shoppers: number,
  seconds: number,
  hostile: boolean,
): Promise<Run> {
  const db = join(dir, `hostile-crowd-${name}.db`);
  await prepareDatabase(
    db,
    SYNC,
    SKUS.map((sku, i) => ({
      sku,
      name: `Item ${i}`,
      price_minor: 1_000 + i,
      currency: 'EUR',
      stock: 1_000_000,
    })),
  );
  const tokens = await channelTokens(db, SYNC, 'direct');
  const agent = buyerAgent(shoppers);
  const honest: Honest = { latencies: [], calls: 0, sessionsLost: 0, errors: 0, purchases: 0 };
  let server: RunningServer | undefined;
  let outcome: Run;
  const attacker = hostile ? spawnNode(join(import.meta.dirname, 'hostile-attacker.ts')) : undefined;
  try {
    server = await startStocklockHttp(db, SYNC, [], 'defaults');
    const url = server.url;
    const sessions = await openSessions(url, shoppers, agent, tokens);
    if (attacker) {
      attacker.send({ start: { mcpUrl: url, sku: HOT_SKU } });
      await attacker.next();
    }
    const cpuAtStart = { server: cpuMs(server.pid), attacker: cpuMs(attacker?.process.pid ?? 0) };
    const deadline = performance.now() + seconds * 1000;
    const shopping = Promise.all(
      sessions.map((session, i) =>
        shop(session, () => MinimalHttpSession.open(url, tokens[i % tokens.length], agent), deadline, honest),
      ),
    );
    const watched = await watch(db, url, shoppers, shopping);
    const share = (pid: number, from: number) => (cpuMs(pid) - from) / (watched.seconds * 1000);
    const serverCpu = share(server.pid, cpuAtStart.server);
    const attackerCpu = attacker ? share(attacker.process.pid ?? 0, cpuAtStart.attacker) : 0;
    let report: Run['attacker'];
    if (attacker) {
      attacker.send({ stop: true });
      report = await attacker.next<NonNullable<Run['attacker']>>();
    }
    await Promise.all(sessions.map((session) => session.close()));
    outcome = { honest, watch: watched, attacker: report, serverCpu, attackerCpu };
  } finally {
    await attacker?.stop();
    await server?.stop();
    agent.destroy();
  }
  const store = openSqliteStore(db, benchStoreOptions(SYNC));
  const audit = await store.audit();
  await store.close();
  if (!audit.ok) throw new Error(`hostile crowd (${name}): audit failed`);
  return outcome;
}

const perMinute = (w: Watch) => ((w.bytesAtEnd - w.bytesAtStart) / w.seconds) * 60;

export async function hostileCrowdScenario(settings: RunSettings): Promise<Section[]> {
  const size = settings.quick
    ? { shoppers: 20, seconds: 8, rounds: 1 }
    : { shoppers: 200, seconds: 60, rounds: 1 };
  const out = section(
    'Hostile crowd',
    `${fmt.rate(size.shoppers)} honest shoppers, each an MCP session over HTTP (the minimal keep-alive client) on one ` +
      'of six channel tokens, buy for ' +
      `${size.seconds} s: \`check_stock\`, \`add_to_cart\` of one unit into a new cart, \`checkout\`, then a pause ` +
      `of ${THINK_MS[0] / 1000}–${THINK_MS[1] / 1000} s. stocklock runs with every limit at its default (\`dist/cli.js ` +
      `serve --http\`, synchronous ${SYNC}, no flag but the port and the database). In the attacked run, one address ` +
      'with no credentials (bench/hostile-attacker.ts, its own process, two loops of each, six opening sessions) at the same time, as ' +
      'fast as it can: registers OAuth clients with the largest metadata kept (10 redirect URIs of 512 characters); ' +
      'posts Allow on the consent page and exchanges each code for a grant, then asks each grant for 20 units of ' +
      'the hot SKU twice; opens MCP sessions on its grants; and posts to /mcp a 1 MB body of brackets, 60 KB ' +
      'nested 30,000 deep and 56 KB of 4,500 keys. The quiet run is the same honest load alone, on a fresh ' +
      'server. Latency per honest call in ms, from its send to its answer.',
    ['honest calls', 'count', 'p50 ms', 'p99 ms', 'max ms'],
  );
  const quiet: Run[] = [];
  const attacked: Run[] = [];
  for (let r = 0; r < size.rounds; r++) {
    quiet.push(await run(settings.dir, `quiet-${r}`, size.shoppers, size.seconds, false));
    attacked.push(await run(settings.dir, `attacked-${r}`, size.shoppers, size.seconds, true));
  }
  const pool = (runs: Run[]) => runs.flatMap((r) => r.honest.latencies).sort((a, b) => a - b);
  const sum = (runs: Run[], pick: (h: Honest) => number) => runs.reduce((n, r) => n + pick(r.honest), 0);
  out.rows.push(latencyRow('quiet run', pool(quiet)), latencyRow('under attack', pool(attacked)));
  const quietP99 = percentile(pool(quiet), 99);
  const attackP99 = percentile(pool(attacked), 99);
  const most = (pick: (w: Watch) => number) => Math.max(...attacked.map((r) => pick(r.watch)));
  const lost = sum(attacked, (h) => h.sessionsLost);
  const errors = sum(attacked, (h) => h.errors);
  const counts: Record<string, number> = {};
  for (const r of attacked)
    for (const [what, n] of Object.entries(r.attacker?.counts ?? {})) counts[what] = (counts[what] ?? 0) + n;
  const sample = attacked.find((r) => r.honest.errorSample)?.honest.errorSample;
  out.notes.push(
    `Honest purchases: ${fmt.rate(sum(quiet, (h) => h.purchases))} quiet, ${fmt.rate(sum(attacked, (h) => h.purchases))} under attack; ` +
      `honest sessions lost (404) ${lost} under attack, ${sum(quiet, (h) => h.sessionsLost)} quiet; honest calls that failed under attack ${errors} of ${fmt.rate(sum(attacked, (h) => h.calls))}` +
      `${sample ? ` (e.g. ${sample})` : ''}, in the quiet run ${sum(quiet, (h) => h.errors)}.`,
    `What the attacker held at most (read from the database every ${POLL_MS} ms): ${most((w) => w.held)} units held ` +
      `(the default \`--max-holder-reserved\` is 20 per grant), ${most((w) => w.grants)} grants, ` +
      `${fmt.rate(most((w) => w.registrations))} client registrations, ${most((w) => w.codes)} authorization codes; ` +
      `${fmt.rate(most((w) => w.attackerSessions))} MCP sessions open beyond the honest shoppers' (from /healthz).`,
    `Database growth, live pages: ${fmt.mb(Math.max(...attacked.map((r) => perMinute(r.watch))))} MB per minute under ` +
      `attack against ${fmt.mb(Math.max(...quiet.map((r) => perMinute(r.watch))))} MB per minute for the honest load ` +
      `alone (file and WAL at the end: ${fmt.mb(most((w) => w.fileBytes))} MB against ` +
      `${fmt.mb(Math.max(...quiet.map((r) => r.watch.fileBytes)))} MB).`,
    `CPU over the window, in cores: the server ${Math.max(...quiet.map((r) => r.serverCpu)).toFixed(2)} quiet and ` +
      `${Math.max(...attacked.map((r) => r.serverCpu)).toFixed(2)} under attack; the attacker's own process ` +
      `${Math.max(...attacked.map((r) => r.attackerCpu)).toFixed(2)}, on the same two cores as the server and the ` +
      "honest shoppers' load generator (on the internet its CPU would be its own).",
    `The attacker's requests, by answer: ${Object.entries(counts)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([what, n]) => `${what} × ${fmt.rate(n)}`)
      .join('; ')}.`,
  );
  out.goals.push(
    {
      name: `Hostile crowd: honest p99 under attack vs. quiet (${fmt.rate(size.shoppers)} shoppers, server defaults)`,
      target: `≤ ${P99_GOAL}×`,
      measured: `${fmt.ratio(attackP99 / quietP99)} (${fmt.ms(attackP99)} ms against ${fmt.ms(quietP99)} ms)`,
      met: attackP99 <= P99_GOAL * quietP99,
    },
    {
      name: 'Hostile crowd: honest sessions lost',
      target: '0',
      measured: String(lost),
      met: lost === 0,
    },
  );
  return [out];
}
