// Rate limits at their defaults, over real HTTP against a real SQLite store: each bound holds, answers 429 with
// Retry-After (tools: RATE_LIMITED with retry_after_ms), and counts against what the caller controls.
import type { Request } from 'express';
import { describe, expect, it } from 'vitest';
import { clientAddressKey } from '../../src/auth/limits.js';
import { createConsole } from '../../src/console/console.js';
import { DEFAULT_RATE_LIMITS, parseRate } from '../../src/domain/limits.js';
import { silentLogger } from '../../src/logger.js';
import { openConsoleQueries } from '../../src/storage/open-console.js';
import { call, connectClient, firstText, raw, startHttpPerTest } from '../helpers/http.js';
import {
  authorizeUrl,
  type ConsentForm,
  openConsent,
  pkcePair,
  registerClient,
  tokenRequest,
} from '../helpers/oauth.js';

const start = startHttpPerTest();
const REDIRECT = 'https://claude.ai/api/mcp/auth_callback';

type Fixture = Awaited<ReturnType<typeof start>> & { origin: string };

async function server(overrides = {}): Promise<Fixture> {
  const http = await start(overrides);
  return Object.assign(http, { origin: new URL(http.url).origin });
}

async function consentForm(
  http: Fixture,
): Promise<{ form: ConsentForm; clientId: string; verifier: string }> {
  const registered = await registerClient(http.origin, {
    client_name: 'Claude',
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: 'none',
  });
  const clientId = registered.body.client_id as string;
  const pkce = pkcePair();
  const form = await openConsent(
    authorizeUrl(http.origin, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      resource: http.url,
    }),
  );
  expect(form.status, form.html).toBe(200);
  return { form, clientId, verifier: pkce.verifier };
}

/** Posts the consent form, as from `forwardedFor` when given (a proxy's X-Forwarded-For). */
function postConsent(http: Fixture, form: ConsentForm, forwardedFor?: string) {
  return raw(http.origin, {
    method: 'POST',
    path: '/authorize',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Cookie: form.cookie as string,
      ...(forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {}),
    },
    body: new URLSearchParams({ ...form.fields, decision: 'allow' }).toString(),
  });
}

async function grantToken(http: Fixture): Promise<{ access: string; refresh: string; clientId: string }> {
  const { form, clientId, verifier } = await consentForm(http);
  const answer = await postConsent(http, form);
  const code = new URL(answer.headers.location as string).searchParams.get('code') as string;
  const tokens = await tokenRequest(http.origin, {
    grant_type: 'authorization_code',
    client_id: clientId,
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT,
  });
  expect(tokens.status).toBe(200);
  return {
    access: tokens.body.access_token as string,
    refresh: tokens.body.refresh_token as string,
    clientId,
  };
}

function retryAfterSeconds(headers: Record<string, unknown>): number {
  return Number(headers['retry-after']);
}

describe('rate limits at their defaults', () => {
  it('consent posts (and so new grants): 30 per 10 minutes per client address, then 429 with Retry-After', async () => {
    const http = await server();
    const { form } = await consentForm(http);
    const limit = DEFAULT_RATE_LIMITS.consent?.points as number;
    expect(limit).toBe(30);
    for (let i = 0; i < limit; i++) expect((await postConsent(http, form)).status).toBe(303);
    const refused = await postConsent(http, form);
    expect(refused.status).toBe(429);
    expect(refused.headers.location).toBeUndefined();
    expect(retryAfterSeconds(refused.headers)).toBeGreaterThan(500);
    expect(retryAfterSeconds(refused.headers)).toBeLessThanOrEqual(600);
    expect(refused.text).toMatch(/Too many sign-ins/);
    // X-Forwarded-For is not believed without --trust-proxy: a forged header does not get around it.
    expect((await postConsent(http, form, '203.0.113.9')).status).toBe(429);
  });

  it('behind --trust-proxy 1, counts each client address the proxy reports, not the proxy', async () => {
    const http = await server({ trustProxy: 1 });
    const { form } = await consentForm(http);
    for (let i = 0; i < 30; i++) expect((await postConsent(http, form, '198.51.100.7')).status).toBe(303);
    expect((await postConsent(http, form, '198.51.100.7')).status).toBe(429);
    // Another shopper behind the same proxy is not affected; a client's own forged hop is not believed.
    expect((await postConsent(http, form, '198.51.100.8')).status).toBe(303);
    expect((await postConsent(http, form, '10.9.9.9, 198.51.100.7')).status).toBe(429);
  });

  it('registration: 300 per 10 minutes per client address, answered 429 too_many_requests', async () => {
    const http = await server();
    const body = { client_name: 'Claude', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' };
    for (let i = 0; i < 300; i++) {
      const registered = await registerClient(http.origin, body);
      if (registered.status !== 201) throw new Error(`registration ${i + 1} answered ${registered.status}`);
    }
    const refused = await raw(http.origin, {
      method: 'POST',
      path: '/register',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.text)).toMatchObject({ error: 'too_many_requests' });
    expect(retryAfterSeconds(refused.headers)).toBeGreaterThan(0);
  });

  it('the token endpoint: 10 requests per code and 60 refreshes per grant, whatever the address', async () => {
    const http = await server();
    const { form, clientId, verifier } = await consentForm(http);
    const code = new URL((await postConsent(http, form)).headers.location as string).searchParams.get('code');
    const exchange = (codeVerifier: string) =>
      tokenRequest(http.origin, {
        grant_type: 'authorization_code',
        client_id: clientId,
        code: code as string,
        code_verifier: codeVerifier,
      });
    // Ten wrong verifiers use up the code's ten requests: the right one is refused, not guessed at further.
    for (let i = 0; i < 10; i++) expect((await exchange(pkcePair().verifier)).status).toBe(400);
    const eleventh = await exchange(verifier);
    expect(eleventh.status).toBe(429);
    expect(eleventh.body.error).toBe('too_many_requests');
    expect(await http.store.oauth.listGrants()).toHaveLength(0);

    const second = await consentForm(http);
    const secondCode = new URL((await postConsent(http, second.form)).headers.location as string)
      .searchParams;
    const issued = await tokenRequest(http.origin, {
      grant_type: 'authorization_code',
      client_id: second.clientId,
      code: secondCode.get('code') as string,
      code_verifier: second.verifier,
    });
    expect(issued.status).toBe(200);

    let refresh = issued.body.refresh_token as string;
    for (let i = 0; i < 60; i++) {
      const next = await tokenRequest(http.origin, {
        grant_type: 'refresh_token',
        client_id: second.clientId,
        refresh_token: refresh,
      });
      if (next.status !== 200) throw new Error(`refresh ${i + 1} answered ${next.status}`);
      refresh = next.body.refresh_token as string;
    }
    const tooMany = await tokenRequest(http.origin, {
      grant_type: 'refresh_token',
      client_id: second.clientId,
      refresh_token: refresh,
    });
    expect(tooMany.status).toBe(429);
    expect(Number(tooMany.headers['retry-after'])).toBeGreaterThan(0);
    // The refused refresh spent nothing: the grant stands, and its token works once the window lets it.
    const [grant] = await http.store.oauth.listGrants();
    expect(grant?.revoked_at).toBeNull();
    // A spent token is never limited: its reuse still revokes the grant at once.
    const replay = await tokenRequest(http.origin, {
      grant_type: 'refresh_token',
      client_id: second.clientId,
      refresh_token: issued.body.refresh_token as string,
    });
    expect(replay.status).toBe(400);
    expect((await http.store.oauth.listGrants())[0]?.revoke_reason).toBe('refresh token reused');

    // Another grant has its own count.
    const other = await grantToken(http);
    const fresh = await tokenRequest(http.origin, {
      grant_type: 'refresh_token',
      client_id: other.clientId,
      refresh_token: other.refresh,
    });
    expect(fresh.status).toBe(200);
  });

  it('new carts: 30 per 10 minutes per OAuth shopper; the tool answers RATE_LIMITED with retry_after_ms', async () => {
    const http = await server();
    const shopper = await grantToken(http);
    const client = await connectClient(http.url, shopper.access);
    let cartId = '';
    for (let i = 0; i < 30; i++) {
      // Untracked items escape the per-shopper cap on units: only the cart count bounds them.
      const added = await call(client, 'add_to_cart', { sku: 'GIFT-25', quantity: 1 });
      if (added.isError) throw new Error(`cart ${i + 1}: ${firstText(added)}`);
      cartId = (added.structuredContent as { cart_id: string }).cart_id;
    }
    const refused = await call(client, 'add_to_cart', { sku: 'GIFT-25', quantity: 1 });
    expect(refused.isError).toBe(true);
    expect(firstText(refused)).toMatch(/^RATE_LIMITED: /);
    const details = JSON.parse((refused.content[1] as { text: string }).text);
    expect(details).toMatchObject({ code: 'RATE_LIMITED', limit: 'new carts per shopper' });
    expect(details.retry_after_ms).toBeGreaterThan(0);
    expect(details.retry_after_ms).toBeLessThanOrEqual(600_000);
    // Adding to a cart it has is not limited; neither is another shopper nor a static token.
    expect(
      (await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1, cart_id: cartId })).isError,
    ).toBeFalsy();
    const other = await connectClient(http.url, (await grantToken(http)).access);
    expect((await call(other, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 })).isError).toBeFalsy();
    const bot = await http.connect(await http.token('web'));
    for (let i = 0; i < 31; i++)
      expect((await call(bot, 'add_to_cart', { sku: 'GIFT-25', quantity: 1 })).isError).toBeFalsy();
    await Promise.all([client.close(), other.close()]);
  });

  it('console sign-in: 10 failures per 15 minutes per client address, then even the right token waits', async () => {
    const http = await server();
    const queries = await openConsoleQueries(http.dbPath, http.store.options.clock);
    const handle = createConsole({ store: http.store, queries, logger: silentLogger });
    const { serveHttp } = await import('../../src/transports/http.js');
    const { defaultHttpOptions } = await import('../helpers/http.js');
    const site = await serveHttp(http.store, defaultHttpOptions({ console: handle }), silentLogger);
    try {
      const base = site.url.replace(/\/mcp$/, '/console/');
      const { token: admin } = await http.store.createToken('ops', true);
      const attempt = async (token: string) => {
        const page = await fetch(base);
        const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
        const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
        return fetch(`${base}sign-in`, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie },
          body: new URLSearchParams({ token, _csrf: csrf }).toString(),
        });
      };
      for (let i = 0; i < 10; i++) expect((await attempt(`slk_guess${i}`)).status).toBe(401);
      const locked = await attempt(admin);
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(800);
      expect(await locked.text()).toMatch(/Too many failed sign-ins/);
    } finally {
      await site.close();
      await handle.close();
      await queries.close();
    }
  });
});

describe('what a limit counts against', () => {
  const key = (ip: string) => clientAddressKey({ ip, socket: {} } as unknown as Request);

  it('an IPv4 address as is; an IPv6 address by its /64; a mapped IPv4 as the IPv4', () => {
    expect(key('203.0.113.9')).toBe('203.0.113.9');
    expect(key('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(key('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(key('::ffff:203.0.113.9')).toBe('203.0.113.9');
  });

  it('reads COUNT/DURATION or off, and refuses anything else naming the flag', () => {
    expect(parseRate('30/10m', '--rate-consent')).toEqual({ points: 30, durationS: 600 });
    expect(parseRate(' 5 / 90s ', '--rate-consent')).toEqual({ points: 5, durationS: 90 });
    expect(parseRate('off', '--rate-consent')).toBeNull();
    expect(() => parseRate('0/10m', '--rate-consent')).toThrow(/--rate-consent must be COUNT\/DURATION/);
    expect(() => parseRate('lots', '--rate-register')).toThrow(/--rate-register/);
    expect(() => parseRate('5/10ms', '--rate-register')).toThrow(/at least 1s/);
  });
});
