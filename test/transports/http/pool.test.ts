// Two servers on one database behind a splitter that sends every request to the other server than the last: no
// sticky routing. An OAuth sign-in, add_to_cart and checkout go through it, sessions end for the whole pool, and
// one credential's sessions stay within its cap across the pool.
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from '@modelcontextprotocol/client';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/domain/clock.js';
import { silentLogger } from '../../../src/logger.js';
import { openPostgresStore } from '../../../src/storage/postgres/store.js';
import { openSqliteStore } from '../../../src/storage/sqlite/store.js';
import type { InventoryStore } from '../../../src/storage/store.js';
import { type HttpServerHandle, serveHttp } from '../../../src/transports/http.js';
import { HTTP_CATALOG } from '../../helpers/catalog.js';
import {
  bearer,
  call,
  defaultHttpOptions,
  firstText,
  MCP_HEADERS,
  raw,
  rawInitialize,
  storeOptions,
} from '../../helpers/http.js';
import { connectWithOAuth, MemoryOAuthProvider, publicClientMetadata, signIn } from '../../helpers/oauth.js';
import { createTestDatabase } from '../../helpers/postgres.js';
import { describePostgres } from '../../helpers/requirements.js';
import { tempDir } from '../../helpers/temp.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
/** Past the interval at which a server rechecks a session it holds (session-records.ts, 5 s at this idle time). */
const RECHECK_MS = 5_001;

interface Splitter {
  url: string;
  /** Which server (0 or 1) each request with an Mcp-Session-Id went to, in order. */
  sessionRequests: { server: number; method: string }[];
  /** Which server each POST to /mcp went to, in order. */
  mcpPosts: number[];
  close(): Promise<void>;
}

/** A node:http proxy that sends each request to the other server than the last. */
async function startSplitter(targets: () => HttpServerHandle[]): Promise<Splitter> {
  let next = 0;
  const sessionRequests: Splitter['sessionRequests'] = [];
  const mcpPosts: number[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const index = next;
    next = 1 - next;
    const target = new URL((targets()[index] as HttpServerHandle).url);
    if (req.headers['mcp-session-id']) sessionRequests.push({ server: index, method: req.method ?? '' });
    if (req.method === 'POST' && req.url?.startsWith('/mcp')) mcpPosts.push(index);
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessionRequests,
    mcpPosts,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Pool {
  splitter: Splitter;
  servers: HttpServerHandle[];
  stores: InventoryStore[];
  clock: ManualClock;
}

type OpenStore = () => Promise<InventoryStore>;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startPool(open: OpenStore, overrides = {}): Promise<Pool> {
  const servers: HttpServerHandle[] = [];
  const stores: InventoryStore[] = [];
  const splitter = await startSplitter(() => servers);
  cleanups.push(() => splitter.close());
  // One clock for both servers' sessions, so the test can move past the recheck interval.
  const clock = new ManualClock(Date.now());
  for (let i = 0; i < 2; i++) {
    const store = await open();
    stores.push(store);
    cleanups.push(() => store.close());
    const options = defaultHttpOptions({ publicUrl: splitter.url, clock, ...overrides });
    const server = await serveHttp(store, options, silentLogger);
    servers.push(server);
    cleanups.push(() => server.close());
  }
  const [first] = stores as [InventoryStore];
  await first.importProducts({ channel: 'cli' }, HTTP_CATALOG);
  await first.oauth.setHostRule('127.0.0.1', 'agents', Date.now());
  // A direct sale, so the checkout is the whole purchase (a channel an OAuth host signs in as pays first).
  await first.setCheckoutMode('agents', 'direct');
  return { splitter, servers, stores, clock };
}

/** A request on a session straight to one server, bypassing the splitter. */
function onSession(url: string, token: string, sessionId: string) {
  return raw(url, {
    headers: {
      ...MCP_HEADERS,
      ...bearer(token),
      'mcp-session-id': sessionId,
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
  });
}

function poolTests(open: () => OpenStore) {
  it('signs in with OAuth, adds to cart and checks out with the 2025-era SDK client, every request on the other server', async () => {
    const pool = await startPool(open());
    const mcpUrl = `${pool.splitter.url}/mcp`;
    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT));
    await signIn(provider, mcpUrl);
    const client = await connectWithOAuth(mcpUrl, provider);
    cleanups.push(() => client.close().catch(() => undefined));

    const store = pool.stores[1] as InventoryStore;
    const [before] = await store.stockLevels(['MUG-WHT']);
    const added = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
    expect(added.isError, firstText(added)).toBeFalsy();
    const cart = added.structuredContent as { cart_id: string };
    const order = await call(client, 'checkout', { cart_id: cart.cart_id });
    expect(order.isError, firstText(order)).toBeFalsy();
    expect(order.structuredContent).toMatchObject({
      channel: 'agents',
      status: 'paid',
      cart_id: cart.cart_id,
    });
    const [after] = await store.stockLevels(['MUG-WHT']);
    expect(after?.on_hand).toBe((before?.on_hand ?? 0) - 2);
    expect(after?.reserved).toBe(before?.reserved);

    // Both servers answered requests of this one session: nothing was pinned.
    const posts = pool.splitter.sessionRequests.filter((r) => r.method === 'POST');
    expect(new Set(posts.map((r) => r.server))).toEqual(new Set([0, 1]));

    // DELETE on one server ends the session for the pool: its row goes before the 200, and the other server,
    // which still holds it, drops it at its next recheck.
    const transport = client.transport as StreamableHTTPClientTransport;
    const sessionId = transport.sessionId as string;
    const token = provider.tokens()?.access_token as string;
    await transport.terminateSession();
    pool.clock.advance(RECHECK_MS);
    for (const server of pool.servers) {
      const answer = await onSession(server.url, token, sessionId);
      expect(answer.status, answer.text).toBe(404);
    }
  });

  it('serves a session on the server that did not open it, and keeps a credential within its cap across the pool', async () => {
    const pool = await startPool(open(), { maxSessionsPerCredential: 2 });
    const [a, b] = pool.servers as [HttpServerHandle, HttpServerHandle];
    const token = (await (pool.stores[0] as InventoryStore).createToken('web', false)).token;

    const first = await rawInitialize(a.url, token);
    // Another credential cannot borrow it, from its row (b) or from memory (a).
    const other = (await (pool.stores[0] as InventoryStore).createToken('web', false)).token;
    expect((await onSession(b.url, other, first)).status).toBe(403);
    expect((await onSession(a.url, other, first)).status).toBe(403);
    expect((await onSession(b.url, token, first)).status).toBe(200);

    pool.clock.advance(10);
    const second = await rawInitialize(b.url, token);
    pool.clock.advance(10);
    // The third session on a credential capped at two takes the place of the longest unused, on every server.
    const third = await rawInitialize(a.url, token);
    for (const server of [a, b]) {
      pool.clock.advance(RECHECK_MS);
      expect((await onSession(server.url, token, first)).status).toBe(404);
      expect((await onSession(server.url, token, second)).status).toBe(200);
      expect((await onSession(server.url, token, third)).status).toBe(200);
    }

    // Sessions nobody uses expire for the pool, and the sweeper's prune drops their rows.
    const store = pool.stores[1] as InventoryStore;
    expect(await store.mcpSessions.prune(pool.clock.now())).toBe(0);
    pool.clock.advance(60_000 + RECHECK_MS);
    expect(await store.mcpSessions.prune(pool.clock.now())).toBe(2);
    for (const server of [a, b]) expect((await onSession(server.url, token, third)).status).toBe(404);
  });

  // The 2026-07-28 revision has no session: each request carries its own version and capabilities, so any
  // server answers it with nothing to look up.
  it('signs in with OAuth, adds to cart and checks out with a 2026-07-28 client (SDK v2), every request on the other server', async () => {
    const pool = await startPool(open());
    const mcpUrl = `${pool.splitter.url}/mcp`;
    const provider = new MemoryOAuthProvider(REDIRECT, publicClientMetadata(REDIRECT));
    await signIn(provider, mcpUrl);
    const client = new ModernClient(
      { name: 'pool-2026', version: '1.0.0' },
      { versionNegotiation: { mode: 'auto' } },
    );
    await client.connect(
      new ModernTransport(new URL(mcpUrl), {
        requestInit: { headers: { Authorization: `Bearer ${provider.tokens()?.access_token}` } },
      }),
    );
    cleanups.push(() => client.close().catch(() => undefined));
    expect(client.getProtocolEra()).toBe('modern');
    const posted = pool.splitter.mcpPosts.length;

    const store = pool.stores[0] as InventoryStore;
    const [before] = await store.stockLevels(['MUG-WHT']);
    const added = await client.callTool({ name: 'add_to_cart', arguments: { sku: 'MUG-WHT', quantity: 1 } });
    expect(added.isError).toBeFalsy();
    const cart = added.structuredContent as { cart_id: string };
    const order = await client.callTool({ name: 'checkout', arguments: { cart_id: cart.cart_id } });
    expect(order.isError).toBeFalsy();
    expect(order.structuredContent).toMatchObject({
      channel: 'agents',
      status: 'paid',
      cart_id: cart.cart_id,
    });
    const [after] = await store.stockLevels(['MUG-WHT']);
    expect(after?.on_hand).toBe((before?.on_hand ?? 0) - 1);

    // The two tool calls went to different servers, and no request carried a session.
    expect(new Set(pool.splitter.mcpPosts.slice(posted))).toEqual(new Set([0, 1]));
    expect(pool.splitter.sessionRequests).toEqual([]);
  });
}

describe('a pool of two servers on one SQLite file', () => {
  poolTests(() => {
    const tmp = tempDir();
    cleanups.push(async () => tmp.remove());
    const path = join(tmp.dir, 'stocklock.db');
    return async () => openSqliteStore(path, storeOptions());
  });
});

describePostgres('a pool of two servers on one PostgreSQL database', () => {
  poolTests(() => {
    let url: Promise<string> | undefined;
    const database = async () => {
      url ??= createTestDatabase('stocklock_session_pool').then((db) => {
        cleanups.unshift(() => db.drop());
        return db.url;
      });
      return url;
    };
    return async () => openPostgresStore(await database(), storeOptions());
  });
});
