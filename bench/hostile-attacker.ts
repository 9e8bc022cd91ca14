// The hostile crowd's attacker, in a process of its own (its loops must not slow the honest shoppers' clock):
// one address with no credentials that, as fast as it can, registers OAuth clients with the largest metadata
// allowed, clicks Allow on the consent page and exchanges each code for a grant, holds what each grant may hold,
// opens MCP sessions on its grants, and sends oversized, deeply nested and many-keyed bodies to /mcp.
// Protocol (JSON lines): {"start": {"mcpUrl": …, "sku": …}} starts it; {"stop": true} ends every loop and it answers
// with what each request got ({"counts": {…}}).
import http from 'node:http';
import { raw } from '../test/helpers/http.js';
import { authorizeUrl, openConsent, pkcePair, registerClient, tokenRequest } from '../test/helpers/oauth.js';
import { MinimalHttpSession } from './clients.js';
import { rpcResult } from './flash-sale.js';
import { parentMessages, reply } from './lib.js';

/** A redirect host the default map accepts (claude.ai signs in as the claude channel). */
const REDIRECT = 'https://claude.ai/api/mcp/auth_callback';
/** Concurrent loops per activity; sessions get more, so that the flood reaches the server's session cap. */
const LOOPS = 2;
const SESSION_LOOPS = 6;

/** The SKU each grant asks to hold, from the start message. */
let sku = '';

const counts: Record<string, number> = {};
const count = (what: string) => {
  counts[what] = (counts[what] ?? 0) + 1;
};
let running = true;
const grants: string[] = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** The largest registration the server keeps: 10 redirect URIs of 512 characters, a 200-character name. */
function bigMetadata(i: number): Record<string, unknown> {
  return {
    client_name: `${'x'.repeat(190)}${String(i).padStart(10, '0')}`,
    redirect_uris: Array.from(
      { length: 10 },
      (_, k) => `https://claude.ai/${String(k)}/${'p'.repeat(512 - 'https://claude.ai/0/'.length)}`,
    ),
    token_endpoint_auth_method: 'none',
    client_uri: `https://claude.ai/${'u'.repeat(512 - 'https://claude.ai/'.length)}`,
  };
}

async function registerLoop(): Promise<void> {
  for (let i = 0; running; i++) {
    try {
      const answer = await registerClient(origin, bigMetadata(i));
      count(`register ${answer.status}`);
    } catch {
      count('register: connection error');
    }
  }
}

let origin = '';
let mcpUrl = '';

/** Each Allow click is a code; each code a grant; each grant holds what it may and then asks for more. */
async function grantLoop(clientId: string, form: Awaited<ReturnType<typeof openConsent>>, verifier: string) {
  while (running) {
    try {
      const answer = await raw(origin, {
        method: 'POST',
        path: '/authorize',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: form.cookie ?? '' },
        body: new URLSearchParams({ ...form.fields, decision: 'allow' }).toString(),
      });
      count(`consent ${answer.status}`);
      const location = answer.headers.location;
      const code = location ? new URL(location).searchParams.get('code') : null;
      if (!code) continue;
      const tokens = await tokenRequest(origin, {
        grant_type: 'authorization_code',
        client_id: clientId,
        code,
        code_verifier: verifier,
        redirect_uri: REDIRECT,
      });
      count(`token ${tokens.status}`);
      const access = tokens.body.access_token;
      if (!access) continue;
      grants.push(access);
      const session = await MinimalHttpSession.open(mcpUrl, access, agent);
      // Twice what a grant may hold, in new carts: the second must be refused.
      for (let k = 0; k < 2; k++) {
        const added = await session.send('add_to_cart', { sku, quantity: 20 });
        const result = added.status === 200 ? rpcResult(added.body) : undefined;
        count(
          `add_to_cart ${result?.isError ? (result.content?.[0]?.text?.split(':')[0] ?? 'error') : added.status === 200 ? 'held' : added.status}`,
        );
      }
    } catch {
      count('grant: connection error');
    }
  }
}

async function sessionLoop(worker: number): Promise<void> {
  for (let i = worker; running; i++) {
    const token = grants[i % Math.max(1, grants.length)];
    if (!token) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      continue;
    }
    try {
      await MinimalHttpSession.open(mcpUrl, token, agent);
      count('session opened');
    } catch (error) {
      count(`session refused ${/\((\d+)\)/.exec((error as Error).message)?.[1] ?? 'connection error'}`);
    }
  }
}

/** Bodies that cost a parser most: a megabyte of brackets, nesting under the size limit, thousands of keys. */
const BODIES: Record<string, string> = {
  'oversized (1 MB of nested brackets)': '['.repeat(1024 * 1024),
  'nested (60 KB, 30,000 deep)': `${'['.repeat(30_000)}${']'.repeat(30_000)}`,
  'many keys (56 KB, 4,500 keys)': JSON.stringify(
    Object.fromEntries(Array.from({ length: 4_500 }, (_, k) => [`k${k}`, k])),
  ),
};

function postBody(token: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      mcpUrl,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'content-length': Buffer.byteLength(body),
        },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function bodyLoop(worker: number): Promise<void> {
  const kinds = Object.keys(BODIES);
  for (let i = worker; running; i++) {
    const token = grants[0];
    if (!token) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      continue;
    }
    const kind = kinds[i % kinds.length] as string;
    try {
      count(`body ${kind}: ${await postBody(token, BODIES[kind] as string)}`);
    } catch (error) {
      count(`body ${kind}: ${(error as NodeJS.ErrnoException).code ?? 'connection error'}`);
    }
  }
}

async function attack(): Promise<void> {
  // The client it mints grants with is registered first, before its own flood of registrations refuses it.
  const registered = await registerClient(origin, {
    client_name: 'Claude',
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: 'none',
  });
  const clientId = registered.body.client_id as string;
  const pkce = pkcePair();
  const form = await openConsent(
    authorizeUrl(origin, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      resource: mcpUrl,
    }),
  );
  if (form.status !== 200) throw new Error(`the consent page answered ${form.status}`);
  const loops = [
    ...Array.from({ length: LOOPS }, (_, worker) => [
      registerLoop(),
      grantLoop(clientId, form, pkce.verifier),
      bodyLoop(worker),
    ]).flat(),
    ...Array.from({ length: SESSION_LOOPS }, (_, worker) => sessionLoop(worker)),
  ];
  await Promise.all(loops);
}

let attacking: Promise<void> | undefined;
parentMessages((message) => {
  const start = message.start as { mcpUrl: string; sku: string } | undefined;
  if (start) {
    mcpUrl = start.mcpUrl;
    sku = start.sku;
    origin = new URL(mcpUrl).origin;
    attacking = attack().catch((error: Error) => {
      count(`attack failed: ${error.message}`);
    });
    reply({ started: true });
  }
  if (message.stop) {
    running = false;
    void attacking?.then(() => {
      reply({ counts, grants: grants.length });
      agent.destroy();
      process.exit(0);
    });
  }
});
