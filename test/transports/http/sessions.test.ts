// Session caps: a flood of initializes from one credential, or from many grants of one party, costs that party its
// own sessions, never another's.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/domain/clock.js';
import {
  bearer,
  call,
  healthz,
  MCP_HEADERS,
  raw,
  rawInitialize,
  startHttpPerTest,
} from '../../helpers/http.js';
import { grantByHand } from '../../helpers/oauth.js';

const start = startHttpPerTest();

/** A ping on a session: 200 while it lives, 404 once it is gone. */
async function ping(url: string, token: string, session: string): Promise<number> {
  const answer = await raw(url, {
    headers: {
      ...MCP_HEADERS,
      ...bearer(token),
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  return answer.status;
}

/** `count` initializes from one token, `parallel` at a time; every one must open a session. */
async function flood(url: string, token: string, count: number, parallel = 25): Promise<string[]> {
  const ids: string[] = [];
  for (let sent = 0; sent < count; sent += parallel) {
    const batch = Math.min(parallel, count - sent);
    ids.push(...(await Promise.all(Array.from({ length: batch }, () => rawInitialize(url, token)))));
  }
  return ids;
}

describe('session caps', () => {
  it("keeps another credential's session through 1,000 initializes from one token (per-credential cap)", async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ maxSessions: 50, maxSessionsPerCredential: 10, clock });
    const honest = await http.connect(await http.token('web'));
    expect((await call(honest, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
    // The honest session is the longest idle of all from here on.
    clock.advance(60_000);

    const ids = await flood(http.url, await http.token('telegram'), 1_000);
    expect(new Set(ids).size).toBe(1_000);
    // The flooding token holds its own ten; the honest client still holds its one.
    expect((await healthz(http.url)).body.sessions).toBe(11);
    expect((await call(honest, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
  });

  it("at the server's cap takes the session of whoever holds the most, not the longest idle", async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ maxSessions: 20, clock });
    const honest = await http.connect(await http.token('web'));
    const other = await http.connect(await http.token('voice'));
    clock.advance(60_000);

    await flood(http.url, await http.token('telegram'), 100);
    expect((await healthz(http.url)).body.sessions).toBe(20);
    expect((await call(honest, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
    expect((await call(other, 'check_stock', { skus: ['MUG-WHT'] })).isError).toBeFalsy();
  });

  it("evicts a credential's own longest-idle session at its cap", async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ maxSessionsPerCredential: 2, clock });
    const token = await http.token('web');
    const first = await rawInitialize(http.url, token);
    clock.advance(10);
    const second = await rawInitialize(http.url, token);
    clock.advance(10);
    expect(await ping(http.url, token, first)).toBe(200);
    clock.advance(10);
    // `second` is now the longest idle of the two.
    const third = await rawInitialize(http.url, token);
    expect(await ping(http.url, token, second)).toBe(404);
    expect(await ping(http.url, token, first)).toBe(200);
    expect(await ping(http.url, token, third)).toBe(200);
  });

  it("at the server's cap, sessions spread over many OAuth grants take neither a merchant token's nor a one-session shopper's", async () => {
    const clock = new ManualClock(Date.now());
    const http = await start({ maxSessions: 12, clock });
    // A channel's backend serving four customers on one static token, and one signed-in shopper.
    const merchant = await http.token('web');
    const backend = await Promise.all(Array.from({ length: 4 }, () => rawInitialize(http.url, merchant)));
    const shopper = await grantByHand(http.url);
    const shopperSession = await rawInitialize(http.url, shopper);
    // The honest sessions are the longest idle from here on.
    clock.advance(60_000);

    // One party with four grants, each far under the per-credential cap, opens 200 sessions.
    const grants = await Promise.all(Array.from({ length: 4 }, () => grantByHand(http.url)));
    for (let i = 0; i < 200; i++) await rawInitialize(http.url, grants[i % grants.length] as string);
    expect((await healthz(http.url)).body.sessions).toBe(12);
    for (const session of backend) expect(await ping(http.url, merchant, session)).toBe(200);
    expect(await ping(http.url, shopper, shopperSession)).toBe(200);
  });
});
