// Scenario 8: the flash sale. Many buyers' HTTP sessions over six channel tokens race for a few units of one SKU at
// once; exactly the stock must sell, the audit must pass, and every loser must hear OUT_OF_STOCK quickly. The echo
// server takes the same burst of calls in the same run. Both run on stocklock's lean transport (its default) and on
// the SDK's, for comparison.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { Database } from '../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import {
  channelTokens,
  type HttpTransport,
  MinimalHttpSession,
  type RunningServer,
  startBaselineHttp,
  startStocklockHttp,
  startStocklockOnSdk,
} from './clients.js';
import {
  benchStoreOptions,
  fmt,
  median,
  percentile,
  type RunSettings,
  type Section,
  type Sync,
  section,
} from './lib.js';
import { prepareDatabase } from './store.js';

const SKU = 'FLASH-1';
/** The durability a merchant runs by default. */
const SYNC: Sync = 'FULL';
/** Sessions opened at once before the sale: enough to be quick, few enough not to overflow the listen backlog. */
const OPENING_BATCH = 100;
const LOSER_GOAL_MS = 1_000;
const CHECKOUT_P99_GOAL_MS = 100;

interface Size {
  buyers: number;
  units: number;
  rounds: number;
}

/** Latencies of one round, in ms, each from the moment its own request was sent. */
interface Round {
  losers: number[];
  winnersAdd: number[];
  winnersCheckout: number[];
  wallMs: number;
  /** From the server's log: how long each loser's add_to_cart spent in the tool (store and write lock included). */
  losersInTool: number[];
  /** The same for the winners' checkouts. */
  checkoutsInTool: number[];
}

/**
 * The `ms` of the server's `tool call` log lines (the tool's own time, store included) for one tool and outcome,
 * or for every call when neither is given.
 */
function toolTimes(logFile: string, tool?: string, outcome?: string): number[] {
  const times: number[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"tool call"')) continue;
    const entry = JSON.parse(line) as { tool?: string; outcome?: string; ms?: number };
    if (typeof entry.ms !== 'number') continue;
    if ((tool === undefined || entry.tool === tool) && (outcome === undefined || entry.outcome === outcome))
      times.push(entry.ms);
  }
  return times;
}

interface EchoRound {
  calls: number[];
  wallMs: number;
}

/** The JSON-RPC answer in a body that is either JSON or one SSE `message` event (the SDK transport's default). */
export function rpcResult(body: string): {
  isError?: boolean;
  content?: { type: string; text?: string }[];
  structuredContent?: {
    cart_id?: string;
    order_id?: string;
    status?: string;
    total_minor?: number;
    currency?: string;
  };
} {
  const json = body.startsWith('{')
    ? body
    : body
        .split('\n')
        .find((line) => line.startsWith('data: '))
        ?.slice('data: '.length);
  const message = JSON.parse(json ?? 'null') as { result?: ReturnType<typeof rpcResult> } | null;
  if (!message?.result) throw new Error(`not a JSON-RPC result: ${body.slice(0, 300)}`);
  return message.result;
}

/** A pool with a socket per buyer, every one kept between the opening and the sale (as warm connections are). */
export function buyerAgent(buyers: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: buyers, maxFreeSockets: buyers });
}

/** Opens `count` sessions, OPENING_BATCH at a time; session i uses tokens[i % tokens.length]. */
export async function openSessions(
  url: string,
  count: number,
  agent: http.Agent,
  tokens: (string | undefined)[],
): Promise<MinimalHttpSession[]> {
  const sessions: MinimalHttpSession[] = [];
  for (let first = 0; first < count; first += OPENING_BATCH) {
    const batch = Array.from({ length: Math.min(OPENING_BATCH, count - first) }, (_, k) =>
      MinimalHttpSession.open(url, tokens[(first + k) % tokens.length], agent),
    );
    sessions.push(...(await Promise.all(batch)));
  }
  return sessions;
}

export async function timed<T>(op: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await op();
  return { ms: performance.now() - started, value };
}

/** One sale on a fresh database: throws unless exactly `units` sold, every other buyer was told OUT_OF_STOCK, and the audit passed. */
async function stocklockRound(
  dir: string,
  size: Size,
  round: number,
  transport: HttpTransport,
): Promise<Round> {
  const db = join(dir, `flash-sale-${round}-${transport}.db`);
  await prepareDatabase(db, SYNC, [
    { sku: SKU, name: 'Flash-sale sneakers', price_minor: 12_900, currency: 'EUR', stock: size.units },
  ]);
  // Six backends that take the payment themselves: checkout is the sale.
  const tokens = await channelTokens(db, SYNC, 'direct');

  const agent = buyerAgent(size.buyers);
  let server: RunningServer | undefined;
  const outcome: Round = {
    losers: [],
    winnersAdd: [],
    winnersCheckout: [],
    wallMs: 0,
    losersInTool: [],
    checkoutsInTool: [],
  };
  const unexpected: string[] = [];
  try {
    // Every buyer holds a session at once: the cap must not evict any of them mid-sale.
    server =
      transport === 'lean'
        ? await startStocklockHttp(db, SYNC, [
            '--max-sessions',
            String(size.buyers + 10),
            '--max-sessions-per-credential',
            String(size.buyers),
          ])
        : await startStocklockOnSdk(db, SYNC);
    const sessions = await openSessions(server.url, size.buyers, agent, tokens);
    const started = performance.now();
    await Promise.all(
      sessions.map(async (session) => {
        const add = await timed(() => session.send('add_to_cart', { sku: SKU, quantity: 1 }));
        const added = add.value.status === 200 ? rpcResult(add.value.body) : undefined;
        const cartId = added?.structuredContent?.cart_id;
        if (added && !added.isError && cartId) {
          outcome.winnersAdd.push(add.ms);
          const checkout = await timed(() => session.send('checkout', { cart_id: cartId }));
          const order = checkout.value.status === 200 ? rpcResult(checkout.value.body) : undefined;
          if (order && !order.isError && order.structuredContent?.order_id)
            outcome.winnersCheckout.push(checkout.ms);
          else unexpected.push(`checkout: ${checkout.value.status} ${checkout.value.body.slice(0, 200)}`);
        } else if (added?.isError && added.content?.[0]?.text?.startsWith('OUT_OF_STOCK')) {
          outcome.losers.push(add.ms);
        } else {
          unexpected.push(`add_to_cart: ${add.value.status} ${add.value.body.slice(0, 200)}`);
        }
      }),
    );
    outcome.wallMs = performance.now() - started;
    await Promise.all(sessions.map((session) => session.close()));
  } finally {
    await server?.stop();
    agent.destroy();
  }

  // startStocklockHttp logs the server's stderr (log level info: one line per tool call) beside the database.
  // The SDK-transport baseline (bench/baseline-server.ts) logs nothing, so only the lean round has in-tool times.
  if (transport === 'lean') {
    outcome.losersInTool = toolTimes(`${db}.log`, 'add_to_cart', 'OUT_OF_STOCK');
    outcome.checkoutsInTool = toolTimes(`${db}.log`, 'checkout', 'ok');
  }
  const books = openSqliteStore(db, benchStoreOptions(SYNC));
  const [audit, levels] = await Promise.all([books.audit(), books.stockLevels([SKU])]);
  await books.close();
  const reader = new Database(db, { readonly: true });
  const orders = (reader.prepare('SELECT COUNT(*) AS n FROM orders').get() as { n: number }).n;
  reader.close();
  const level = levels[0];
  const failures = [
    ...(unexpected.length > 0
      ? [`${unexpected.length} unexpected answers, e.g. ${unexpected.slice(0, 3).join(' | ')}`]
      : []),
    ...(outcome.winnersCheckout.length !== size.units
      ? [`${outcome.winnersCheckout.length} checkouts for ${size.units} units`]
      : []),
    ...(outcome.losers.length !== size.buyers - size.units
      ? [`${outcome.losers.length} OUT_OF_STOCK for ${size.buyers - size.units} losers`]
      : []),
    ...(orders !== size.units ? [`${orders} orders in the database`] : []),
    ...(level?.on_hand !== 0 || level.reserved !== 0
      ? [`stock left: on hand ${level?.on_hand}, reserved ${level?.reserved}`]
      : []),
    ...(audit.ok ? [] : [`audit failed: ${JSON.stringify(audit.violations).slice(0, 300)}`]),
  ];
  if (failures.length > 0)
    throw new Error(`flash sale round ${round + 1} (${transport} transport): ${failures.join('; ')}`);
  return outcome;
}

/** The same burst on the echo server: every buyer's session calls `echo` once, all at the same moment. */
async function echoRound(size: Size, transport: HttpTransport): Promise<EchoRound> {
  const agent = buyerAgent(size.buyers);
  const server = await startBaselineHttp(undefined, transport);
  try {
    const sessions = await openSessions(server.url, size.buyers, agent, [undefined]);
    const calls: number[] = [];
    const started = performance.now();
    await Promise.all(
      sessions.map(async (session) => {
        calls.push((await timed(() => session.call('echo', { text: SKU }))).ms);
      }),
    );
    const wallMs = performance.now() - started;
    await Promise.all(sessions.map((session) => session.close()));
    return { calls, wallMs };
  } finally {
    await server.stop();
    agent.destroy();
  }
}

export function latencyRow(what: string, samples: number[]): string[] {
  const sorted = [...samples].sort((a, b) => a - b);
  return [
    what,
    fmt.rate(sorted.length),
    fmt.ms(percentile(sorted, 50)),
    fmt.ms(percentile(sorted, 99)),
    fmt.ms(sorted[sorted.length - 1] ?? Number.NaN),
  ];
}

export async function flashSaleScenario(settings: RunSettings): Promise<Section[]> {
  const size: Size = settings.quick
    ? { buyers: 100, units: 10, rounds: 1 }
    : { buyers: 1_000, units: 100, rounds: settings.repeats };
  const out = section(
    '8. Flash sale',
    `${fmt.rate(size.buyers)} buyers, each an MCP session over HTTP (the minimal keep-alive client, one ` +
      `connection each, opened before the sale) on one of six channel tokens, send \`add_to_cart\` for one unit ` +
      `of a SKU with ${size.units} in stock at the same moment; a winner checks out at once. stocklock runs as ` +
      `users run it (\`dist/cli.js serve --http\`, synchronous ${SYNC}, log level info). Each round starts on a ` +
      'fresh database and fails the run unless exactly the stock sold, every other buyer got `OUT_OF_STOCK`, ' +
      "and the audit passed. The echo server (the SDK's stateful Streamable HTTP pattern) takes the same burst: " +
      "every session calls `echo` once at the same moment. Both run on stocklock's lean transport (its default; " +
      "the goals count these) and on the SDK's (stocklock's tools served by the bench on it, bench/baseline-server.ts), for comparison; the four alternate. " +
      `Latency is per call, from its send to its answer, ` +
      `in ms; samples pooled over ${size.rounds} round${size.rounds > 1 ? 's' : ''}; wall time is the median round.`,
    ['calls', 'count', 'p50 ms', 'p99 ms', 'max ms'],
  );

  const rounds: Record<HttpTransport, Round[]> = { lean: [], sdk: [] };
  const echoes: Record<HttpTransport, EchoRound[]> = { lean: [], sdk: [] };
  for (let r = 0; r < size.rounds; r++) {
    // Rotate who goes first, so drift on a shared machine hits all four alike.
    const runs = [
      async () => rounds.lean.push(await stocklockRound(settings.dir, size, r, 'lean')),
      async () => echoes.lean.push(await echoRound(size, 'lean')),
      async () => rounds.sdk.push(await stocklockRound(settings.dir, size, r, 'sdk')),
      async () => echoes.sdk.push(await echoRound(size, 'sdk')),
    ];
    for (let k = 0; k < runs.length; k++) await (runs[(r + k) % runs.length] as () => Promise<number>)();
  }

  const losers = rounds.lean.flatMap((round) => round.losers);
  const checkouts = rounds.lean.flatMap((round) => round.winnersCheckout).sort((a, b) => a - b);
  for (const transport of ['lean', 'sdk'] as const) {
    const label = transport === 'lean' ? 'stocklock' : 'stocklock, SDK transport';
    out.rows.push(
      latencyRow(
        `${label}: losers told \`OUT_OF_STOCK\``,
        rounds[transport].flatMap((round) => round.losers),
      ),
      latencyRow(
        `${label}: winners’ \`add_to_cart\``,
        rounds[transport].flatMap((round) => round.winnersAdd),
      ),
      latencyRow(
        `${label}: winners’ \`checkout\``,
        rounds[transport].flatMap((round) => round.winnersCheckout),
      ),
    );
  }
  out.rows.push(
    latencyRow(
      'echo server, lean transport: `echo`, same burst',
      echoes.lean.flatMap((round) => round.calls),
    ),
    latencyRow(
      'echo server, SDK transport: `echo`, same burst',
      echoes.sdk.flatMap((round) => round.calls),
    ),
  );
  const wall = (list: { wallMs: number }[]) => fmt.ms(median(list.map((round) => round.wallMs)));
  out.notes.push(
    `Wall time from the first send to the last answer: stocklock ${wall(rounds.lean)} ms (SDK transport ` +
      `${wall(rounds.sdk)} ms) for ${fmt.rate(size.buyers)} \`add_to_cart\` and ${size.units} \`checkout\`; echo ` +
      `server ${wall(echoes.lean)} ms (SDK transport ${wall(echoes.sdk)} ms) for ${fmt.rate(size.buyers)} \`echo\`.`,
    `Sold exactly ${size.units} of ${size.units} in every round on both transports; audit clean; no answer other ` +
      'than a cart, an order or `OUT_OF_STOCK`.',
  );
  // Where a loser's wait goes: the tool's own time (the server logs it per call) against the whole round trip.
  for (const transport of ['lean'] as const) {
    const inTool = rounds[transport].flatMap((round) => round.losersInTool).sort((a, b) => a - b);
    const checkoutInTool = rounds[transport].flatMap((round) => round.checkoutsInTool).sort((a, b) => a - b);
    out.notes.push(
      `${transport === 'lean' ? 'stocklock' : 'stocklock, SDK transport'}: inside the tool (store, write lock and ` +
        `its queue included; from the server's log) a loser's \`add_to_cart\` took p50 ` +
        `${fmt.ms(percentile(inTool, 50))} / p99 ${fmt.ms(percentile(inTool, 99))} / max ` +
        `${fmt.ms(inTool[inTool.length - 1] ?? Number.NaN)} ms, a winner's \`checkout\` p50 ` +
        `${fmt.ms(percentile(checkoutInTool, 50))} / p99 ${fmt.ms(percentile(checkoutInTool, 99))} ms, of a ` +
        `${wall(rounds[transport])} ms wall time: the rest of a loser's wait is the HTTP queue, the transport, ` +
        "JSON-RPC and the schemas, for every call ahead in the queue. (A call's time in the tool includes waiting " +
        'for its batch to commit, so these times overlap and do not add up to event-loop time.)',
    );
  }
  const slowestLoser = Math.max(...losers);
  const checkoutP99 = percentile(checkouts, 99);
  out.goals.push(
    {
      name: `Flash sale: every loser told \`OUT_OF_STOCK\` (${fmt.rate(size.buyers)} buyers, ${size.units} units)`,
      target: `≤ ${fmt.rate(LOSER_GOAL_MS)} ms`,
      measured: `max ${fmt.ms(slowestLoser)} ms (p99 ${fmt.ms(
        percentile(
          [...losers].sort((a, b) => a - b),
          99,
        ),
      )} ms)`,
      met: slowestLoser <= LOSER_GOAL_MS,
    },
    {
      name: 'Flash sale: winners’ `checkout` p99',
      target: `< ${CHECKOUT_P99_GOAL_MS} ms`,
      measured: `${fmt.ms(checkoutP99)} ms`,
      met: checkoutP99 < CHECKOUT_P99_GOAL_MS,
    },
  );
  return [out];
}
