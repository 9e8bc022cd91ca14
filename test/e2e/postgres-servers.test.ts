// Several `stocklock serve --http` processes on one PostgreSQL database, driven by real SDK clients over HTTP:
// a race for the last units (default pool, and a pool smaller than the clients per server), then several
// servers' sweepers releasing expired carts at once. Figures (wall time, outcomes, busy refusals) go to stdout.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, ROOT, runCliAsync } from '../helpers/cli.js';
import { bearer, freePort, healthz, MCP_HEADERS, raw, rawInitialize, waitFor } from '../helpers/http.js';
import { refusalCode } from '../helpers/mcp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const SERVERS = 3;
const CLIENTS = 48;
const CHANNELS = ['web', 'telegram', 'whatsapp', 'chatgpt', 'claude', 'voice'];
const LAST_UNITS = 5;
const MUGS = 1_000;
/** A busy refusal is safe to retry; a buyer tries this many times before giving up. */
const BUSY_ATTEMPTS = 5;

interface Server {
  url: string;
  child: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
}

interface Fixture {
  db: TestDatabase;
  servers: Server[];
  tokens: string[];
  clients: { client: Client; server: number; channel: string }[];
  /** HTTP status of every response the clients received. */
  statuses: number[];
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function spawnServer(port: number, db: string, extra: string[]): Server {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--http', '--port', String(port), '--db', db, ...extra],
    {
      cwd: ROOT,
      // info: every tool call and every sweep is a JSON line on stderr, which the tests count.
      env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { url: `http://127.0.0.1:${port}/mcp`, child, stderr: () => stderr, exited };
}

async function distinctPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

async function cli(args: string[]): Promise<string> {
  const result = await runCliAsync(args);
  if (result.status !== 0) throw new Error(`stocklock ${args[0]} exited ${result.status}:\n${result.stderr}`);
  return result.stdout;
}

/** A fresh database, SERVERS processes started on it at once (they migrate concurrently), a catalog, tokens. */
async function setUp(
  serverFlags: string[],
  catalog: Record<string, unknown>[],
): Promise<Omit<Fixture, 'clients'>> {
  const db = await createTestDatabase('stocklock_e2e');
  cleanups.push(() => db.drop());
  const ports = await distinctPorts(SERVERS);
  const servers = ports.map((port) => spawnServer(port, db.url, serverFlags));
  await Promise.all(
    servers.map((server) =>
      waitFor(
        async () => {
          if (server.child.exitCode !== null) throw new Error(`a server exited early:\n${server.stderr()}`);
          return (await healthz(server.url).catch(() => undefined))?.status === 200;
        },
        30_000,
        50,
      ),
    ),
  );
  const tmp = tempDir('stocklock-e2e-pg-');
  cleanups.push(tmp.remove);
  const file = join(tmp.dir, 'catalog.json');
  writeFileSync(file, JSON.stringify(catalog));
  await cli(['import', file, '--db', db.url]);
  // Tokens live in the database: made once by the CLI, every server accepts them.
  const tokens = await Promise.all(
    CHANNELS.map(async (channel) =>
      (await cli(['token', 'create', '--channel', channel, '--db', db.url])).trim(),
    ),
  );
  for (const token of tokens) expect(token).toMatch(/^slk_/);
  // Each channel here is a backend that takes the payment itself, the OAuth hosts' channels too.
  for (const channel of ['chatgpt', 'claude']) {
    await cli(['channel', 'set', channel, '--checkout', 'direct', '--db', db.url]);
  }
  return { db, servers, tokens, statuses: [] };
}

/** CLIENTS SDK clients: client i talks to server i mod SERVERS, and every server sees every channel. */
async function connectAll(fixture: Omit<Fixture, 'clients'>): Promise<Fixture> {
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const server = i % SERVERS;
      const channel = Math.floor(i / SERVERS) % CHANNELS.length;
      const url = fixture.servers[server]?.url ?? '';
      const transport = new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { Authorization: `Bearer ${fixture.tokens[channel]}` } },
        fetch: async (input, init) => {
          const response = await fetch(input, init);
          fixture.statuses.push(response.status);
          return response;
        },
        reconnectionOptions: {
          initialReconnectionDelay: 50,
          maxReconnectionDelay: 100,
          reconnectionDelayGrowFactor: 1,
          maxRetries: 0,
        },
      });
      const client = new Client({ name: `pg-e2e-${i}`, version: '1.0.0' });
      // The GET stream of a session closed by SIGTERM reports here; the tests look at call results.
      client.onerror = () => undefined;
      await client.connect(transport);
      await client.listTools();
      cleanups.push(() => client.close().catch(() => undefined));
      return { client, server, channel: CHANNELS[channel] ?? '' };
    }),
  );
  return { ...fixture, clients };
}

/** SIGTERM every server; each must finish what is in flight and exit 0. */
async function stopAll(servers: Server[]): Promise<void> {
  for (const server of servers) server.child.kill('SIGTERM');
  const codes = await Promise.all(servers.map((server) => server.exited));
  expect(codes, servers.map((s) => s.stderr().slice(-2_000)).join('\n')).toEqual(servers.map(() => 0));
}

interface LogLine {
  msg?: string;
  level?: number;
  tool?: string;
  outcome?: string;
  ms?: number;
  carts?: number;
  units?: number;
}

function logLines(server: Server): LogLine[] {
  return server
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** Tool-call outcomes across every server's log: `ok`, a refusal code, or errors logged as failures. */
function serverTally(servers: Server[]): {
  outcomes: Record<string, number>;
  failures: number;
  maxMs: number;
} {
  const outcomes: Record<string, number> = {};
  let failures = 0;
  let maxMs = 0;
  for (const line of servers.flatMap(logLines)) {
    if (line.msg === 'tool call failed' || line.msg === 'HTTP request failed') failures += 1;
    if (line.msg !== 'tool call' || line.outcome === undefined) continue;
    const key = `${line.tool}:${line.outcome}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    maxMs = Math.max(maxMs, line.ms ?? 0);
  }
  return { outcomes, failures, maxMs };
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

type StockRow = { sku: string; on_hand: number; reserved: number; available: number | null };

async function stockJson(db: TestDatabase): Promise<StockRow[]> {
  return JSON.parse(await cli(['stock', '--json', '--db', db.url])) as StockRow[];
}

async function auditClean(db: TestDatabase): Promise<string> {
  const audit = await runCliAsync(['audit', '--db', db.url]);
  expect(audit.stdout, audit.stdout + audit.stderr).toContain('OK');
  expect(audit.status).toBe(0);
  return audit.stdout.trim().split('\n')[0] ?? '';
}

async function deadlocks(db: TestDatabase): Promise<number> {
  const [row] = await db.query<{ deadlocks: string }>(
    'SELECT deadlocks FROM pg_stat_database WHERE datname = $1',
    [db.name],
  );
  return Number(row?.deadlocks ?? 0);
}

describePostgres('several stocklock servers on PostgreSQL', () => {
  // Three servers and 48 clients start per test: on a loaded two-core machine that alone can take most of a minute.
  describe(`${SERVERS} stocklock HTTP servers on one PostgreSQL database, ${CLIENTS} clients`, {
    timeout: 180_000,
  }, () => {
    const CATALOG = [
      { sku: 'LAST-ONES', name: 'The last ones', price: '10.00', currency: 'EUR', stock: LAST_UNITS },
      { sku: 'MUG-WHT', name: 'Enamel camp mug', price: '14.50', currency: 'EUR', stock: MUGS },
    ];

    /**
     * Every client buys one of the last units and a mug in one cart: half add the last unit first, half the
     * mug first (so checkouts lock two product rows, in SKU order). A buyer refused the last unit releases
     * its cart. STORE_BUSY is retried, and counted.
     */
    async function buy(client: Client, first: 'LAST-ONES' | 'MUG-WHT', busy: { count: number }) {
      const attempt = async (name: string, args: Record<string, unknown>): Promise<CallToolResult> => {
        for (let n = 1; ; n++) {
          const result = await call(client, name, args);
          if (!result.isError || refusalCode(result) !== 'STORE_BUSY' || n >= BUSY_ATTEMPTS) return result;
          busy.count += 1;
          await new Promise((resolve) => setTimeout(resolve, 20 * n));
        }
      };
      const second = first === 'LAST-ONES' ? 'MUG-WHT' : 'LAST-ONES';
      const opened = await attempt('add_to_cart', { sku: first, quantity: 1 });
      if (opened.isError) return refusalCode(opened) === 'OUT_OF_STOCK' ? 'refused' : refusalCode(opened);
      const cartId = (opened.structuredContent as { cart_id: string }).cart_id;
      const added = await attempt('add_to_cart', { sku: second, quantity: 1, cart_id: cartId });
      if (added.isError) {
        const code = refusalCode(added);
        const released = await attempt('release_cart', { cart_id: cartId });
        if (released.isError) return `release: ${refusalCode(released)}`;
        return code === 'OUT_OF_STOCK' ? 'refused' : code;
      }
      const order = await attempt('checkout', { cart_id: cartId });
      if (order.isError) return `checkout: ${refusalCode(order)}`;
      expect((order.structuredContent as { order_id: string }).order_id).toMatch(/^ord_/);
      return 'sold';
    }

    async function race(label: string, serverFlags: string[]): Promise<void> {
      const started = performance.now();
      const fixture = await connectAll(await setUp(serverFlags, CATALOG));
      const ready = performance.now();

      // A session lives in the database, not in the process that opened it: another server of the pool answers it.
      const [first, second] = fixture.servers;
      const session = await rawInitialize(first?.url ?? '', fixture.tokens[0]);
      const elsewhere = await raw(second?.url ?? '', {
        headers: {
          ...MCP_HEADERS,
          ...bearer(fixture.tokens[0] ?? ''),
          'Mcp-Session-Id': session,
          'MCP-Protocol-Version': '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      expect(elsewhere.status).toBe(200);
      expect(elsewhere.text).toContain('"add_to_cart"');

      let open!: () => void;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const busy = { count: 0 };
      const runs = fixture.clients.map(async ({ client }, i) => {
        await gate;
        try {
          return await buy(client, i % 2 === 0 ? 'LAST-ONES' : 'MUG-WHT', busy);
        } catch (error) {
          return `threw: ${(error as Error).message}`;
        }
      });
      const raceStart = performance.now();
      open();
      const outcomes = await Promise.all(runs);
      const raceMs = performance.now() - raceStart;

      const tally: Record<string, number> = {};
      for (const outcome of outcomes) tally[outcome] = (tally[outcome] ?? 0) + 1;
      const soldBy = fixture.clients.reduce<number[]>(
        (per, { server }, i) => {
          if (outcomes[i] === 'sold') per[server] = (per[server] ?? 0) + 1;
          return per;
        },
        Array.from({ length: SERVERS }, () => 0),
      );

      expect(tally).toEqual({ sold: LAST_UNITS, refused: CLIENTS - LAST_UNITS });
      expect(fixture.statuses.filter((status) => status >= 500)).toEqual([]);

      await Promise.all(fixture.clients.map(({ client }) => client.close().catch(() => undefined)));
      await stopAll(fixture.servers);
      const server = serverTally(fixture.servers);
      expect(server.failures).toBe(0);

      const orders = await fixture.db.query<{ count: string }>('SELECT COUNT(*) AS count FROM orders');
      expect(Number(orders[0]?.count)).toBe(LAST_UNITS);
      const stock = await stockJson(fixture.db);
      expect(stock).toEqual([
        expect.objectContaining({ sku: 'LAST-ONES', on_hand: 0, reserved: 0, available: 0 }),
        expect.objectContaining({ sku: 'MUG-WHT', on_hand: MUGS - LAST_UNITS, reserved: 0 }),
      ]);
      const audit = await auditClean(fixture.db);

      console.log(
        `[${label}] ${SERVERS} servers, ${CLIENTS} clients, last ${LAST_UNITS} units: race ${Math.round(raceMs)} ms ` +
          `(set-up ${Math.round(ready - started)} ms); outcomes ${JSON.stringify(tally)}; orders per server ` +
          `${JSON.stringify(soldBy)}; STORE_BUSY retried by clients ${busy.count}; server tool calls ` +
          `${JSON.stringify(server.outcomes)}; slowest tool call ${server.maxMs} ms; HTTP statuses ` +
          `${JSON.stringify(countBy(fixture.statuses))}; PostgreSQL deadlocks ${await deadlocks(fixture.db)}; ` +
          `audit: ${audit}`,
      );
    }

    it('sell exactly the last units with the default pool (10 connections per server)', async () => {
      await race('pool 10', []);
    }, 120_000);

    it('sell exactly the last units with --pool-size 4, fewer connections than clients per server, without hanging', async () => {
      await race('pool 4', ['--pool-size', '4']);
    }, 120_000);

    it('several servers sweeping at once release every expired hold exactly once', async () => {
      const CARTS_PER_CLIENT = 5;
      const carts = CLIENTS * CARTS_PER_CLIENT;
      const ON_HAND = 10;
      // A SKU per cart: no buyer's write touches another cart's SKU, so only the sweepers release holds,
      // and what they report must add up to exactly what was held.
      const SKUS = Array.from({ length: carts }, (_, i) => `S-${String(i).padStart(3, '0')}`);
      const fixture = await connectAll(
        await setUp(
          ['--reservation-ttl', '1s', '--sweep-interval', '200ms'],
          SKUS.map((sku) => ({ sku, name: `Item ${sku}`, price: '1.00', currency: 'EUR', stock: ON_HAND })),
        ),
      );

      // One line per cart, so each (cart, SKU) is reserved once and must be released exactly once.
      const held = new Map<string, { sku: string; quantity: number }>();
      const started = performance.now();
      await Promise.all(
        fixture.clients.map(async ({ client }, i) => {
          for (let n = 0; n < CARTS_PER_CLIENT; n++) {
            const sku = SKUS[i * CARTS_PER_CLIENT + n] ?? '';
            const quantity = 1 + ((i + n) % 3);
            const result = await call(client, 'add_to_cart', { sku, quantity });
            expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
            held.set((result.structuredContent as { cart_id: string }).cart_id, { sku, quantity });
          }
        }),
      );
      const createdMs = performance.now() - started;
      const units = [...held.values()].reduce((sum, line) => sum + line.quantity, 0);
      expect(held.size).toBe(carts);

      // The servers' sweepers close every cart; nothing else writes meanwhile.
      await waitFor(
        async () => {
          const [row] = await fixture.db.query<{ open: string }>(
            "SELECT COUNT(*) AS open FROM carts WHERE status = 'open'",
          );
          return Number(row?.open) === 0;
        },
        20_000,
        100,
      );
      const sweptMs = performance.now() - started;
      await Promise.all(fixture.clients.map(({ client }) => client.close().catch(() => undefined)));
      await stopAll(fixture.servers);

      const sweeps = fixture.servers.map((server) => {
        const swept = { carts: 0, units: 0 };
        for (const line of logLines(server)) {
          if (line.msg !== 'released expired carts') continue;
          swept.carts += line.carts ?? 0;
          swept.units += line.units ?? 0;
        }
        return swept;
      });
      // Each cart was closed by exactly one sweeper: SKIP LOCKED hands every cart to one server.
      expect(sweeps.reduce((sum, s) => sum + s.carts, 0)).toBe(carts);
      // ... and released exactly the units held, no more (a double release would count twice).
      expect(sweeps.reduce((sum, s) => sum + s.units, 0)).toBe(units);
      expect(sweeps.filter((s) => s.carts > 0).length).toBeGreaterThanOrEqual(2);

      // The ledger: every line released exactly once, by exactly its quantity.
      const expired = await fixture.db.query<{ cart_id: string; sku: string; n: string; quantity: string }>(
        `SELECT cart_id, sku, COUNT(*) AS n, SUM(-reserved_delta) AS quantity FROM stock_movements
         WHERE kind = 'expire' GROUP BY cart_id, sku`,
      );
      expect(expired.filter((row) => Number(row.n) !== 1)).toEqual([]);
      expect(
        Object.fromEntries(
          expired.map((row) => [row.cart_id, { sku: row.sku, quantity: Number(row.quantity) }]),
        ),
      ).toEqual(Object.fromEntries(held));
      const statuses = await fixture.db.query<{ status: string; count: string }>(
        'SELECT status, COUNT(*) AS count FROM carts GROUP BY status',
      );
      expect(statuses.map((row) => [row.status, Number(row.count)])).toEqual([['expired', carts]]);
      const raw = await fixture.db.query<{ sku: string; on_hand: number; reserved: number }>(
        'SELECT sku, on_hand, reserved FROM products ORDER BY sku COLLATE "C"',
      );
      expect(raw).toEqual(SKUS.map((sku) => ({ sku, on_hand: ON_HAND, reserved: 0 })));
      const holds = await fixture.db.query<{ held: string }>('SELECT held FROM channel_holds');
      expect(holds.map((row) => Number(row.held))).toEqual(CHANNELS.map(() => 0));

      expect(await stockJson(fixture.db)).toEqual(
        SKUS.map((sku) =>
          expect.objectContaining({ sku, on_hand: ON_HAND, reserved: 0, available: ON_HAND }),
        ),
      );
      const audit = await auditClean(fixture.db);

      console.log(
        `[sweep] ${carts} carts holding ${units} units made on ${SERVERS} servers in ${Math.round(createdMs)} ms ` +
          `(ttl 1s, sweep every 200ms); all closed after ${Math.round(sweptMs)} ms; per server (carts/units swept) ` +
          `${sweeps.map((s) => `${s.carts}/${s.units}`).join(', ')}; expire movements ${expired.length}; ` +
          `audit: ${audit}`,
      );
    }, 120_000);
  });
});

function countBy(values: number[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}
