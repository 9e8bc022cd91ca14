// stocklock's Streamable HTTP transport at the wire: the SDK transport's statuses for the GET stream, DELETE and
// notifications, and POSTs answered with JSON.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { SqliteStore } from '../../../src/storage/sqlite/store.js';
import type { AddToCartInput } from '../../../src/storage/store.js';
import {
  bearer,
  type HttpFixture,
  MCP_HEADERS,
  raw,
  rawInitialize,
  startHttpPerTest,
  waitFor,
} from '../../helpers/http.js';

const start = startHttpPerTest();

/** A GET on the session's stream: resolves with the response once its headers arrive (the body stays open). */
function openStream(url: string, headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET', headers, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function session(http: HttpFixture) {
  const token = await http.token('web');
  const id = await rawInitialize(http.url, token);
  const headers = {
    ...MCP_HEADERS,
    ...bearer(token),
    'mcp-session-id': id,
    'mcp-protocol-version': '2025-06-18',
  };
  return { id, headers };
}

describe('the GET stream, DELETE and notifications', () => {
  it('opens one GET stream per session (409 for a second, 406 without text/event-stream) and ends it on DELETE', async () => {
    const http = await start();
    const { id, headers } = await session(http);
    const streamHeaders = { ...headers, Accept: 'text/event-stream' };

    const notAcceptable = await raw(http.url, {
      method: 'GET',
      headers: { ...headers, Accept: 'application/json' },
    });
    expect(notAcceptable.status).toBe(406);

    const stream = await openStream(http.url, streamHeaders);
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream');
    expect(stream.headers['mcp-session-id']).toBe(id);
    const ended = new Promise<void>((resolve) => stream.on('close', () => resolve()).resume());

    const second = await raw(http.url, { method: 'GET', headers: streamHeaders });
    expect(second.status).toBe(409);
    expect(second.json().error?.code).toBe(-32000);

    expect((await raw(http.url, { method: 'DELETE', headers })).status).toBe(200);
    await ended;
    const after = await raw(http.url, {
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    expect(after.status).toBe(404);
    expect(after.json().error?.code).toBe(-32001);
  });

  it('accepts notifications alone with 202 and no body, and refuses an unsupported protocol version on GET and DELETE', async () => {
    const http = await start();
    const { headers } = await session(http);
    const accepted = await raw(http.url, {
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    expect(accepted.status).toBe(202);
    expect(accepted.text).toBe('');

    const old = { ...headers, 'mcp-protocol-version': '1999-01-01' };
    expect(
      (await raw(http.url, { method: 'GET', headers: { ...old, Accept: 'text/event-stream' } })).status,
    ).toBe(400);
    expect((await raw(http.url, { method: 'DELETE', headers: old })).status).toBe(400);
    // The session survived the refused DELETE.
    const ping = await raw(http.url, {
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }),
    });
    expect(ping.status).toBe(200);
  });
});

describe('the lean transport', () => {
  it('answers a call with one JSON body carrying the session id, and a batch with an array in request order', async () => {
    const http = await start();
    const { id, headers } = await session(http);
    const single = await raw(http.url, {
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'a',
        method: 'tools/call',
        params: { name: 'check_stock', arguments: { skus: ['MUG-WHT'] } },
      }),
    });
    expect(single.status).toBe(200);
    expect(single.headers['content-type']).toBe('application/json');
    expect(single.headers['mcp-session-id']).toBe(id);
    expect(single.json()).toMatchObject({ jsonrpc: '2.0', id: 'a', result: { structuredContent: {} } });

    const batch = await raw(http.url, {
      headers,
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 7, method: 'ping' },
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        { jsonrpc: '2.0', id: 5, method: 'tools/list' },
      ]),
    });
    expect(batch.status).toBe(200);
    const replies = JSON.parse(batch.text) as { id: number }[];
    expect(replies.map((reply) => reply.id)).toEqual([7, 5]);
    // Replies are routed by id, so one id twice in a batch is refused before anything runs.
    const twice = await raw(http.url, {
      headers,
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 9, method: 'ping' },
        { jsonrpc: '2.0', id: 9, method: 'tools/list' },
      ]),
    });
    expect(twice.status).toBe(400);
    expect(twice.json().error?.code).toBe(-32600);
  });

  it('answers a call still in flight when its session is deleted with 404; the call itself completes and the books balance', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let entered = 0;
    const http = await start(
      {},
      (store: SqliteStore) =>
        new Proxy(store, {
          get(target, property, receiver) {
            if (property === 'addToCart') {
              return async (ctx: { channel: string }, input: AddToCartInput) => {
                entered += 1;
                await gate;
                return target.addToCart(ctx, input);
              };
            }
            const value = Reflect.get(target, property, receiver);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
    );
    const { headers } = await session(http);
    const pending = raw(http.url, {
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'add_to_cart', arguments: { sku: 'MUG-WHT', quantity: 1 } },
      }),
    });
    await waitFor(() => entered === 1);
    expect((await raw(http.url, { method: 'DELETE', headers })).status).toBe(200);
    const answered = await pending;
    expect(answered.status).toBe(404);
    expect(answered.json().error?.code).toBe(-32001);
    open();
    // The held call still runs to its end after its session ended (its answer is lost: what idempotency keys
    // are for), and the books balance.
    await waitFor(async () => (await http.store.stockLevels(['MUG-WHT']))[0]?.reserved === 1);
    const report = await http.store.audit();
    expect(report.violations).toEqual([]);
  });
});
