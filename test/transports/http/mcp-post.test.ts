// POST /mcp has one path (src/transports/http/mcp-post.ts): each request below goes once to /mcp and once to
// /mcp/ on the same live session, gets the status its shape calls for, and the same answer on both.
import { describe, expect, it } from 'vitest';
import {
  bearer,
  MCP_HEADERS,
  type RawResponse,
  raw,
  rawInitialize,
  startHttpPerTest,
} from '../../helpers/http.js';

const start = startHttpPerTest();

const ping = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });

interface Case {
  name: string;
  body: string | Buffer;
  headers?: Record<string, string | undefined>;
  expectStatus: number;
}

const CASES: Case[] = [
  { name: 'a ping', body: ping(1), expectStatus: 200 },
  {
    name: 'a tool call',
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'check_stock', arguments: { skus: ['MUG-RED'] } },
    }),
    expectStatus: 200,
  },
  {
    name: 'charset=utf-8',
    body: ping(3),
    headers: { 'Content-Type': 'application/json; charset=UTF-8' },
    expectStatus: 200,
  },
  { name: 'a byte order mark and leading whitespace', body: `\uFEFF \n\t${ping(4)}`, expectStatus: 200 },
  { name: 'a chunked body', body: ping(5), headers: { 'Transfer-Encoding': 'chunked' }, expectStatus: 200 },
  { name: 'a JSON number (strict JSON wants an object or array)', body: '42', expectStatus: 400 },
  { name: 'a JSON string', body: ' "ping"', expectStatus: 400 },
  { name: 'malformed JSON', body: '{"jsonrpc": "2.0", ', expectStatus: 400 },
  { name: 'invalid UTF-8', body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), expectStatus: 400 },
  { name: 'an empty body', body: '', expectStatus: 400 },
  { name: 'an empty object', body: '{}', expectStatus: 400 },
  {
    name: 'gzip that is not gzip',
    body: ping(13),
    headers: { 'Content-Encoding': 'gzip' },
    expectStatus: 400,
  },
  {
    name: 'an unknown encoding',
    body: ping(14),
    headers: { 'Content-Encoding': 'compress' },
    expectStatus: 415,
  },
  {
    name: 'a charset that is not UTF',
    body: ping(15),
    headers: { 'Content-Type': 'application/json; charset=latin1' },
    expectStatus: 415,
  },
  { name: 'not JSON', body: ping(16), headers: { 'Content-Type': 'text/plain' }, expectStatus: 415 },
  { name: 'a declared body over the limit', body: `{"pad":"${'x'.repeat(5000)}"}`, expectStatus: 413 },
  {
    name: 'a chunked body over the limit',
    body: `{"pad":"${'x'.repeat(5000)}"}`,
    headers: { 'Transfer-Encoding': 'chunked' },
    expectStatus: 413,
  },
  { name: 'no token', body: ping(6), headers: { Authorization: undefined }, expectStatus: 401 },
  { name: 'an unknown token', body: ping(7), headers: { Authorization: 'Bearer nope' }, expectStatus: 401 },
  { name: 'a foreign Host', body: ping(8), headers: { Host: 'evil.example:80' }, expectStatus: 403 },
  { name: 'a foreign Origin', body: ping(9), headers: { Origin: 'https://evil.example' }, expectStatus: 403 },
  {
    name: 'an unknown session',
    body: ping(10),
    headers: { 'mcp-session-id': 'not-a-session' },
    expectStatus: 404,
  },
  { name: 'no Accept for SSE', body: ping(11), headers: { Accept: 'application/json' }, expectStatus: 406 },
  {
    name: 'an unsupported protocol version',
    body: ping(12),
    headers: { 'mcp-protocol-version': '1999-01-01' },
    expectStatus: 400,
  },
];

/** What a client acts on: status, body and these headers. */
function visible(response: RawResponse) {
  const { headers } = response;
  return {
    status: response.status,
    body: response.text === '' ? '' : response.json(),
    contentType: headers['content-type'],
    authenticate: headers['www-authenticate'],
    connection: headers.connection,
    session: headers['mcp-session-id'],
  };
}

describe('POST /mcp', () => {
  it('answers every shape of request with its status, on /mcp and /mcp/ alike', async () => {
    const http = await start({ maxBodyBytes: 1000 });
    const token = await http.token('web');
    const session = await rawInitialize(http.url, token);
    const base: Record<string, string> = {
      ...MCP_HEADERS,
      ...bearer(token),
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-06-18',
    };
    for (const testCase of CASES) {
      const headers: Record<string, string> = { ...base };
      for (const [name, value] of Object.entries(testCase.headers ?? {})) {
        if (value === undefined) delete headers[name];
        else headers[name] = value;
      }
      const plain = await raw(http.url, { headers, body: testCase.body });
      const slash = await raw(http.url, { path: '/mcp/', headers, body: testCase.body });
      expect(plain.status, `${testCase.name}: ${plain.text}`).toBe(testCase.expectStatus);
      expect(visible(plain), testCase.name).toEqual(visible(slash));
    }
  });
});
