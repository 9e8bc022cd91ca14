// Hostile input at the HTTP layer: raw requests and the real SDK client against serveHttp. Every
// refusal is a clear JSON error, the server stays up (/healthz 200), a refusal changes nothing
// (stock levels and the audit's row counts identical), and the audit stays clean.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { AuditReport, StockLevel } from '../../src/domain/types.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import type { SqliteStore } from '../../src/storage/sqlite/store.js';
import {
  bearer,
  call,
  firstText,
  type HttpFixture,
  healthz,
  INITIALIZE,
  MCP_HEADERS,
  type RawResponse,
  raw,
  rawInitialize,
  startHttpPerTest,
} from '../helpers/http.js';

const start = startHttpPerTest();

const TOOL_METHODS = new Set([
  'searchProducts',
  'checkStock',
  'addToCart',
  'getCart',
  'checkout',
  'releaseCart',
  'restock',
  'setStock',
  'upsertProduct',
]);

/** A store that counts the tool calls reaching it, to show that schema refusals never do. */
function counting(store: SqliteStore) {
  const calls: string[] = [];
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (typeof property === 'string' && TOOL_METHODS.has(property)) {
        return (...args: unknown[]) => {
          calls.push(property);
          return value.apply(target, args);
        };
      }
      return value.bind(target);
    },
  });
  return { proxy, calls };
}

/** A server whose store counts the tool calls reaching it; `calls()` is undefined if it never got the store. */
async function startCounting() {
  let counter: ReturnType<typeof counting> | undefined;
  const http = await start({}, (store) => {
    counter = counting(store);
    return counter.proxy;
  });
  return { http, calls: () => counter?.calls };
}

interface Snapshot {
  levels: StockLevel[];
  checked: AuditReport['checked'];
}

async function snapshot(store: SqliteStore): Promise<Snapshot> {
  return { levels: await store.stockLevels(), checked: (await store.audit()).checked };
}

async function expectAlive(http: HttpFixture): Promise<void> {
  const health = await healthz(http.url);
  expect(health.status).toBe(200);
  expect(health.body.status).toBe('ok');
}

async function expectUnchanged(http: HttpFixture, before: Snapshot, what = ''): Promise<void> {
  expect(await snapshot(http.store), what).toEqual(before);
}

async function expectAuditOk(store: SqliteStore): Promise<void> {
  const report = await store.audit();
  expect(report.violations).toEqual([]);
  expect(report.ok).toBe(true);
}

type RpcMessage = {
  jsonrpc?: string;
  id?: unknown;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
};

/** The JSON-RPC messages of a response, whether it came as JSON (one message or a batch) or as an SSE stream. */
function messages(response: RawResponse): RpcMessage[] {
  if (!String(response.headers['content-type']).startsWith('text/event-stream')) {
    const body = JSON.parse(response.text) as RpcMessage | RpcMessage[];
    return Array.isArray(body) ? body : [body];
  }
  return response.text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice(6)) as RpcMessage);
}

/** A JSON (not HTML) JSON-RPC error with this HTTP status and code. */
function expectRpcError(response: RawResponse, status: number, code: number, message?: RegExp): void {
  expect(response.status, response.text).toBe(status);
  expect(response.headers['content-type']).toMatch(/application\/json/);
  const body = response.json();
  expect(body).toMatchObject({ jsonrpc: '2.0', error: { code }, id: null });
  if (message) expect(body.error?.message).toMatch(message);
}

/** A session opened by hand with a customer token, and POSTs on it. */
async function rawSession(http: HttpFixture) {
  const token = await http.token('web');
  const id = await rawInitialize(http.url, token);
  const headers: Record<string, string> = {
    ...MCP_HEADERS,
    ...bearer(token),
    'mcp-session-id': id,
    'mcp-protocol-version': '2025-06-18',
  };
  return {
    headers,
    post: (body: string | Buffer, extra: Record<string, string | undefined> = {}) => {
      const merged: Record<string, string> = { ...headers };
      for (const [name, value] of Object.entries(extra)) {
        if (value === undefined) delete merged[name];
        else merged[name] = value;
      }
      return raw(http.url, { headers: merged, body });
    },
  };
}

const rpc = (method: string, params?: unknown, id: unknown = 1) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
const toolCall = (name: string, args: unknown, id: unknown = 1) =>
  rpc('tools/call', { name, arguments: args }, id);

describe('bodies: size, JSON and content type', () => {
  it('refuses an over-large body on a live session (declared, chunked or gzip-inflated) with 413, and the session goes on', async () => {
    const http = await start();
    const session = await rawSession(http);
    const before = await snapshot(http.store);
    const padded = (bytes: number) =>
      toolCall('add_to_cart', { sku: 'MUG-WHT', quantity: 1, idempotency_key: 'x'.repeat(bytes) });

    expectRpcError(await session.post(padded(1_100_000)), 413, -32000, /too large/);
    // No Content-Length: the limit still holds while the body streams in.
    expectRpcError(await session.post(padded(3_000_000), { 'Transfer-Encoding': 'chunked' }), 413, -32000);
    // 48 KB of gzip that inflates to 50 MB: the limit applies to the inflated body.
    const bomb = gzipSync(Buffer.from(padded(50_000_000)));
    expect(bomb.length).toBeLessThan(100_000);
    expectRpcError(await session.post(bomb, { 'Content-Encoding': 'gzip' }), 413, -32000);
    // A header block over Node's 16 KB limit never reaches the app.
    expect((await session.post(rpc('ping'), { 'X-Pad': 'y'.repeat(20_000) })).status).toBe(431);

    await expectAlive(http);
    await expectUnchanged(http, before);
    const fine = messages(await session.post(toolCall('check_stock', { skus: ['MUG-WHT'] })));
    expect(fine[0]?.result?.isError).toBeUndefined();
    await expectAuditOk(http.store);
  });

  it('answers every kind of malformed JSON with 400 -32700 JSON, never HTML', async () => {
    const http = await start();
    const session = await rawSession(http);
    const before = await snapshot(http.store);
    const bodies = [
      '{"jsonrpc": "2.0", "id": 1, "method": ',
      '{"jsonrpc": "2.0", "id": 1, "method": "ping",}',
      "{'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}",
      '{"jsonrpc": "2.0", "id": NaN, "method": "ping"}',
      '{"jsonrpc": "2.0", "id": 1, "method": "ping"} // comment',
      '{"jsonrpc": "2.0", "id": 1, "method": "ping"}{"jsonrpc": "2.0", "id": 2, "method": "ping"}',
      'undefined',
      '',
      '   ',
      // Valid JSON that is not a JSON-RPC message.
      '"ping"',
      '42',
      'null',
      '{}',
      '{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
      '{"jsonrpc": "2.0", "id": {"nested": true}, "method": "ping"}',
      '{"jsonrpc": "2.0", "id": 1, "method": 42}',
      '[1, 2, 3]',
    ];
    for (const body of bodies) {
      const response = await session.post(body);
      expect(response.status, body).toBe(400);
      expect(response.headers['content-type'], body).toMatch(/application\/json/);
      expect(response.json().error?.code, body).toBe(-32700);
      await expectAlive(http);
    }
    // Gzip that is not gzip.
    const notGzip = await session.post(rpc('ping'), { 'Content-Encoding': 'gzip' });
    expect(notGzip.status).toBe(400);
    expect(notGzip.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
    await expectUnchanged(http, before);
    await expectAuditOk(http.store);
  });

  it('refuses wrong content types and encodings with 415 JSON, with and without a session', async () => {
    const http = await start();
    const session = await rawSession(http);
    const before = await snapshot(http.store);
    const body = toolCall('add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/vnd.api+json',
      'text/plain; a=application/json',
      'application/json; charset=latin1',
      undefined,
    ]) {
      const onSession = await session.post(body, { 'Content-Type': type });
      expectRpcError(onSession, 415, -32000, /Media Type/);
      const initialize = await session.post(INITIALIZE, {
        'Content-Type': type,
        'mcp-session-id': undefined,
      });
      expectRpcError(initialize, 415, -32000, /Media Type/);
    }
    expectRpcError(await session.post(body, { 'Content-Encoding': 'compress' }), 415, -32000, /UTF-8/);
    // Declared UTF-16, sent UTF-8: decodes to garbage, so a parse error.
    expectRpcError(
      await session.post(body, { 'Content-Type': 'application/json; charset=utf-16' }),
      400,
      -32700,
    );
    // Without text/event-stream in Accept: 406.
    expectRpcError(await session.post(body, { Accept: 'application/json' }), 406, -32000);
    await expectAlive(http);
    await expectUnchanged(http, before);
    await expectAuditOk(http.store);
  });
});

describe('JSON-RPC shapes', () => {
  it('answers unknown methods with -32601 and a tools/call without a name with a JSON-RPC error', async () => {
    const http = await start();
    const session = await rawSession(http);
    const before = await snapshot(http.store);
    // Capabilities stocklock does not declare are unknown methods too; so are prototype names.
    for (const method of [
      'shop/steal',
      'resources/subscribe',
      'prompts/get',
      'tools/delete',
      '__proto__',
      'constructor',
    ]) {
      const [answer] = messages(await session.post(rpc(method, {}, 7)));
      expect(answer, method).toMatchObject({ id: 7, error: { code: -32601 } });
      await expectAlive(http);
    }
    // An unknown notification is accepted and ignored, as JSON-RPC requires.
    expect(
      (await session.post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/steal' }))).status,
    ).toBe(202);

    // SDK 1.x answers schema-invalid params with -32603 (not -32602) naming the field.
    for (const params of [{ arguments: {} }, { name: 42, arguments: {} }, undefined]) {
      const [answer] = messages(await session.post(rpc('tools/call', params, 8)));
      expect(answer?.id).toBe(8);
      expect([-32602, -32603]).toContain(answer?.error?.code);
      expect(answer?.error?.message).toMatch(params ? /name/ : /params/);
      await expectAlive(http);
    }
    await expectUnchanged(http, before);
    await expectAuditOk(http.store);
  });

  it('refuses tool names that are not tools, prototype names included, with JSON-RPC -32602', async () => {
    const { http, calls } = await startCounting();
    const client = await http.connect(await http.token('web'));
    const before = await snapshot(http.store);
    for (const name of ['restock', 'set_stock', 'drop_table', '__proto__', 'constructor', 'toString', '']) {
      await expect(call(client, name, {}), name).rejects.toMatchObject({
        code: -32602,
        message: expect.stringMatching(/not found|disabled/),
      });
    }
    expect(calls()).toEqual([]);
    await expectAlive(http);
    await expectUnchanged(http, before);
  });

  it('does not let "__proto__" in arguments pollute prototypes or smuggle fields past the schema', async () => {
    const http = await start();
    const session = await rawSession(http);
    const before = await snapshot(http.store);
    const body =
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_products","arguments":' +
      '{"__proto__":{"polluted":true,"limit":500},"constructor":{"prototype":{"polluted":true}},"query":"mug"}}}';
    const [answer] = messages(await session.post(body));
    // "constructor" is an unknown field of a strict schema: refused; nothing leaked into Object.prototype.
    expect(answer?.result?.isError).toBe(true);
    expect(JSON.stringify(answer?.result)).toMatch(/INVALID_INPUT/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');

    // A "__proto__" member is dropped on the way in: its fields neither apply nor fill required ones.
    const viaProto = (name: string, args: string) =>
      `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"${name}","arguments":${args}}}`;
    const [search] = messages(
      await session.post(viaProto('search_products', '{"__proto__":{"limit":1},"query":""}')),
    );
    expect(search?.result?.isError).toBeUndefined();
    expect(search?.result?.structuredContent).toMatchObject({ products: expect.any(Array) });
    expect((search?.result?.structuredContent as { products: unknown[] } | undefined)?.products).toHaveLength(
      4,
    );
    const [add] = messages(
      await session.post(viaProto('add_to_cart', '{"__proto__":{"sku":"MUG-WHT","quantity":1}}')),
    );
    expect(add?.result?.isError).toBe(true);
    expect(JSON.stringify(add?.result)).toMatch(/INVALID_INPUT: .*sku: .*received undefined/);
    expect(({} as Record<string, unknown>).limit).toBeUndefined();
    await expectAlive(http);
    await expectUnchanged(http, before);
  });

  it('still answers JSON-RPC batches (SDK 1.x keeps them for 2025-03-26 clients) but caps them at 100 and never with initialize', async () => {
    const http = await start();
    const token = await http.token('web');
    const session = await rawSession(http);
    const before = await snapshot(http.store);

    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'ping' },
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'check_stock', arguments: { skus: ['MUG-WHT'] } },
      },
      { jsonrpc: '2.0', id: 3, method: 'shop/steal' },
    ]);
    const answered = messages(await session.post(batch));
    expect(answered.map((message) => message.id).sort()).toEqual([1, 2, 3]);
    expect(answered.find((message) => message.id === 3)?.error?.code).toBe(-32601);

    const tooMany = JSON.stringify(
      Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' })),
    );
    expectRpcError(await session.post(tooMany), 400, -32600, /100/);
    // Initialize inside a batch: refused on a session, and refused without one.
    expectRpcError(await session.post(`[${INITIALIZE}]`), 400, -32600);
    expectRpcError(
      await raw(http.url, { headers: { ...MCP_HEADERS, ...bearer(token) }, body: `[${INITIALIZE}]` }),
      400,
      -32000,
      /initialize/,
    );
    // An empty batch does nothing.
    expect([202, 400]).toContain((await session.post('[]')).status);
    await expectAlive(http);
    await expectUnchanged(http, before);
    await expectAuditOk(http.store);
  });

  it('refuses garbage session ids and protocol versions', async () => {
    const http = await start();
    const session = await rawSession(http);
    for (const id of ['../../etc/passwd', "' OR 1=1 --", 'x'.repeat(5_000)]) {
      expectRpcError(await session.post(rpc('ping'), { 'mcp-session-id': id }), 404, -32001);
    }
    expectRpcError(await session.post(rpc('ping'), { 'mcp-protocol-version': '1999-01-01' }), 400, -32000);
    expectRpcError(await session.post(rpc('ping'), { 'mcp-protocol-version': '../../etc' }), 400, -32000);
    await expectAlive(http);
  });
});

describe('huge and deep arguments', () => {
  it('refuses check_stock with 100,000 SKUs cheaply, before the store (413 over the 64 KB body limit, else INVALID_INPUT)', async () => {
    const { http, calls } = await startCounting();
    const client = await http.connect(await http.token('web'));
    const before = await snapshot(http.store);

    const short = Array.from({ length: 100_000 }, (_, i) => `S${i}`); // ~790 KB: over the body limit
    await expect(call(client, 'check_stock', { skus: short })).rejects.toMatchObject({ code: 413 });
    const refused = await call(client, 'check_stock', { skus: short.slice(0, 1_001) }); // ~8 KB
    expect(refused.isError).toBe(true);
    expect(firstText(refused)).toMatch(/^INVALID_INPUT: .*more than the maximum of 1000 elements/);

    // 101 SKUs: the schema's own cap, naming the field.
    const overCap = await call(client, 'check_stock', { skus: short.slice(0, 101) });
    expect(firstText(overCap)).toMatch(/^INVALID_INPUT: .*skus: at most 100 SKUs/);
    // A 60 KB string in a 200-character field: refused without echoing it back.
    const longQuery = await call(client, 'search_products', { query: 'q'.repeat(60_000) });
    expect(firstText(longQuery)).toMatch(/^INVALID_INPUT: .*query: is at most 200 characters/);
    expect(JSON.stringify(longQuery).length).toBeLessThan(2_000);

    expect(calls()).toEqual([]);
    await expectAlive(http);
    await expectUnchanged(http, before);
    // The same client works afterwards.
    expect((await call(client, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
  });

  it('refuses nesting deeper than 32 levels before parsing, in arguments, _meta, params and initialize', async () => {
    const http = await start();
    const token = await http.token('web');
    const session = await rawSession(http);
    const before = await snapshot(http.store);
    const deepObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const callWith = (args: string, meta = '{}') =>
      `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"check_stock","arguments":${args},"_meta":${meta}}}`;
    const tooDeep = /nested deeper than 32 levels/;

    for (const args of [
      deepObject(10_000),
      `{"skus":${deepArray(10_000)}}`,
      `{"skus":["MUG-WHT"],"extra":${deepObject(10_000)}}`,
    ]) {
      expectRpcError(await session.post(callWith(args)), 400, -32600, tooDeep);
      await expectAlive(http);
    }
    // 300,000 levels is over the body limit before its depth is looked at.
    expectRpcError(await session.post(callWith(`{"skus":${deepArray(300_000)}}`)), 413, -32000);
    // Deep _meta and the deep params of another method are refused alike; so is a body that is one deep array.
    expectRpcError(
      await session.post(callWith('{"skus":["MUG-WHT"]}', deepObject(10_000))),
      400,
      -32600,
      tooDeep,
    );
    expectRpcError(
      await session.post(`{"jsonrpc":"2.0","id":6,"method":"ping","params":${deepObject(10_000)}}`),
      400,
      -32600,
      tooDeep,
    );
    expectRpcError(await session.post(deepArray(30_000)), 400, -32600, tooDeep);
    // Strings are not nesting: brackets inside one count for nothing.
    const [quoted] = messages(await session.post(callWith(`{"skus":["${'['.repeat(1_000)}"]}`)));
    expect(quoted?.id).toBe(5);
    // A deep initialize opens no session.
    const initialize = await raw(http.url, {
      headers: { ...MCP_HEADERS, ...bearer(token) },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: { experimental: { x: 0 } },
          clientInfo: { name: 'deep', version: '0' },
        },
      }).replace('{"x":0}', deepObject(10_000)),
    });
    expectRpcError(initialize, 400, -32600, tooDeep);
    await expectAlive(http);
    await expectUnchanged(http, before);
    await expectAuditOk(http.store);
  });
});

// Strings no store can keep exactly: PostgreSQL refuses NUL, and both stores turn an unpaired
// surrogate into U+FFFD. Every string field refuses them with INVALID_INPUT.
const UNSTORABLE: Record<string, string> = {
  nul: 'a\u0000b',
  'only nul': '\u0000',
  'lone high surrogate': 'x\uD800y',
  'lone low surrogate': '\uDFFFz',
  'reversed pair': '\uDC00\uD800',
};

// Strings that are valid text: identifiers refuse them clearly, free text stores them exactly.
const HOSTILE_TEXT: Record<string, string> = {
  'RTL override': 'safe\u202Etxt.exe\u202C',
  emoji: '😀 shirt 👩‍👩‍👧 ✓',
  'control characters': 'tab\there\nnew\r\u0007bell\u001b[31mred\u007f',
  'SQL quote': "' OR 1=1 --",
  'SQL drop': '"; DROP TABLE products; --',
  'path traversal': '../../etc/passwd',
  'windows path': '..\\..\\windows\\system32',
  'LIKE wildcards': '100%_off\\',
  'combining, BOM, noncharacter, line separator': 'e\u0301 \uFEFF\uFFFF\u2028x',
};

describe('unicode, control characters, SQL and path fragments in every string field', () => {
  it('refuses NUL and unpaired surrogates in every string field with INVALID_INPUT naming it, before the store', async () => {
    const { http, calls } = await startCounting();
    const customer = await http.connect(await http.token('web'));
    const admin = await http.connect(await http.token('ops', true));
    const before = await snapshot(http.store);

    for (const [label, text] of Object.entries(UNSTORABLE)) {
      const cases: [typeof customer, string, Record<string, unknown>, string][] = [
        [customer, 'search_products', { query: text }, 'query'],
        [customer, 'check_stock', { skus: [text] }, 'skus[0]'],
        [customer, 'add_to_cart', { sku: text, quantity: 1 }, 'sku'],
        [customer, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1, cart_id: text }, 'cart_id'],
        [customer, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1, idempotency_key: text }, 'idempotency_key'],
        [customer, 'get_cart', { cart_id: text }, 'cart_id'],
        [customer, 'checkout', { cart_id: text }, 'cart_id'],
        [customer, 'checkout', { cart_id: 'cart_x', idempotency_key: text }, 'idempotency_key'],
        [customer, 'release_cart', { cart_id: text }, 'cart_id'],
        [customer, 'release_cart', { cart_id: 'cart_x', sku: text }, 'sku'],
        [admin, 'restock', { sku: text, quantity: 1 }, 'sku'],
        [admin, 'restock', { sku: 'MUG-WHT', quantity: 1, note: text }, 'note'],
        [admin, 'set_stock', { sku: 'MUG-WHT', quantity: 60, note: text }, 'note'],
        [admin, 'upsert_product', { sku: text, name: 'n', price_minor: 1, currency: 'EUR' }, 'sku'],
        [admin, 'upsert_product', { sku: 'NEW-1', name: text, price_minor: 1, currency: 'EUR' }, 'name'],
        [
          admin,
          'upsert_product',
          { sku: 'NEW-1', name: 'n', description: text, price_minor: 1, currency: 'EUR' },
          'description',
        ],
      ];
      for (const [client, tool, args, field] of cases) {
        const what = `${label} in ${tool}.${field}`;
        const result = await call(client, tool, args);
        expect(result.isError, what).toBe(true);
        expect(firstText(result), what).toMatch(
          new RegExp(`^INVALID_INPUT: .*${field.replace(/[[\].]/g, '\\$&')}: `),
        );
        expect(result.structuredContent, what).toBeUndefined();
        await expectAlive(http);
      }
    }
    expect(calls()).toEqual([]);
    await expectUnchanged(http, before);
    await expectAuditOk(http.store);
  });

  it('refuses hostile text as a SKU or cart id with a clear error and changes nothing', async () => {
    const http = await start();
    const customer = await http.connect(await http.token('web'));
    const admin = await http.connect(await http.token('ops', true));
    const before = await snapshot(http.store);

    for (const [label, text] of Object.entries(HOSTILE_TEXT)) {
      const skuCases: [typeof customer, string, Record<string, unknown>][] = [
        [customer, 'check_stock', { skus: [text] }],
        [customer, 'add_to_cart', { sku: text, quantity: 1 }],
        [customer, 'release_cart', { cart_id: 'cart_x', sku: text }],
        [admin, 'restock', { sku: text, quantity: 1 }],
        [admin, 'set_stock', { sku: text, quantity: 1 }],
        [admin, 'upsert_product', { sku: text, name: 'n', price_minor: 1, currency: 'EUR' }],
      ];
      for (const [client, tool, args] of skuCases) {
        const result = await call(client, tool, args);
        expect(result.isError, `${label} as ${tool} sku`).toBe(true);
        expect(firstText(result)).toMatch(/^INVALID_INPUT: .*sku.*: may use only A-Z a-z 0-9 \. _ -/);
      }
      const cartCases: [string, Record<string, unknown>][] = [
        ['get_cart', { cart_id: text }],
        ['checkout', { cart_id: text, idempotency_key: 'k' }],
        ['release_cart', { cart_id: text }],
        ['add_to_cart', { cart_id: text, sku: 'MUG-WHT', quantity: 1 }],
      ];
      for (const [tool, args] of cartCases) {
        const result = await call(customer, tool, args);
        expect(result.isError, `${label} as ${tool} cart_id`).toBe(true);
        expect(firstText(result)).toMatch(/^CART_NOT_FOUND: /);
        expect(JSON.parse((result.content[1] as { text: string }).text)).toMatchObject({
          code: 'CART_NOT_FOUND',
          cart_id: text,
        });
      }
      await expectAlive(http);
      await expectUnchanged(http, before, label);
    }
    // The tables the SQL fragments name are all still there.
    expect((await http.store.stockLevels()).map((level) => level.sku).sort()).toEqual(
      before.levels.map((level) => level.sku).sort(),
    );
    await expectAuditOk(http.store);
  });

  it('stores hostile free text exactly: query, name, description, note and idempotency_key', async () => {
    const http = await start();
    const customer = await http.connect(await http.token('web'));
    const admin = await http.connect(await http.token('ops', true));
    const db = new Database(http.dbPath, { readonly: true, fileMustExist: true });
    try {
      let index = 0;
      for (const [label, text] of Object.entries(HOSTILE_TEXT)) {
        index += 1;
        const sku = `HOSTILE-${index}`;

        // query: a plain search finds none of the catalog; nothing breaks out of LIKE.
        const before = await snapshot(http.store);
        const none = await call(customer, 'search_products', { query: text });
        expect(none.isError, label).toBeFalsy();
        expect(none.structuredContent, label).toEqual({ products: [] });
        await expectUnchanged(http, before, label);

        // name and description: saved and returned exactly, and found by that very text.
        const saved = await call(admin, 'upsert_product', {
          sku,
          name: text,
          description: `${text} / description`,
          price_minor: 100,
          currency: 'EUR',
          track_stock: false,
        });
        expect(saved.isError, `${label}: ${firstText(saved)}`).toBeFalsy();
        expect(saved.structuredContent).toMatchObject({
          sku,
          name: text,
          description: `${text} / description`,
        });
        const found = await call(customer, 'search_products', { query: text, limit: 50 });
        const products = (found.structuredContent as { products: { sku: string; name: string }[] }).products;
        expect(
          products.map((product) => product.sku),
          label,
        ).toEqual([sku]);
        expect(products[0]?.name).toBe(text);
        const stock = await call(customer, 'check_stock', { skus: [sku] });
        expect(stock.structuredContent).toMatchObject({ products: [{ sku, name: text }], unknown_skus: [] });

        // note: in the ledger exactly as sent.
        const restocked = await call(admin, 'restock', { sku: 'MUG-WHT', quantity: 1, note: text });
        expect(restocked.isError, label).toBeFalsy();
        const counted = await call(admin, 'set_stock', { sku: 'MUG-WHT', quantity: 60, note: `${text}!` });
        expect(counted.isError, label).toBeFalsy();
        const notes = db.prepare('SELECT note FROM stock_movements ORDER BY id DESC LIMIT 2').all() as {
          note: string;
        }[];
        expect(notes.map((row) => row.note)).toEqual([`${text}!`, text]);

        // idempotency_key: a replay with the same key returns the same cart and reserves once.
        const key = `${text}#${index}`;
        const first = await call(customer, 'add_to_cart', {
          sku: 'LAST-FIVE',
          quantity: 1,
          idempotency_key: key,
        });
        expect(first.isError, `${label}: ${firstText(first)}`).toBeFalsy();
        const cartId = (first.structuredContent as { cart_id: string }).cart_id;
        const reserved = (await http.store.stockLevels(['LAST-FIVE']))[0]?.reserved;
        const again = await call(customer, 'add_to_cart', {
          sku: 'LAST-FIVE',
          quantity: 1,
          idempotency_key: key,
        });
        expect((again.structuredContent as { cart_id: string }).cart_id).toBe(cartId);
        expect((await http.store.stockLevels(['LAST-FIVE']))[0]?.reserved).toBe(reserved);
        const keys = db.prepare('SELECT key FROM idempotency_records WHERE key = ?').all(key) as {
          key: string;
        }[];
        expect(keys).toEqual([{ key }]);
        const released = await call(customer, 'release_cart', { cart_id: cartId });
        expect(released.isError).toBeFalsy();

        // checkout's idempotency_key too: a retry returns the same order.
        const cart = await call(customer, 'add_to_cart', { sku, quantity: 1 });
        const cartToBuy = (cart.structuredContent as { cart_id: string }).cart_id;
        const order = await call(customer, 'checkout', { cart_id: cartToBuy, idempotency_key: key });
        expect(order.isError, `${label}: ${firstText(order)}`).toBeFalsy();
        const retry = await call(customer, 'checkout', { cart_id: cartToBuy, idempotency_key: key });
        expect(retry.structuredContent).toEqual(order.structuredContent);

        await expectAlive(http);
      }
    } finally {
      db.close();
    }
    await expectAuditOk(http.store);
  });
});
