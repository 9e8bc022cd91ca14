// Streamable HTTP end to end in one process: real SDK clients over real HTTP against serveHttp and a SQLite file.
import { connect as netConnect } from 'node:net';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { silentLogger } from '../../src/logger.js';
import type { SqliteStore } from '../../src/storage/sqlite/store.js';
import type { AddToCartInput } from '../../src/storage/store.js';
import { serveHttp } from '../../src/transports/http.js';
import {
  ADMIN_TOOLS,
  bearer,
  CUSTOMER_TOOLS,
  call,
  connectClient,
  defaultHttpOptions,
  firstText,
  healthz,
  INITIALIZE,
  MCP_HEADERS,
  raw,
  rawInitialize,
  sleep,
  startHttpPerTest,
  waitFor,
} from '../helpers/http.js';

const start = startHttpPerTest();

async function toolNames(client: Client): Promise<string[]> {
  return (await client.listTools()).tools.map((tool) => tool.name).sort();
}

async function expectAuditOk(store: SqliteStore): Promise<void> {
  const report = await store.audit();
  expect(report.violations).toEqual([]);
  expect(report.ok).toBe(true);
}

/** A store whose add_to_cart calls wait at a gate, so a test can hold them in flight. */
function gated(store: SqliteStore) {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const state = { entered: 0, release: () => open() };
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'addToCart') {
        return async (ctx: { channel: string }, input: AddToCartInput) => {
          state.entered += 1;
          await gate;
          return target.addToCart(ctx, input);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { proxy, state };
}

describe('authentication', () => {
  it('refuses a request without a token, with a wrong token and with a revoked token', async () => {
    const http = await start();
    const missing = await raw(http.url, { headers: MCP_HEADERS, body: INITIALIZE });
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toContain('Bearer realm="stocklock"');
    expect(missing.headers['content-type']).toMatch(/application\/json/);
    expect(missing.json().error?.message).toMatch(/Authorization: Bearer/);

    const wrong = await raw(http.url, {
      headers: { ...MCP_HEADERS, ...bearer('slk_not-a-real-token') },
      body: INITIALIZE,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toContain('Bearer realm="stocklock"');
    expect(wrong.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 }, id: null });

    const notBearer = await raw(http.url, {
      headers: { ...MCP_HEADERS, Authorization: 'Basic dXNlcjpwYXNz' },
      body: INITIALIZE,
    });
    expect(notBearer.status).toBe(401);

    // The SDK client surfaces the 401 as a failed connect.
    await expect(connectClient(http.url)).rejects.toMatchObject({ code: 401 });
    await expect(connectClient(http.url, 'slk_wrong')).rejects.toMatchObject({ code: 401 });

    // Revoked before first use: refused at once.
    const unused = await http.store.createToken('web', false);
    await http.store.revokeToken(unused.record.id);
    const revoked = await raw(http.url, {
      headers: { ...MCP_HEADERS, ...bearer(unused.token) },
      body: INITIALIZE,
    });
    expect(revoked.status).toBe(401);
    expect(revoked.headers['www-authenticate']).toContain('Bearer realm="stocklock"');
  });

  it('stops a live session once its token is revoked (after the short verification cache)', async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ tokenCacheMs: 100, clock });
    const issued = await http.store.createToken('web', false);
    const client = await http.connect(issued.token);
    expect((await call(client, 'search_products', { query: 'mug' })).isError).toBeFalsy();
    await http.store.revokeToken(issued.record.id);
    // Within the cache the verified token still serves; past it, the revocation shows.
    expect((await call(client, 'search_products', { query: 'mug' })).isError).toBeFalsy();
    clock.advance(101);
    await expect(call(client, 'search_products', { query: 'mug' })).rejects.toMatchObject({ code: 401 });
  });

  it('gives a customer token exactly the six customer tools; restock is an unknown tool', async () => {
    const http = await start();
    const client = await http.connect(await http.token('web'));
    expect(await toolNames(client)).toEqual(CUSTOMER_TOOLS);
    // Unknown to this connection: the JSON-RPC error -32602, as for any unknown tool.
    await expect(call(client, 'restock', { sku: 'MUG-WHT', quantity: 5 })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringMatching(/restock.*not found/i),
    });
    expect((await http.store.stockLevels(['MUG-WHT']))[0]?.on_hand).toBe(60);
  });

  it('gives an admin token all nine tools, and restock works', async () => {
    const http = await start();
    const client = await http.connect(await http.token('backoffice', true));
    expect(await toolNames(client)).toEqual(ADMIN_TOOLS);
    const result = await call(client, 'restock', { sku: 'MUG-WHT', quantity: 5 });
    expect(result.isError).toBeFalsy();
    expect((await http.store.stockLevels(['MUG-WHT']))[0]?.on_hand).toBe(65);
    await expectAuditOk(http.store);
  });

  it('refuses a session id presented with another token (no session hijacking)', async () => {
    const http = await start();
    const web = await http.token('web');
    const bot = await http.token('telegram');
    const sameChannel = await http.token('web');
    const session = await rawInitialize(http.url, web);
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const headers = { ...MCP_HEADERS, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' };

    const hijack = await raw(http.url, { headers: { ...headers, ...bearer(bot) }, body: list });
    expect(hijack.status).toBe(403);
    expect(hijack.json().error?.message).toMatch(/another token/);
    // Another token of the same channel is still another token.
    expect(
      (await raw(http.url, { headers: { ...headers, ...bearer(sameChannel) }, body: list })).status,
    ).toBe(403);
    // No token at all: 401 before the session is even looked at.
    expect((await raw(http.url, { headers, body: list })).status).toBe(401);

    const owner = await raw(http.url, { headers: { ...headers, ...bearer(web) }, body: list });
    expect(owner.status).toBe(200);
    expect(owner.text).toContain('search_products');
  });

  it('keeps carts per channel: another channel gets CART_NOT_FOUND', async () => {
    const http = await start();
    const web = await http.connect(await http.token('web'));
    const bot = await http.connect(await http.token('telegram'));
    const added = await call(web, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
    expect(added.isError).toBeFalsy();
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;

    for (const [tool, args] of [
      ['get_cart', { cart_id: cartId }],
      ['add_to_cart', { cart_id: cartId, sku: 'MUG-WHT', quantity: 1 }],
      ['checkout', { cart_id: cartId }],
      ['release_cart', { cart_id: cartId }],
    ] as const) {
      const result = await call(bot, tool, args);
      expect(result.isError, tool).toBe(true);
      expect(firstText(result).startsWith('CART_NOT_FOUND:'), `${tool}: ${firstText(result)}`).toBe(true);
    }
    const own = await call(web, 'checkout', { cart_id: cartId });
    expect(own.isError).toBeFalsy();
    await expectAuditOk(http.store);
  });
});

describe('Host and Origin checks', () => {
  it('answers 403 JSON to a foreign Host and a foreign Origin, and accepts loopback ones', async () => {
    const http = await start();
    const token = await http.token('web');
    const headers = { ...MCP_HEADERS, ...bearer(token) };

    const foreignHost = await raw(http.url, {
      headers: { ...headers, Host: 'evil.example.com' },
      body: INITIALIZE,
    });
    expect(foreignHost.status).toBe(403);
    expect(foreignHost.json().error?.message).toMatch(/Host/);
    // A loopback name on another port is another server.
    const otherPort = await raw(http.url, {
      headers: { ...headers, Host: `localhost:${http.port + 1}` },
      body: INITIALIZE,
    });
    expect(otherPort.status).toBe(403);

    const foreignOrigin = await raw(http.url, {
      headers: { ...headers, Origin: 'https://evil.example.com' },
      body: INITIALIZE,
    });
    expect(foreignOrigin.status).toBe(403);
    expect(foreignOrigin.json().error?.message).toMatch(/Origin/);
    expect((await raw(http.url, { headers: { ...headers, Origin: 'null' }, body: INITIALIZE })).status).toBe(
      403,
    );

    expect(
      (await raw(http.url, { headers: { ...headers, Host: `localhost:${http.port}` }, body: INITIALIZE }))
        .status,
    ).toBe(200);
    expect(
      (await raw(http.url, { headers: { ...headers, Origin: 'http://localhost:6274' }, body: INITIALIZE }))
        .status,
    ).toBe(200);
  });

  it('accepts the names in allowedHosts for Host and Origin', async () => {
    const http = await start({ allowedHosts: ['shop.example.com', 'https://admin.example.com'] });
    const headers = { ...MCP_HEADERS, ...bearer(await http.token('web')) };
    const proxied = await raw(http.url, {
      headers: { ...headers, Host: 'shop.example.com', Origin: 'https://shop.example.com' },
      body: INITIALIZE,
    });
    expect(proxied.status).toBe(200);
    expect(
      (
        await raw(http.url, {
          headers: { ...headers, Host: 'admin.example.com', Origin: 'https://admin.example.com' },
          body: INITIALIZE,
        })
      ).status,
    ).toBe(200);
    // A full-origin entry matches that origin only.
    expect(
      (await raw(http.url, { headers: { ...headers, Origin: 'http://admin.example.com' }, body: INITIALIZE }))
        .status,
    ).toBe(403);
    expect(
      (await raw(http.url, { headers: { ...headers, Host: 'other.example.com' }, body: INITIALIZE })).status,
    ).toBe(403);
  });
});

describe('HTTP plumbing', () => {
  it('serves /healthz without a token and counts sessions', async () => {
    const http = await start();
    expect(await healthz(http.url)).toEqual({ status: 200, body: { status: 'ok', sessions: 0 } });
    await http.connect(await http.token('web'));
    await http.connect(await http.token('voice'));
    expect((await healthz(http.url)).body.sessions).toBe(2);
  });

  it('answers malformed JSON with -32700, a wrong content type with 415 and unknown paths with 404, all JSON', async () => {
    const http = await start();
    const token = await http.token('web');
    const headers = { ...MCP_HEADERS, ...bearer(token) };
    const malformed = await raw(http.url, { headers, body: '{"jsonrpc": "2.0", "id": 1, "method": ' });
    expect(malformed.status).toBe(400);
    expect(malformed.headers['content-type']).toMatch(/application\/json/);
    expect(malformed.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 }, id: null });

    // On a live session too.
    const session = await rawInitialize(http.url, token);
    const onSession = await raw(http.url, {
      headers: { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
      body: 'not json',
    });
    expect(onSession.status).toBe(400);
    expect(onSession.json().error?.code).toBe(-32700);

    const wrongType = await raw(http.url, {
      headers: { ...headers, 'Content-Type': 'text/plain' },
      body: INITIALIZE,
    });
    expect(wrongType.status).toBe(415);
    expect(wrongType.json().error?.message).toMatch(/Content-Type/);

    const notAccepting = await raw(http.url, {
      headers: { ...headers, Accept: 'application/json' },
      body: INITIALIZE,
    });
    expect(notAccepting.status).toBe(406);
    expect(notAccepting.headers['content-type']).toMatch(/application\/json/);

    const noSession = await raw(http.url, {
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    });
    expect(noSession.status).toBe(400);
    expect(noSession.json().error?.message).toMatch(/initialize/);

    const unknown = await raw(http.url, { method: 'GET', path: '/nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
  });

  it('answers a body over the limit (64 KB by default) with 413 JSON', async () => {
    const http = await start();
    const headers = { ...MCP_HEADERS, ...bearer(await http.token('web')) };
    const huge = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { pad: 'x'.repeat(66_000) },
    });
    const response = await raw(http.url, { headers, body: huge });
    expect(response.status).toBe(413);
    expect(response.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 }, id: null });
    // Just under the limit is parsed (and then refused as an invalid initialize, not as too large).
    const fits = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/list',
      params: { pad: 'x'.repeat(65_000) },
    });
    expect((await raw(http.url, { headers, body: fits })).status).toBe(400);
  });

  it('keeps an idle keep-alive connection open 65 s, past the 5 s that Node 20 allows, as clients and proxies expect', async () => {
    /** A keep-alive socket that has asked for /healthz once: its first answer, and a promise of its close. */
    const idleSocket = async (port: number) => {
      const socket = netConnect(port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      let received = '';
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('utf8');
      });
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      await waitFor(() => /\r\n\r\n\{.*\}$/s.test(received));
      return { socket, received, closed };
    };
    const http = await start();
    const kept = await idleSocket(http.port);
    expect(kept.received).toMatch(/^HTTP\/1\.1 200/);
    // The server's keep-alive timeout, as Node advertises it; undici follows it (less 2 s). With 5 it reused
    // sockets the server was closing.
    expect(kept.received).toMatch(/\r\nKeep-Alive: timeout=65\r\n/i);
    kept.socket.destroy();

    // The same timer, set short, is what closes an idle socket: it hangs up once the timeout has passed.
    const short = await start({ keepAliveTimeoutMs: 1_000 });
    const idle = await idleSocket(short.port);
    expect(idle.received).toMatch(/\r\nKeep-Alive: timeout=1\r\n/i);
    await idle.closed;
  });

  it('ends a session on DELETE; later requests on it get 404', async () => {
    const http = await start();
    const token = await http.token('web');
    const client = await http.connect(token);
    const transport = client.transport as unknown as {
      sessionId?: string;
      terminateSession(): Promise<void>;
    };
    const session = transport.sessionId;
    expect(session).toBeTypeOf('string');
    expect((await healthz(http.url)).body.sessions).toBe(1);
    await transport.terminateSession();
    expect((await healthz(http.url)).body.sessions).toBe(0);
    const after = await raw(http.url, {
      headers: {
        ...MCP_HEADERS,
        ...bearer(token),
        'mcp-session-id': session as string,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
    });
    expect(after.status).toBe(404);
    expect(after.json().error?.code).toBe(-32001);
  });
});

describe('session lifetime', () => {
  it('closes sessions idle longer than sessionIdleMs', async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ sessionIdleMs: 300, clock });
    const client = await http.connect(await http.token('web'));
    expect((await call(client, 'search_products', { query: 'tee' })).isError).toBeFalsy();
    expect((await healthz(http.url)).body.sessions).toBe(1);
    clock.advance(301);
    // The expiry timer closes it without a request.
    await waitFor(async () => (await healthz(http.url)).body.sessions === 0, 5_000);
    await expect(call(client, 'search_products', { query: 'tee' })).rejects.toMatchObject({ code: 404 });
    // And a request arriving before the timer comes round finds its session expired.
    const late = await http.connect(await http.token('web'));
    clock.advance(301);
    await expect(call(late, 'search_products', { query: 'tee' })).rejects.toMatchObject({ code: 404 });
  });

  it('keeps a session that keeps working alive', async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ sessionIdleMs: 600, clock });
    const client = await http.connect(await http.token('web'));
    // Twice the idle time in all, never idle that long at once (a request on a session idle too long gets 404).
    for (let i = 0; i < 8; i++) {
      clock.advance(150);
      expect((await call(client, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
    }
    expect((await healthz(http.url)).body.sessions).toBe(1);
    // The same expiry closes it once it does idle that long.
    clock.advance(601);
    await waitFor(async () => (await healthz(http.url)).body.sessions === 0, 5_000);
  });

  it('at the session cap evicts the longest-idle session for a new one', async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ maxSessions: 2, clock });
    const token = await http.token('web');
    const first = await http.connect(token);
    clock.advance(20);
    const second = await http.connect(token);
    clock.advance(20);
    expect((await call(second, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
    const third = await http.connect(token);
    expect((await healthz(http.url)).body.sessions).toBe(2);
    await expect(call(first, 'check_stock', { skus: ['MUG-WHT'] })).rejects.toMatchObject({ code: 404 });
    expect((await call(second, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
    expect((await call(third, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
  });

  it('never holds more than maxSessions, even under concurrent initializes', async () => {
    const http = await start({ maxSessions: 3 });
    const token = await http.token('web');
    const ids = await Promise.all(Array.from({ length: 12 }, () => rawInitialize(http.url, token)));
    expect(new Set(ids).size).toBe(12);
    expect((await healthz(http.url)).body.sessions).toBe(3);
  });

  it('at the session cap answers 503 when every session has a request in flight', async () => {
    let held: ReturnType<typeof gated> | undefined;
    const http = await start({ maxSessions: 1 }, (store) => {
      held = gated(store);
      return held.proxy;
    });
    const token = await http.token('web');
    const busy = await http.connect(token);
    const pending = call(busy, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    await waitFor(() => (held?.state.entered ?? 0) === 1);
    const refused = await raw(http.url, { headers: { ...MCP_HEADERS, ...bearer(token) }, body: INITIALIZE });
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    held?.state.release();
    expect((await pending).isError).toBeFalsy();
  });
});

describe('logging', () => {
  it('logs session open and close with the channel, and never a token', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const http = await start({}, undefined, logger);
    const token = await http.token('web');
    await raw(http.url, { headers: { ...MCP_HEADERS, ...bearer(`${token}x`) }, body: INITIALIZE });
    const client = await http.connect(token);
    await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    await (client.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();

    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.find((r) => r.msg === 'MCP session opened')).toMatchObject({
      channel: 'web',
      admin: false,
    });
    expect(records.find((r) => r.msg === 'MCP session closed')).toMatchObject({
      channel: 'web',
      reason: 'ended by the client',
    });
    expect(records.find((r) => r.msg === 'tool call')).toMatchObject({
      channel: 'web',
      tool: 'add_to_cart',
      outcome: 'ok',
    });
    expect(records.some((r) => r.msg === 'refused an unauthenticated MCP request')).toBe(true);
    const all = lines.join('\n');
    expect(all).not.toContain(token);
    expect(all).not.toContain('slk_');
  });
});

describe('configuration', () => {
  it('refuses --no-auth beyond loopback, and binding beyond loopback without allowed hosts', async () => {
    await expect(
      serveHttp(
        {} as SqliteStore,
        defaultHttpOptions({ host: '0.0.0.0', auth: false, allowedHosts: ['shop.example.com'] }),
        silentLogger,
      ),
    ).rejects.toThrow(/--no-auth/);
    await expect(
      serveHttp({} as SqliteStore, defaultHttpOptions({ host: '0.0.0.0' }), silentLogger),
    ).rejects.toThrow(/--allowed-hosts/);
    await expect(
      serveHttp(
        {} as SqliteStore,
        defaultHttpOptions({ allowedHosts: ['not a host/with/path'] }),
        silentLogger,
      ),
    ).rejects.toThrow(/allowed host/);
  });

  it('with --no-auth on loopback, serves every connection as a customer on the configured channel', async () => {
    const http = await start({ auth: false, channel: 'kiosk' });
    const client = await http.connect();
    expect(await toolNames(client)).toEqual(CUSTOMER_TOOLS);
    const added = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;
    await expect(http.store.getCart({ channel: 'kiosk' }, cartId)).resolves.toMatchObject({
      cart_id: cartId,
    });
    await expect(http.store.getCart({ channel: 'web' }, cartId)).rejects.toMatchObject({
      code: 'CART_NOT_FOUND',
    });
  });
});

describe('graceful close', () => {
  it('answers every call in flight, refuses new requests with 503, and leaves the store open', async () => {
    let held: ReturnType<typeof gated> | undefined;
    const http = await start({}, (store) => {
      held = gated(store);
      return held.proxy;
    });
    const clients = await Promise.all(
      ['web', 'telegram', 'voice', 'web'].map(async (channel) => http.connect(await http.token(channel))),
    );
    const calls = Array.from({ length: 24 }, (_, i) =>
      call(clients[i % clients.length] as Client, 'add_to_cart', {
        sku: i % 2 ? 'TEE-BLK-M' : 'MUG-WHT',
        quantity: 1,
      }),
    );
    await waitFor(() => held?.state.entered === 24);

    // A connection whose request had begun before close() (headers half sent) gets 503 for it.
    const socket = netConnect(http.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${http.port}\r\n`);
    await sleep(50);

    let closeDone = false;
    const closing = http.close().then(() => {
      closeDone = true;
    });
    await sleep(50);
    expect(closeDone).toBe(false);
    const reply = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString('utf8');
      });
      socket.on('close', () => resolve(text));
    });
    socket.write(
      `Content-Type: application/json\r\nContent-Length: ${INITIALIZE.length}\r\n\r\n${INITIALIZE}`,
    );
    expect(await reply).toMatch(/^HTTP\/1\.1 503/);
    expect((await healthz(http.url).catch((error: Error) => error)) instanceof Error).toBe(true); // no longer listening

    held?.state.release();
    const results = await Promise.all(calls);
    await closing;
    for (const result of results) {
      expect(result.isError, firstText(result)).toBeFalsy();
      expect((result.structuredContent as { cart_id: string }).cart_id).toMatch(/^cart_/);
    }
    const levels = await http.store.stockLevels(['MUG-WHT', 'TEE-BLK-M']);
    expect(levels.map((level) => level.reserved)).toEqual([12, 12]);
    await expectAuditOk(http.store);
  });

  it('gives up waiting after drainMs', async () => {
    let held: ReturnType<typeof gated> | undefined;
    const http = await start({ drainMs: 200 }, (store) => {
      held = gated(store);
      return held.proxy;
    });
    const client = await http.connect(await http.token('web'));
    // The call loses its stream at the deadline; the SDK client would wait 60 s for an answer that cannot come.
    const pending = client
      .callTool({ name: 'add_to_cart', arguments: { sku: 'MUG-WHT', quantity: 1 } }, undefined, {
        timeout: 1_000,
      })
      .catch((error: Error) => error);
    await waitFor(() => held?.state.entered === 1);
    // The call stays held until close() has returned: close() cannot have waited for it.
    await http.close();
    expect(held?.state.entered).toBe(1);
    held?.state.release();
    expect(await pending).toBeInstanceOf(Error);
    await expectAuditOk(http.store);
  });
});

describe('race over HTTP', () => {
  it('48 clients on 6 channels race for the last 5 units: exactly 5 orders, no 5xx, books balance', async () => {
    const http = await start();
    const channels = ['web', 'telegram', 'whatsapp', 'chatgpt', 'claude', 'voice'];
    // Static tokens on every channel, each a backend that takes the payment itself: all sell at checkout.
    for (const channel of ['chatgpt', 'claude']) await http.store.setCheckoutMode(channel, 'direct');
    const tokens = await Promise.all(channels.map((channel) => http.token(channel)));
    const clients = await Promise.all(
      Array.from({ length: 48 }, (_, i) => http.connect(tokens[i % tokens.length])),
    );

    let go!: () => void;
    const barrier = new Promise<void>((resolve) => {
      go = resolve;
    });
    const outcomes = clients.map(async (client) => {
      await barrier;
      const added = await call(client, 'add_to_cart', { sku: 'LAST-FIVE', quantity: 1 });
      if (added.isError) return { stage: 'add', text: firstText(added) };
      const cartId = (added.structuredContent as { cart_id: string }).cart_id;
      const order = await call(client, 'checkout', { cart_id: cartId });
      if (order.isError) return { stage: 'checkout', text: firstText(order) };
      return { stage: 'order', text: (order.structuredContent as { order_id: string }).order_id };
    });
    go();
    // Any HTTP failure (5xx included) would reject here.
    const results = await Promise.all(outcomes);

    const orders = results.filter((r) => r.stage === 'order');
    expect(orders).toHaveLength(5);
    expect(new Set(orders.map((r) => r.text)).size).toBe(5);
    for (const r of results.filter((r) => r.stage !== 'order')) {
      expect(r.stage).toBe('add');
      expect(r.text).toMatch(/^OUT_OF_STOCK:/);
    }
    const [level] = await http.store.stockLevels(['LAST-FIVE']);
    expect(level).toMatchObject({ on_hand: 0, reserved: 0, available: 0 });
    await expectAuditOk(http.store);
  });
});
