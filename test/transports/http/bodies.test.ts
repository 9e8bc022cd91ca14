// Refused bodies are read by every common client as a status: Node's fetch, curl and the SDK client get the 413 or
// 400, not a broken pipe; the limit is 64 KB by default; nesting and member count are bounded before parsing.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  bearer,
  call,
  firstText,
  healthz,
  MCP_HEADERS,
  raw,
  rawInitialize,
  startHttpPerTest,
} from '../../helpers/http.js';
import { tempDir } from '../../helpers/temp.js';

const start = startHttpPerTest();
const run = promisify(execFile);

/** An initialize padded to `bytes`: refused for its size before anything looks at it. */
const padded = (bytes: number) =>
  JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { pad: 'x'.repeat(bytes) } });

describe('refused bodies reach the client as a status', () => {
  it("answers an 8 MB POST from Node's fetch with a 413 it can read, declared or streamed", async () => {
    const http = await start();
    const headers = { ...MCP_HEADERS, ...bearer(await http.token('web')) };
    const body = padded(8 * 1024 * 1024);

    const declared = await fetch(http.url, { method: 'POST', headers, body });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 }, id: null });

    // Chunked: no Content-Length, so the limit is found while the body streams in.
    const bytes = new TextEncoder().encode(body);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 64 * 1024)
          controller.enqueue(bytes.subarray(at, at + 64 * 1024));
        controller.close();
      },
    });
    const streamed = await fetch(http.url, {
      method: 'POST',
      headers,
      body: stream,
      duplex: 'half',
    } as RequestInit & { duplex: 'half' });
    expect(streamed.status).toBe(413);
    expect((await streamed.json()).error?.message).toMatch(/at most 65536 bytes/);
    expect((await healthz(http.url)).status).toBe(200);
  });

  it('answers curl with the 413 and its JSON body', async () => {
    const http = await start();
    const dir = tempDir();
    try {
      const file = join(dir.dir, 'body.json');
      writeFileSync(file, padded(8 * 1024 * 1024));
      const { stdout } = await run('curl', [
        '-sS',
        '-w',
        '\n%{http_code}',
        '-H',
        'Content-Type: application/json',
        '-H',
        'Accept: application/json, text/event-stream',
        '-H',
        `Authorization: Bearer ${await http.token('web')}`,
        '--data-binary',
        `@${file}`,
        http.url,
      ]);
      const [text, status] = stdout.split('\n');
      expect(status).toBe('413');
      expect(JSON.parse(text as string)).toMatchObject({ error: { code: -32000 } });
    } finally {
      dir.remove();
    }
  });

  it("gives the SDK client a 413 it reports as such, and the client's session goes on", async () => {
    const http = await start();
    const client = await http.connect(await http.token('web'));
    await expect(call(client, 'search_products', { query: 'q'.repeat(2_000_000) })).rejects.toMatchObject({
      code: 413,
    });
    const after = await call(client, 'search_products', { query: 'mug' });
    expect(after.isError, firstText(after)).toBeFalsy();
  });
});

describe('the body limit and shape', () => {
  it('takes 64 KB by default and refuses a byte more; --max-body (maxBodyBytes) moves it', async () => {
    const http = await start();
    const headers = { ...MCP_HEADERS, ...bearer(await http.token('web')) };
    const exact = (size: number) => {
      const body = padded(0);
      return padded(size - body.length);
    };
    // At the limit the body is read and served (an initialize with an extra params field opens a session).
    expect((await raw(http.url, { headers, body: exact(64 * 1024) })).status).not.toBe(413);
    expect((await raw(http.url, { headers, body: exact(64 * 1024 + 1) })).status).toBe(413);

    const roomy = await start({ maxBodyBytes: 256 * 1024 });
    const roomyHeaders = { ...MCP_HEADERS, ...bearer(await roomy.token('web')) };
    expect((await raw(roomy.url, { headers: roomyHeaders, body: exact(200 * 1024) })).status).not.toBe(413);
  });

  it('refuses more than 2,048 object members before parsing, with 400 -32600', async () => {
    const http = await start();
    const token = await http.token('web');
    const session = await rawInitialize(http.url, token);
    const headers = {
      ...MCP_HEADERS,
      ...bearer(token),
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-06-18',
    };
    const members = (count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 0]));
    const withMeta = (count: number) =>
      JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping', params: { _meta: members(count) } });
    const refused = await raw(http.url, { headers, body: withMeta(3_000) });
    expect(refused.status).toBe(400);
    expect(refused.json()).toMatchObject({ error: { code: -32600 } });
    expect(refused.json().error?.message).toMatch(/more than 2048 object members/);
    // A body within the bound is served.
    expect((await raw(http.url, { headers, body: withMeta(1_000) })).status).toBe(200);
  });
});
