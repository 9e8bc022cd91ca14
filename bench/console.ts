// The console's cost to the tools: tool-call throughput and the last-unit race over HTTP with five consoles open.
// Runs in `npm run bench`; alone: `npm run bench -- --only console`.
import http from 'node:http';
import { join } from 'node:path';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { Caller, httpClient, type RunningServer, startStocklockHttp } from './clients.js';
import {
  benchCatalog,
  benchStoreOptions,
  concurrentThroughput,
  fmt,
  interleaved,
  median,
  type RunSettings,
  type Section,
  section,
  spreadSku,
} from './lib.js';
import { prepareDatabase } from './store.js';

const CONSOLES = 5;
const CALLERS = 16;
const RACE_CLIENTS = 32;
const LAST_UNITS = 5;
/** "Within noise": the spread of repeated runs of the same HTTP load on this machine (bench/findings.md). */
const NOISE_FLOOR = 0.9;

/**
 * What an open console page does, without a browser: sign in with the form, hold the server-sent event
 * stream open, and on every change fetch what the stock page shows. A browser would add its own CPU to the
 * shared cores and measure Chromium, not the server; the requests are the same.
 */
class HeadlessConsole {
  refreshes = 0;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private stream: http.ClientRequest | undefined;
  private refreshing = false;
  private again = false;

  private constructor(
    private readonly base: string,
    private readonly cookie: string,
  ) {}

  static async open(mcpUrl: string, adminToken: string): Promise<HeadlessConsole> {
    const base = mcpUrl.replace(/\/mcp$/, '/console/');
    const first = await fetch(base);
    const signInCookie = (first.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await first.text())?.[1] ?? '';
    const signedIn = await fetch(`${base}sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: signInCookie },
      body: new URLSearchParams({ token: adminToken, _csrf: csrf }).toString(),
    });
    const session = signedIn.headers
      .getSetCookie()
      .map((c) => c.split(';')[0] ?? '')
      .find((c) => c.startsWith('stocklock_console='));
    if (!session) throw new Error(`console sign-in failed: HTTP ${signedIn.status}`);
    const page = new HeadlessConsole(base, session);
    await page.listen();
    return page;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stream = http.get(
        `${this.base}api/events`,
        { headers: { Cookie: this.cookie, Accept: 'text/event-stream' } },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`events: HTTP ${res.statusCode}`));
          res.setEncoding('utf8');
          let buffer = '';
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let end = buffer.indexOf('\n\n');
            while (end >= 0) {
              const event = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              if (event.includes('event: ready')) resolve();
              if (event.includes('event: change')) void this.refresh();
              end = buffer.indexOf('\n\n');
            }
          });
          res.on('error', () => undefined);
        },
      );
      this.stream.on('error', reject);
    });
  }

  /** One refresh at a time, one more if a change came meanwhile: what the page's script does. */
  private async refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return;
    }
    this.refreshing = true;
    try {
      do {
        this.again = false;
        const res = await fetch(`${this.base}api/stock?q=`, { headers: { Cookie: this.cookie } });
        await res.arrayBuffer();
        this.refreshes += 1;
      } while (this.again);
    } finally {
      this.refreshing = false;
    }
  }

  close(): void {
    this.stream?.destroy();
    this.agent.destroy();
  }
}

async function withServer<T>(
  db: string,
  consoles: number,
  run: (server: RunningServer, opened: HeadlessConsole[]) => Promise<T>,
): Promise<T> {
  const store = openSqliteStore(db, benchStoreOptions('FULL'));
  const { token: admin } = await store.createToken('ops', true, 'bench console');
  await store.close();
  // NORMAL: more commits per second than FULL's fsync allows, so more changes for the consoles to follow.
  const server = await startStocklockHttp(db, 'NORMAL');
  const opened: HeadlessConsole[] = [];
  try {
    for (let i = 0; i < consoles; i++) opened.push(await HeadlessConsole.open(server.url, admin));
    return await run(server, opened);
  } finally {
    for (const c of opened) c.close();
    await server.stop();
  }
}

/** add_to_cart then checkout, one unit of a spread SKU per caller: every call is a write the consoles hear of. */
async function sellingThroughput(
  db: string,
  consoles: number,
  windowMs: number,
): Promise<{ rate: number; refreshes: number }> {
  return withServer(db, consoles, async (server, opened) => {
    const callers = await Promise.all(
      Array.from({ length: CALLERS }, () => Caller.open(() => httpClient(server.url, server.token), true)),
    );
    try {
      let i = 0;
      const rate = await concurrentThroughput(CALLERS, windowMs, async (worker) => {
        const caller = callers[worker] as Caller;
        const cart = await caller.call('add_to_cart', { sku: spreadSku(i++), quantity: 1 });
        await caller.call('checkout', { cart_id: (cart.structuredContent as { cart_id: string }).cart_id });
      });
      return { rate: rate * 2, refreshes: opened.reduce((n, c) => n + c.refreshes, 0) };
    } finally {
      await Promise.all(callers.map((c) => c.close()));
    }
  });
}

async function raceWithConsoles(db: string): Promise<{ sold: number; auditOk: boolean }> {
  const sold = await withServer(db, CONSOLES, async (server) => {
    const callers = await Promise.all(
      Array.from({ length: RACE_CLIENTS }, () => Caller.open(() => httpClient(server.url, server.token))),
    );
    try {
      const outcomes = await Promise.all(
        callers.map(async (caller) => {
          const cart = await caller.attempt('add_to_cart', { sku: 'LAST-ONES', quantity: 1 });
          if (cart.isError) return false;
          const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
          return !(await caller.attempt('checkout', { cart_id: cartId })).isError;
        }),
      );
      return outcomes.filter(Boolean).length;
    } finally {
      await Promise.all(callers.map((c) => c.close()));
    }
  });
  const store = openSqliteStore(db, benchStoreOptions('FULL'));
  try {
    return { sold, auditOk: (await store.audit()).ok };
  } finally {
    await store.close();
  }
}

export async function consoleScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    'The merchant console costs the tools nothing',
    `${CALLERS} SDK clients over HTTP each selling one unit at a time (\`add_to_cart\` then \`checkout\`, synchronous NORMAL) ` +
      `against one server, with no console and with ${CONSOLES} consoles open. A console here is what the page does ` +
      'without a browser: signed in, the server-sent event stream open, and the stock list fetched on every change. ' +
      `Then the last-unit race (${RACE_CLIENTS} clients, ${LAST_UNITS} units) with ${CONSOLES} consoles open.`,
    ['measure', 'no console', `${CONSOLES} consoles`, 'ratio'],
  );
  let run = 0;
  const refreshes: number[] = [];
  const rates = await interleaved(settings.repeats, {
    none: async () => {
      const db = join(settings.dir, `console-none-${run++}.db`);
      await prepareDatabase(db, 'NORMAL', benchCatalog());
      return (await sellingThroughput(db, 0, settings.windowMs)).rate;
    },
    consoles: async () => {
      const db = join(settings.dir, `console-open-${run++}.db`);
      await prepareDatabase(db, 'NORMAL', benchCatalog());
      const result = await sellingThroughput(db, CONSOLES, settings.windowMs);
      refreshes.push(result.refreshes);
      return result.rate;
    },
  });
  const ratio = rates.consoles / rates.none;
  out.rows.push(['tool calls/s', fmt.rate(rates.none), fmt.rate(rates.consoles), fmt.ratio(ratio)]);
  out.notes.push(
    `The ${CONSOLES} consoles fetched the stock list ${median(refreshes)} times per window in total (median): ` +
      'change events are merged to at most one per 250 ms.',
  );

  const raceDb = join(settings.dir, 'console-race.db');
  await prepareDatabase(raceDb, 'FULL', [
    { sku: 'LAST-ONES', name: 'The last ones', price_minor: 1_000, currency: 'EUR', stock: LAST_UNITS },
  ]);
  const race = await raceWithConsoles(raceDb);
  out.rows.push([
    'last-unit race: units sold',
    '',
    String(race.sold),
    race.auditOk ? 'audit clean' : 'AUDIT VIOLATIONS',
  ]);
  out.goals.push(
    {
      name: `Tool-call throughput with ${CONSOLES} consoles open, against none`,
      target: `≥ ${fmt.ratio(NOISE_FLOOR)}`,
      measured: fmt.ratio(ratio),
      met: ratio >= NOISE_FLOOR,
    },
    {
      name: `Last-unit race with ${CONSOLES} consoles open: units sold of ${LAST_UNITS}, audit`,
      target: `${LAST_UNITS}, clean`,
      measured: `${race.sold}, ${race.auditOk ? 'clean' : 'violations'}`,
      met: race.sold === LAST_UNITS && race.auditOk,
    },
  );
  return [out];
}
