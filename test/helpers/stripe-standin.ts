// A local stand-in for the few Stripe API calls stocklock makes: Checkout Sessions, create, retrieve and expire. It
// answers like Stripe (form-encoded requests, JSON objects, Stripe's error bodies) and refuses what Stripe refuses
// there: a reused idempotency key with other parameters, a missing required field, an expires_at outside 30 min to
// 24 h after the session's creation, expiring a session that is not open (already expired, or completed).
// A test can hold its answers behind a barrier, to show that nothing waits on Stripe inside a stock transaction.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';

export const STANDIN_SECRET_KEY = 'sk_test_standin';
export const STANDIN_WEBHOOK_SECRET = 'whsec_standin_webhook_secret';

type Form = { [key: string]: string | Form };

/** Stripe's bracket notation (`line_items[0][price_data][currency]=eur`) into nested objects. */
export function parseForm(body: string): Form {
  const root: Form = {};
  for (const [name, value] of new URLSearchParams(body)) {
    const path = name.split('[').map((part) => part.replace(/]$/, ''));
    let node = root;
    path.forEach((key, index) => {
      if (index === path.length - 1) node[key] = value;
      else {
        const next = node[key];
        const child: Form = typeof next === 'object' ? next : {};
        node[key] = child;
        node = child;
      }
    });
  }
  return root;
}

interface Saved {
  fingerprint: string;
  status: number;
  body: unknown;
}

interface Refusal {
  status: number;
  error: { type: string; code?: string; param?: string; message: string };
}

const missing = (param: string): Refusal => ({
  status: 400,
  error: {
    type: 'invalid_request_error',
    code: 'parameter_missing',
    param,
    message: `Missing required param: ${param}.`,
  },
});

const invalid = (param: string, message: string): Refusal => ({
  status: 400,
  error: { type: 'invalid_request_error', code: 'parameter_invalid_integer', param, message },
});

export interface StripeStandIn {
  url: string;
  /** The options that point the `stripe` package here. */
  api: { host: string; port: number; protocol: 'http' };
  sessions: Map<string, Stripe.Checkout.Session>;
  /** Every request received, in order: method, path, idempotency key, and the answer's status. */
  requests: { method: string; path: string; idempotencyKey?: string; status?: number }[];
  /** From now on, answers wait until the returned function is called (requests already waiting included). */
  hold(): () => void;
  /** Resolves once `count` requests are waiting behind the barrier. */
  waiting(count: number): Promise<void>;
  /** Resolves once `count` requests have been answered (or executed for a client that left). */
  answered(count: number): Promise<void>;
  /** The next `count` requests are answered 500 (Stripe's api_error), as an outage would. */
  failNext(count: number): void;
  /** A session marked paid, for a checkout.session.completed event. */
  complete(sessionId: string, paymentIntent?: string): Stripe.Checkout.Session;
  /** An event around a session, signed as Stripe signs it; `timestamp` in seconds. */
  signedEvent(
    type: string,
    session: Stripe.Checkout.Session,
    timestamp: number,
    secret?: string,
  ): { body: string; signature: string };
  close(): Promise<void>;
}

/** `now()` is the stand-in's clock (ms): tests pass the store's ManualClock so both agree on expires_at. */
export async function startStripeStandIn(now: () => number = Date.now): Promise<StripeStandIn> {
  const sessions = new Map<string, Stripe.Checkout.Session>();
  const saved = new Map<string, Saved>();
  const requests: StripeStandIn['requests'] = [];
  let barrier: Promise<void> | undefined;
  let waitingCount = 0;
  const waiters: { count: number; resolve: () => void }[] = [];
  let answeredCount = 0;
  let failing = 0;
  const answerWaiters: { count: number; resolve: () => void }[] = [];
  const webhooks = new Stripe(STANDIN_SECRET_KEY).webhooks;

  const noteWaiting = (delta: number) => {
    waitingCount += delta;
    for (const waiter of [...waiters]) {
      if (waitingCount >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };

  function createSession(form: Form): Refusal | Stripe.Checkout.Session {
    if (form.mode === undefined) return missing('mode');
    if (form.mode !== 'payment') return invalid('mode', `Invalid mode: only payment is supported here.`);
    const items = form.line_items;
    if (typeof items !== 'object' || Object.keys(items).length === 0) return missing('line_items');
    let total = 0;
    let currency: string | undefined;
    for (const [index, item] of Object.entries(items)) {
      const at = `line_items[${index}]`;
      if (typeof item !== 'object') return missing(at);
      const priceData = item.price_data;
      if (typeof priceData !== 'object') return missing(`${at}[price_data]`);
      if (typeof priceData.currency !== 'string') return missing(`${at}[price_data][currency]`);
      const product = priceData.product_data;
      if (typeof product !== 'object' || typeof product.name !== 'string' || product.name === '')
        return missing(`${at}[price_data][product_data][name]`);
      if (typeof priceData.unit_amount !== 'string') return missing(`${at}[price_data][unit_amount]`);
      const unit = Number(priceData.unit_amount);
      if (!Number.isSafeInteger(unit) || unit < 0)
        return invalid(`${at}[price_data][unit_amount]`, 'Invalid integer: unit_amount');
      if (typeof item.quantity !== 'string') return missing(`${at}[quantity]`);
      const quantity = Number(item.quantity);
      if (!Number.isSafeInteger(quantity) || quantity < 1)
        return invalid(`${at}[quantity]`, 'Invalid integer: quantity');
      if (currency !== undefined && currency !== priceData.currency)
        return invalid(`${at}[price_data][currency]`, 'All line items must share one currency.');
      currency = priceData.currency;
      total += unit * quantity;
    }
    const created = Math.floor(now() / 1000);
    let expiresAt = created + 24 * 3600;
    if (form.expires_at !== undefined) {
      expiresAt = Number(form.expires_at);
      if (!Number.isSafeInteger(expiresAt)) return invalid('expires_at', 'Invalid integer: expires_at');
      if (expiresAt < created + 30 * 60 || expiresAt > created + 24 * 3600) {
        return {
          status: 400,
          error: {
            type: 'invalid_request_error',
            param: 'expires_at',
            message:
              'The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.',
          },
        };
      }
    }
    const id = `cs_test_${randomBytes(12).toString('hex')}`;
    const metadata = typeof form.metadata === 'object' ? (form.metadata as Record<string, string>) : {};
    const session = {
      id,
      object: 'checkout.session',
      amount_subtotal: total,
      amount_total: total,
      cancel_url: typeof form.cancel_url === 'string' ? form.cancel_url : null,
      client_reference_id: typeof form.client_reference_id === 'string' ? form.client_reference_id : null,
      created,
      currency: currency ?? null,
      expires_at: expiresAt,
      livemode: false,
      metadata,
      mode: 'payment',
      payment_intent: null,
      payment_status: 'unpaid',
      status: 'open',
      success_url: typeof form.success_url === 'string' ? form.success_url : null,
      url: `https://checkout.stripe.com/c/pay/${id}`,
    } as unknown as Stripe.Checkout.Session;
    sessions.set(id, session);
    return session;
  }

  async function answer(req: IncomingMessage, res: ServerResponse, body: string): Promise<number> {
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        'request-id': `req_${randomBytes(6).toString('hex')}`,
      });
      res.end(JSON.stringify(payload));
      return status;
    };
    if (req.headers.authorization !== `Bearer ${STANDIN_SECRET_KEY}`) {
      return send(401, {
        error: { type: 'invalid_request_error', message: 'Invalid API Key provided.' },
      });
    }
    if (failing > 0) {
      failing -= 1;
      return send(500, { error: { type: 'api_error', message: 'An unknown error occurred' } });
    }
    const path = (req.url ?? '').split('?')[0] ?? '';
    const expire = /^\/v1\/checkout\/sessions\/([^/]+)\/expire$/.exec(path);
    if (req.method === 'POST' && expire) {
      const id = decodeURIComponent(expire[1] as string);
      const session = sessions.get(id);
      if (!session) {
        return send(404, {
          error: {
            type: 'invalid_request_error',
            code: 'resource_missing',
            param: 'session',
            message: `No such checkout.session: '${id}'`,
          },
        });
      }
      // Stripe: "A Checkout Session can be expired when it is in one of these statuses: open"; an error otherwise.
      if (session.status !== 'open') {
        return send(400, {
          error: {
            type: 'invalid_request_error',
            message: `This Checkout Session is ${session.status} and can no longer be expired.`,
          },
        });
      }
      const expired = { ...session, status: 'expired', url: null } as unknown as Stripe.Checkout.Session;
      sessions.set(id, expired);
      return send(200, expired);
    }
    const retrieve = /^\/v1\/checkout\/sessions\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && retrieve) {
      const session = sessions.get(decodeURIComponent(retrieve[1] as string));
      if (session) return send(200, session);
      return send(404, {
        error: {
          type: 'invalid_request_error',
          code: 'resource_missing',
          message: 'No such checkout.session',
        },
      });
    }
    if (req.method !== 'POST' || path !== '/v1/checkout/sessions') {
      return send(404, {
        error: {
          type: 'invalid_request_error',
          message: `Unrecognized request URL (${req.method}: ${path}).`,
        },
      });
    }
    const key = req.headers['idempotency-key'] as string | undefined;
    // Stripe compares the parameters, not their order on the wire.
    const fingerprint = [...new URLSearchParams(body)]
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join('&');
    const earlier = key ? saved.get(key) : undefined;
    if (earlier) {
      if (earlier.fingerprint !== fingerprint) {
        return send(400, {
          error: {
            type: 'idempotency_error',
            message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
          },
        });
      }
      res.setHeader('idempotent-replayed', 'true');
      return send(earlier.status, earlier.body);
    }
    const result = createSession(parseForm(body));
    if ('status' in result && 'error' in result) {
      // A request that fails validation is not saved under its key: Stripe lets the corrected request through.
      return send(result.status, { error: result.error });
    }
    if (key) saved.set(key, { fingerprint, status: 200, body: result });
    return send(200, result);
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const entry: StripeStandIn['requests'][number] = {
        method: req.method ?? '',
        path: req.url ?? '',
        ...(req.headers['idempotency-key'] ? { idempotencyKey: String(req.headers['idempotency-key']) } : {}),
      };
      requests.push(entry);
      if (barrier) {
        noteWaiting(1);
        await barrier;
        noteWaiting(-1);
      }
      // A client that gave up has gone; Stripe still executes the request and saves it under its key.
      entry.status = await answer(req, res, Buffer.concat(chunks).toString('utf8'));
      answeredCount += 1;
      for (const waiter of answerWaiters.filter((w) => answeredCount >= w.count)) {
        answerWaiters.splice(answerWaiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    api: { host: '127.0.0.1', port, protocol: 'http' },
    sessions,
    requests,
    hold() {
      let release!: () => void;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      barrier = held;
      return () => {
        if (barrier === held) barrier = undefined;
        release();
      };
    },
    waiting(count) {
      if (waitingCount >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    answered(count) {
      if (answeredCount >= count) return Promise.resolve();
      return new Promise((resolve) => answerWaiters.push({ count, resolve }));
    },
    failNext(count) {
      failing = count;
    },
    complete(sessionId, paymentIntent = `pi_test_${randomBytes(8).toString('hex')}`) {
      const session = sessions.get(sessionId);
      if (!session) throw new Error(`no session ${sessionId}`);
      // An expired session shows the shopper that it expired: nobody can pay there any more.
      if (session.status === 'expired') throw new Error(`session ${sessionId} expired: it cannot be paid`);
      const paid = { ...session, status: 'complete', payment_status: 'paid', payment_intent: paymentIntent };
      sessions.set(sessionId, paid as Stripe.Checkout.Session);
      return paid as Stripe.Checkout.Session;
    },
    signedEvent(type, session, timestamp, secret = STANDIN_WEBHOOK_SECRET) {
      const body = JSON.stringify({
        id: `evt_${randomBytes(12).toString('hex')}`,
        object: 'event',
        api_version: Stripe.API_VERSION,
        created: timestamp,
        data: { object: session },
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        type,
      });
      return { body, signature: webhooks.generateTestHeaderString({ payload: body, secret, timestamp }) };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
