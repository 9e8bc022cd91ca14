// Test fixtures for Streamable HTTP: a real SQLite store, serveHttp on port 0, SDK clients and raw HTTP requests.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach } from 'vitest';
import { systemClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { type Logger, silentLogger } from '../../src/logger.js';
import { openSqliteStore, type SqliteStore } from '../../src/storage/sqlite/store.js';
import type { StoreOptions } from '../../src/storage/store.js';
import { type HttpOptions, serveHttp } from '../../src/transports/http.js';
import { HTTP_CATALOG } from './catalog.js';
import { tempDir } from './temp.js';

export const CUSTOMER_TOOLS = [
  'add_to_cart',
  'check_stock',
  'checkout',
  'get_cart',
  'get_order',
  'release_cart',
  'search_products',
];
export const ADMIN_TOOLS = [
  ...CUSTOMER_TOOLS,
  'restock',
  'set_stock',
  'upsert_product',
  'confirm_payment',
  'cancel_order',
].sort();

export function storeOptions(overrides: Partial<StoreOptions> = {}): StoreOptions {
  return {
    clock: systemClock,
    reservationTtlMs: 15 * 60_000,
    limits: DEFAULT_LIMITS,
    lockTimeoutMs: 5_000,
    synchronous: 'NORMAL',
    ...overrides,
  };
}

export interface HttpFixture {
  store: SqliteStore;
  /** The SQLite file behind `store` (for read-only inspection). */
  dbPath: string;
  url: string;
  port: number;
  close(): Promise<void>;
  /** Closes every client, the server, the store, and removes the files. Idempotent. */
  dispose(): Promise<void>;
  token(channel: string, admin?: boolean): Promise<string>;
  connect(token?: string): Promise<Client>;
}

export function defaultHttpOptions(overrides: Partial<HttpOptions> = {}): HttpOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    allowedHosts: [],
    auth: true,
    channel: 'default',
    sessionIdleMs: 60_000,
    maxSessions: 200,
    version: '0.0.0-test',
    tokenCacheMs: 100,
    ...overrides,
  };
}

/**
 * Serves a freshly imported catalog over HTTP. `wrap` may replace the store the server sees
 * (e.g. a proxy that holds calls), while `store` stays the real one for setup and audits.
 */
export async function startHttp(
  overrides: Partial<HttpOptions> = {},
  wrap: (store: SqliteStore) => SqliteStore = (store) => store,
  logger: Logger = silentLogger,
): Promise<HttpFixture> {
  const tmp = tempDir();
  const dbPath = join(tmp.dir, 'stocklock.db');
  const store = openSqliteStore(dbPath, storeOptions());
  await store.importProducts({ channel: 'cli' }, HTTP_CATALOG);
  const server = await serveHttp(wrap(store), defaultHttpOptions(overrides), logger);
  const clients: Client[] = [];
  let disposed: Promise<void> | undefined;
  return {
    store,
    dbPath,
    url: server.url,
    port: server.port,
    close: server.close,
    token: async (channel, admin = false) => (await store.createToken(channel, admin)).token,
    connect: async (token) => {
      const client = await connectClient(server.url, token);
      clients.push(client);
      return client;
    },
    dispose: () => {
      disposed ??= (async () => {
        await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
        await server.close();
        await store.close();
        tmp.remove();
      })();
      return disposed;
    },
  };
}

/** startHttp for one test file: every server it starts is disposed after each test. */
export function startHttpPerTest(): (...args: Parameters<typeof startHttp>) => Promise<HttpFixture> {
  const fixtures: HttpFixture[] = [];
  afterEach(async () => {
    await Promise.all(fixtures.splice(0).map((fixture) => fixture.dispose()));
  });
  return async (...args) => {
    const fixture = await startHttp(...args);
    fixtures.push(fixture);
    return fixture;
  };
}

export async function connectClient(url: string, token?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : undefined,
    // A closed session should fail the test quickly rather than retry the GET stream.
    reconnectionOptions: {
      initialReconnectionDelay: 50,
      maxReconnectionDelay: 100,
      reconnectionDelayGrowFactor: 1,
      maxRetries: 0,
    },
  });
  const client = new Client({ name: 'stocklock-test', version: '0.0.0' });
  // The GET stream of a closed session reports errors here; tests look at call results instead.
  client.onerror = () => undefined;
  await client.connect(transport);
  return client;
}

export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

export function firstText(result: CallToolResult): string {
  const block = result.content[0];
  return block?.type === 'text' ? block.text : '';
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json(): { jsonrpc?: string; error?: { code: number; message: string }; [key: string]: unknown };
}

/** One HTTP request with full control of the headers (Host included), on a fresh connection. */
export function raw(
  url: string,
  options: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: options.method ?? 'POST',
        path: options.path ?? target.pathname,
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export const MCP_HEADERS = {
  'Content-Type': 'application/json',
  Accept: 'application/json, text/event-stream',
};

export const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
});

export function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

/** Opens a session by hand; returns its id. */
export async function rawInitialize(url: string, token?: string): Promise<string> {
  const response = await raw(url, {
    headers: { ...MCP_HEADERS, ...(token ? bearer(token) : {}) },
    body: INITIALIZE,
  });
  const id = response.headers['mcp-session-id'];
  if (response.status !== 200 || typeof id !== 'string')
    throw new Error(`initialize failed: ${response.status} ${response.text}`);
  return id;
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns true or the deadline passes. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

export async function healthz(
  url: string,
): Promise<{ status: number; body: { status: string; sessions: number } }> {
  const response = await raw(url, { method: 'GET', path: '/healthz' });
  return {
    status: response.status,
    body: response.json() as unknown as { status: string; sessions: number },
  };
}
