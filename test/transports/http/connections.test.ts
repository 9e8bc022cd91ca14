// Slow clients and the connection cap: a sender trickling its headers or its body is cut off at the configured
// timeout, and connections past the cap are closed at once; the server goes on serving.
import { connect as netConnect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { healthz, startHttpPerTest, waitFor } from '../../helpers/http.js';

const start = startHttpPerTest();

interface Watched {
  socket: Socket;
  received: () => string;
  closed: () => boolean;
}

async function open(port: number): Promise<Watched> {
  const socket = netConnect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  let received = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('utf8');
  });
  socket.on('error', () => undefined);
  socket.once('close', () => {
    closed = true;
  });
  return { socket, received: () => received, closed: () => closed };
}

/** Sends `text` a byte at a time, one every `everyMs`, until it is all sent or the server has closed the socket. */
async function trickle(watched: Watched, text: string, everyMs = 20): Promise<number> {
  let sent = 0;
  while (sent < text.length && !watched.closed()) {
    watched.socket.write(text[sent] as string);
    sent += 1;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return sent;
}

describe('slow clients', () => {
  it('closes a connection that trickles its headers once the headers timeout has passed (408)', async () => {
    const http = await start({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const slow = await open(http.port);
    // Far more header than the timeout leaves time for: the server must hang up before it is all sent.
    const headers = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${http.port}\r\nX-Pad: ${'y'.repeat(500)}\r\n\r\n`;
    const sent = await trickle(slow, headers);
    await waitFor(slow.closed, 10_000);
    expect(sent).toBeLessThan(headers.length);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408/);
    expect((await healthz(http.url)).status).toBe(200);
  });

  it('closes a connection that trickles its body once the request timeout has passed (408)', async () => {
    const http = await start({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const token = await http.token('web');
    const slow = await open(http.port);
    const body = `{"pad":"${'x'.repeat(500)}"}`;
    slow.socket.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${http.port}\r\nContent-Type: application/json\r\n` +
        `Accept: application/json, text/event-stream\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Length: ${body.length}\r\n\r\n`,
    );
    const sent = await trickle(slow, body);
    await waitFor(slow.closed, 10_000);
    expect(sent).toBeLessThan(body.length);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408/);
    expect((await healthz(http.url)).status).toBe(200);
  });
});

describe('the connection cap', () => {
  it('closes connections past maxConnections at once, and takes new ones when one ends', async () => {
    const http = await start({ maxConnections: 3 });
    const held = [await open(http.port), await open(http.port), await open(http.port)];
    // Each of the three is served (a request on it answers), so the server counts them all.
    for (const connection of held) {
      connection.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${http.port}\r\n\r\n`);
      await waitFor(() => /\r\n\r\n\{.*\}$/s.test(connection.received()));
    }
    const extra = await open(http.port);
    await waitFor(extra.closed, 10_000);
    expect(extra.received()).toBe('');

    held[0]?.socket.destroy();
    await waitFor(async () => (await healthz(http.url).catch(() => undefined))?.status === 200, 10_000);
    for (const connection of held) connection.socket.destroy();
  });
});
