// The credentials seam: static tokens from a real store, a second kind of bearer beside them, the cache, the 401s.
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/domain/clock.js';
import { openSqliteStore, type SqliteStore } from '../../../src/storage/sqlite/store.js';
import {
  type BearerVerifier,
  createAuthenticate,
  type Identity,
  staticTokens,
} from '../../../src/transports/http/credentials.js';
import { storeOptions } from '../../helpers/http.js';
import { tempDir } from '../../helpers/temp.js';

/** A real node request carrying only the Authorization header under test. */
function request(authorization?: string): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  if (authorization !== undefined) req.headers.authorization = authorization;
  return req;
}

/** Another kind of credential, as OAuth access tokens will be: it knows only tokens with its prefix. */
function grantTokens(grants: Record<string, Identity>): BearerVerifier & { calls: number } {
  const verify = Object.assign(
    async (token: string) => {
      verify.calls += 1;
      return grants[token];
    },
    { calls: 0 },
  );
  return verify;
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

function openStore(): SqliteStore {
  const tmp = tempDir('stocklock-credentials-');
  const store = openSqliteStore(join(tmp.dir, 'stocklock.db'), storeOptions());
  cleanup = async () => {
    await store.close();
    tmp.remove();
  };
  return store;
}

describe('createAuthenticate', () => {
  it('gives a static token its identity and a second kind of bearer its own, each from its verifier', async () => {
    const store = openStore();
    const clock = new ManualClock();
    const issued = await store.createToken('web', true);
    const grants = grantTokens({
      'sla_grant-1': { credentialId: 'grant_1', channel: 'chatgpt', admin: false },
    });
    const authenticate = createAuthenticate({
      auth: true,
      channel: 'default',
      verifiers: [staticTokens(store), grants],
      cacheMs: 60_000,
      clock,
    });

    expect(await authenticate(request(`Bearer ${issued.token}`))).toEqual({
      identity: { credentialId: issued.record.id, channel: 'web', admin: true },
    });
    expect(await authenticate(request('bearer sla_grant-1'))).toEqual({
      identity: { credentialId: 'grant_1', channel: 'chatgpt', admin: false },
    });
    // Verified once, then served from the cache for cacheMs, by the clock.
    clock.advance(59_999);
    await authenticate(request('Bearer sla_grant-1'));
    expect(grants.calls).toBe(1);
    clock.advance(1);
    await authenticate(request('Bearer sla_grant-1'));
    expect(grants.calls).toBe(2);
  });

  it('refuses a missing or unknown bearer with the challenge, and asks again for a token that failed', async () => {
    const store = openStore();
    const grants = grantTokens({});
    const authenticate = createAuthenticate({
      auth: true,
      channel: 'default',
      verifiers: [staticTokens(store), grants],
      cacheMs: 60_000,
      clock: new ManualClock(),
      challenge: 'Bearer resource_metadata="https://shop.example/.well-known/oauth-protected-resource"',
    });

    const missing = await authenticate(request());
    expect(missing).toMatchObject({
      refusal: {
        challenge: 'Bearer resource_metadata="https://shop.example/.well-known/oauth-protected-resource"',
        reason: 'no bearer token',
      },
    });
    expect(await authenticate(request('Basic dXNlcjpwdw=='))).toMatchObject({
      refusal: { reason: 'no bearer token' },
    });
    const unknown = await authenticate(request('Bearer sla_not-a-grant'));
    expect(unknown).toMatchObject({
      refusal: {
        challenge:
          'Bearer resource_metadata="https://shop.example/.well-known/oauth-protected-resource", error="invalid_token"',
        reason: 'unknown or revoked token',
      },
    });
    await authenticate(request('Bearer sla_not-a-grant'));
    expect(grants.calls).toBe(2);
  });

  it('makes every request a customer on the channel when auth is off', async () => {
    const authenticate = createAuthenticate({
      auth: false,
      channel: 'conformance',
      verifiers: [],
      cacheMs: 0,
      clock: new ManualClock(),
    });
    expect(await authenticate(request())).toEqual({
      identity: { credentialId: 'no-auth', channel: 'conformance', admin: false },
    });
  });
});
