// Both protocol eras on one /mcp: 2026-07-28 per request (no session) beside the 2025 revisions' initialize.
import { spawn } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type CallToolResult, Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { createServer } from '../../src/mcp/server.js';
import { ModernEndpoint } from '../../src/transports/http/modern.js';
import { CUSTOMER_TOOLS, startHttpPerTest } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';

const start = startHttpPerTest();
const REVISION = '2026-07-28';
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': REVISION,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

type Negotiation = 'auto' | 'legacy';

async function v2Client(url: string, token: string, mode: Negotiation): Promise<Client> {
  const client = new Client({ name: 'eras-test', version: '1.0.0' }, { versionNegotiation: { mode } });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

interface Answer {
  status: number;
  body: {
    id?: unknown;
    result?: Record<string, unknown>;
    error?: { code: number; message: string; data?: Record<string, unknown> };
  };
}

/** One raw POST, as a hand-written 2026-07-28 client would send it. */
async function post(
  url: string,
  token: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${token}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

function modern(id: number, method: string, params: Record<string, unknown> = {}) {
  return { jsonrpc: '2.0', id, method, params: { ...params, _meta: ENVELOPE } };
}

function headersFor(method: string, name?: string): Record<string, string> {
  return {
    'MCP-Protocol-Version': REVISION,
    'Mcp-Method': method,
    ...(name === undefined ? {} : { 'Mcp-Name': name }),
  };
}

async function sell(client: Client | V1Client): Promise<string> {
  const cart = (await client.callTool({
    name: 'add_to_cart',
    arguments: { sku: 'MUG-WHT', quantity: 2 },
  })) as CallToolResult;
  expect(cart.isError).toBeFalsy();
  const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
  const order = (await client.callTool({
    name: 'checkout',
    arguments: { cart_id: cartId },
  })) as CallToolResult;
  expect(order.isError, JSON.stringify(order.content)).toBeFalsy();
  return (order.structuredContent as { status: string }).status;
}

describe('real clients on both eras', () => {
  it.each<Negotiation>(['auto', 'legacy'])(
    'the v2 client with versionNegotiation %s lists the tools and sells',
    async (mode) => {
      const http = await start();
      const client = await v2Client(http.url, await http.token('web'), mode);
      try {
        expect(client.getProtocolEra()).toBe(mode === 'auto' ? 'modern' : 'legacy');
        expect(client.getServerVersion()?.name).toBe('stocklock');
        expect((await client.listTools()).tools).toHaveLength(7);
        expect(await sell(client)).toBe('paid');
      } finally {
        await client.close();
      }
      expect((await http.store.stockLevels(['MUG-WHT']))[0]).toMatchObject({ on_hand: 58, reserved: 0 });
    },
  );

  it('the v1 client 1.32 still opens with initialize and sells', async () => {
    const http = await start();
    const client = new V1Client({ name: 'v1', version: '1.0.0' });
    await client.connect(
      new V1Transport(new URL(http.url), {
        requestInit: { headers: { Authorization: `Bearer ${await http.token('web')}` } },
      }),
    );
    try {
      expect(client.getServerVersion()?.name).toBe('stocklock');
      expect(await sell(client)).toBe('paid');
    } finally {
      await client.close();
    }
  });

  it('keeps one server per identity: two 2026 clients of one token, the same request ids, both answered', async () => {
    const http = await start();
    const token = await http.token('web');
    const bodies = [1, 2].map(() =>
      modern(7, 'tools/call', { name: 'add_to_cart', arguments: { sku: 'MUG-WHT', quantity: 1 } }),
    );
    const answers = await Promise.all(
      bodies.map((body) => post(http.url, token, body, headersFor('tools/call', 'add_to_cart'))),
    );
    const carts = answers.map((answer) => {
      expect(answer.status).toBe(200);
      expect(answer.body.id).toBe(7);
      return (answer.body.result?.structuredContent as { cart_id: string } | undefined)?.cart_id;
    });
    expect(new Set(carts).size).toBe(2);
    expect((await http.store.stockLevels(['MUG-WHT']))[0]?.reserved).toBe(2);
  });
});

describe('the 2026-07-28 wire', () => {
  it('answers server/discover naming every revision served, with cache hints, resultType and the server identity', async () => {
    const http = await start();
    const answer = await post(
      http.url,
      await http.token('web'),
      modern(1, 'server/discover'),
      headersFor('server/discover'),
    );
    expect(answer.status).toBe(200);
    expect(answer.body.result).toMatchObject({
      supportedVersions: [REVISION, '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2024-10-07'],
      capabilities: { tools: { listChanged: false } },
      resultType: 'complete',
      ttlMs: 300_000,
      cacheScope: 'private',
      _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'stocklock' } },
    });
  });

  it("marks tools/list cacheable for its caller only, and lists the scope's tools", async () => {
    const http = await start();
    const answer = await post(
      http.url,
      await http.token('web'),
      modern(2, 'tools/list'),
      headersFor('tools/list'),
    );
    expect(answer.body.result).toMatchObject({
      resultType: 'complete',
      ttlMs: 300_000,
      cacheScope: 'private',
    });
    expect((answer.body.result?.tools as unknown[] | undefined)?.length).toBe(7);
  });

  it('refuses what the revision refuses, echoing the request id every time', async () => {
    const http = await start();
    const token = await http.token('web');
    const cases: Array<[string, unknown, Record<string, string>, number, number, RegExp]> = [
      [
        'an unsupported revision',
        {
          ...modern(3, 'tools/list'),
          params: { _meta: { ...ENVELOPE, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } },
        },
        { ...headersFor('tools/list'), 'MCP-Protocol-Version': '2099-01-01' },
        400,
        -32022,
        /2099-01-01/,
      ],
      [
        'no Mcp-Method header',
        modern(4, 'tools/list'),
        { 'MCP-Protocol-Version': REVISION },
        400,
        -32020,
        /Mcp-Method/,
      ],
      [
        'no MCP-Protocol-Version header',
        modern(5, 'tools/list'),
        { 'Mcp-Method': 'tools/list' },
        400,
        -32020,
        /MCP-Protocol-Version/,
      ],
      [
        'a header naming another method',
        modern(6, 'tools/list'),
        headersFor('tools/call'),
        400,
        -32020,
        /Mcp-Method/,
      ],
      [
        'no Mcp-Name on tools/call',
        modern(7, 'tools/call', { name: 'get_cart', arguments: { cart_id: 'x' } }),
        headersFor('tools/call'),
        400,
        -32020,
        /Mcp-Name/,
      ],
      [
        'an Mcp-Name naming another tool',
        modern(8, 'tools/call', { name: 'get_cart', arguments: { cart_id: 'x' } }),
        headersFor('tools/call', 'checkout'),
        400,
        -32020,
        /checkout/,
      ],
      [
        'an envelope without client capabilities',
        {
          jsonrpc: '2.0',
          id: 9,
          method: 'tools/list',
          params: { _meta: { 'io.modelcontextprotocol/protocolVersion': REVISION } },
        },
        headersFor('tools/list'),
        400,
        -32602,
        /clientCapabilities/,
      ],
      [
        'an envelope with a log level no revision has',
        {
          ...modern(16, 'tools/list'),
          params: { _meta: { ...ENVELOPE, 'io.modelcontextprotocol/logLevel': 'loud' } },
        },
        headersFor('tools/list'),
        400,
        -32602,
        /logLevel/,
      ],
      [
        'the revision header without an envelope',
        { jsonrpc: '2.0', id: 10, method: 'tools/list', params: {} },
        headersFor('tools/list'),
        400,
        -32602,
        /envelope/,
      ],
      ['ping, removed', modern(11, 'ping'), headersFor('ping'), 404, -32601, /not found/i],
      [
        'logging/setLevel, removed',
        modern(12, 'logging/setLevel', { level: 'info' }),
        headersFor('logging/setLevel'),
        404,
        -32601,
        /not found/i,
      ],
      [
        'initialize, removed',
        modern(13, 'initialize', {
          protocolVersion: REVISION,
          capabilities: {},
          clientInfo: { name: 'x', version: '1' },
        }),
        headersFor('initialize'),
        404,
        -32601,
        /not found/i,
      ],
    ];
    for (const [what, body, headers, status, code, message] of cases) {
      const answer = await post(http.url, token, body, headers);
      expect(answer.status, what).toBe(status);
      expect(answer.body.error?.code, what).toBe(code);
      expect(answer.body.error?.message, what).toMatch(message);
      expect(answer.body.id, what).toBe((body as { id: number }).id);
    }
    const unsupported = await post(http.url, token, cases[0]?.[1], cases[0]?.[2]);
    expect(unsupported.body.error?.data).toEqual({ supported: [REVISION], requested: '2099-01-01' });
  });

  it('answers an unknown tool with -32602 in band, and changes nothing', async () => {
    const http = await start();
    const answer = await post(
      http.url,
      await http.token('web'),
      modern(14, 'tools/call', { name: 'restock', arguments: { sku: 'MUG-WHT', quantity: 5 } }),
      headersFor('tools/call', 'restock'),
    );
    expect(answer).toMatchObject({ status: 200, body: { id: 14, error: { code: -32602 } } });
    expect((await http.store.stockLevels(['MUG-WHT']))[0]?.on_hand).toBe(60);
  });

  it('asks for a token before anything else', async () => {
    const http = await start();
    const res = await fetch(http.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headersFor('tools/list') },
      body: JSON.stringify(modern(15, 'tools/list')),
    });
    expect(res.status).toBe(401);
  });
});

describe('the servers kept for 2026-07-28 callers', () => {
  it('keeps at most maxServers, closing the least recently used idle one', async () => {
    const endpoint = new ModernEndpoint({
      createServer: (identity) =>
        createServer({
          store: undefined as never,
          channel: identity.channel,
          admin: false,
          logger: silentLogger,
          version: 't',
        }),
      maxServers: 2,
      logger: silentLogger,
    });
    // A bare node:http server: the channel comes from a header, the body is read whole.
    const server = createHttpServer((req: IncomingMessage, res) => {
      let text = '';
      req.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      req.on('end', () => {
        const identity = { credentialId: 'c', channel: String(req.headers['x-channel']), admin: false };
        void endpoint.handle(req, res, identity, JSON.parse(text), async () => {
          res.writeHead(500).end();
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    try {
      for (const channel of ['a', 'b', 'c', 'a']) {
        const answer = await post(url, 'unused', modern(1, 'tools/list'), {
          ...headersFor('tools/list'),
          'x-channel': channel,
        });
        expect(answer.status).toBe(200);
        expect(endpoint.size).toBeLessThanOrEqual(2);
      }
      expect(endpoint.size).toBe(2);
    } finally {
      await endpoint.closeAll();
      server.close();
    }
  });
});

/** What the inspector sent: each request's HTTP method, JSON-RPC method, headers of the era, and the answer's status. */
interface Seen {
  http: string;
  method?: string;
  /** The MCP-Protocol-Version header. */
  version?: string;
  /** An initialize's params.protocolVersion: the revision the client asked for. */
  offered?: string;
  session: boolean;
  status?: number;
}

/** A node:http proxy in front of stocklock that writes down each request and passes it on unchanged. */
async function startTap(target: string): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const to = new URL(target);
  const seen: Seen[] = [];
  const server = createHttpServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry: Seen = { http: req.method ?? '', session: req.headers['mcp-session-id'] !== undefined };
      const version = req.headers['mcp-protocol-version'];
      if (typeof version === 'string') entry.version = version;
      try {
        const message = JSON.parse(body.toString('utf8')) as {
          method?: string;
          params?: { protocolVersion?: string };
        };
        if (message.method !== undefined) entry.method = message.method;
        if (message.params?.protocolVersion !== undefined) entry.offered = message.params.protocolVersion;
      } catch {
        // A GET or DELETE has no body.
      }
      seen.push(entry);
      const upstream = httpRequest(
        // Host as stocklock's own, which it checks against the address it serves.
        {
          host: to.hostname,
          port: to.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: to.host },
        },
        (answer) => {
          entry.status = answer.statusCode;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      // A stream the inspector let go of (its subscriptions/listen) must not hold stocklock's shutdown.
      res.on('close', () => upstream.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${to.pathname}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Long enough for npx to fetch a package (and Node 22) into a cold cache; a hung client is killed at this. */
const INSPECTOR_TIMEOUT_MS = 120_000;

/**
 * Runs an inspector CLI by npx, fetched from the npm registry as a user would. The whole process group is
 * killed at the timeout: killing npx alone would leave the inspector it started running.
 */
function runInspector(npxArgs: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['-y', ...npxArgs], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // npm's EBADENGINE warnings (a Node 22 package installed by Node 20's npm) are noise here.
      env: { ...process.env, NPM_CONFIG_LOGLEVEL: 'error', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, INSPECTOR_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`inspector exited with ${code ?? signal}\n${stderr}\n${stdout}`));
    });
  });
}

interface Listed {
  tools: Array<{ name: string }>;
}
interface Called {
  structuredContent: { products: Array<{ sku: string; available: number }> };
  _meta?: Record<string, unknown>;
}

/**
 * A live stocklock over HTTP with a customer token, the tap in front: `tools/list`, then a check_stock call,
 * each one run of the CLI that `command` starts (given the URL and the token).
 */
async function listAndCall(
  command: (url: string, token: string) => string[],
  env: Record<string, string> = {},
): Promise<{ called: Called; seen: Seen[] }> {
  const http = await start();
  const token = await http.token('web');
  const tap = await startTap(http.url);
  try {
    const inspect = (...args: string[]) => runInspector([...command(tap.url, token), ...args], env);
    const listed = JSON.parse(await inspect('--method', 'tools/list')) as Listed;
    const called = JSON.parse(
      await inspect('--method', 'tools/call', '--tool-name', 'check_stock', '--tool-arg', 'skus=["MUG-WHT"]'),
    ) as Called;
    expect(listed.tools.map((tool) => tool.name).sort()).toEqual(CUSTOMER_TOOLS);
    expect(called.structuredContent.products).toMatchObject([{ sku: 'MUG-WHT', available: 60 }]);
    // Every request answered 200 (202 for a notification); a listen stream the client dropped first may have none.
    for (const entry of tap.seen) {
      if (entry.status === undefined) expect(entry.method).toBe('subscriptions/listen');
      else expect([200, 202]).toContain(entry.status);
    }
    return { called, seen: tap.seen };
  } finally {
    await tap.close();
  }
}

/** Each run opened with initialize asking for 2025-11-25 and then spoke it on its session, as the 2025 era does. */
function expectSessions(seen: Seen[], runs: number): void {
  const opens = seen.filter((entry) => entry.method === 'initialize');
  expect(opens).toHaveLength(runs);
  expect(opens.every((entry) => entry.offered === '2025-11-25' && !entry.session)).toBe(true);
  const rest = seen.filter((entry) => entry.method !== 'initialize');
  expect(rest.every((entry) => entry.session && entry.version === '2025-11-25')).toBe(true);
  expect(rest.map((entry) => entry.method)).toContain('tools/call');
}

describe('the MCP inspector', () => {
  it(
    "0.16.6 on Node 20 (the README's) lists and calls the tools on 2025-11-25, with a session",
    async () => {
      // 0.16.6 is the first with --header for the token; 0.15.0, the last to declare Node 20, has none.
      const { called, seen } = await listAndCall((url, token) => [
        '@modelcontextprotocol/inspector@0.16.6',
        '--cli',
        url,
        '--transport',
        'http',
        '--header',
        `Authorization: Bearer ${token}`,
      ]);
      expectSessions(seen, 2);
      expect(called._meta).toBeUndefined();
    },
    2 * INSPECTOR_TIMEOUT_MS + 10_000,
  );

  describe('2.12.0, the newest, on Node 22', () => {
    // Pinned so CI is reproducible. It declares node >= 22.19, which npx fetches as the `node` package; its
    // catalog and client config files go to a throwaway directory, not the user's home.
    const home = tempDir('stocklock-inspector-');
    afterAll(() => home.remove());
    const env = {
      MCP_CATALOG_PATH: join(home.dir, 'mcp.json'),
      MCP_CLIENT_CONFIG_PATH: join(home.dir, 'client.json'),
    };
    const newest =
      (...era: string[]) =>
      (url: string, token: string) => [
        '-p',
        'node@22.23.3',
        '-p',
        '@modelcontextprotocol/inspector@2.12.0',
        'mcp-inspector',
        '--cli',
        url,
        '--transport',
        'http',
        '--header',
        `Authorization: Bearer ${token}`,
        ...era,
      ];

    it(
      'by default (its legacy era) lists and calls the tools on 2025-11-25, with a session',
      async () => {
        const { called, seen } = await listAndCall(newest(), env);
        expectSessions(seen, 2);
        expect(called._meta).toBeUndefined();
      },
      2 * INSPECTOR_TIMEOUT_MS + 10_000,
    );

    it(
      'with --protocol-era auto finds 2026-07-28 by server/discover and speaks it, no session, no initialize',
      async () => {
        const { called, seen } = await listAndCall(newest('--protocol-era', 'auto'), env);
        expect(seen.filter((entry) => entry.method === 'server/discover')).toHaveLength(2);
        expect(seen.every((entry) => entry.version === '2026-07-28' && !entry.session)).toBe(true);
        expect(seen.map((entry) => entry.method)).not.toContain('initialize');
        expect(seen.map((entry) => entry.method)).toContain('tools/call');
        // stocklock names itself in a result's _meta only on 2026-07-28.
        expect(called._meta?.['io.modelcontextprotocol/serverInfo']).toMatchObject({ name: 'stocklock' });
      },
      2 * INSPECTOR_TIMEOUT_MS + 10_000,
    );
  });
});
