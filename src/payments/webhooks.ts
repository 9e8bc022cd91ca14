// POST /payments/webhook (Standard Webhooks, link provider) and POST /payments/stripe: the signature is the credential.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { Webhook } from 'standardwebhooks';
import type Stripe from 'stripe';
import type { Clock } from '../domain/clock.js';
import { ErrorCode, isStockError } from '../domain/errors.js';
import type { CallContext } from '../domain/types.js';
import type { Logger } from '../logger.js';
import type { PayableOrder } from './provider.js';
import { returnPage } from './return-page.js';
import { SeenMessages, verifyStandardWebhook, WebhookRefusal } from './standard-webhook.js';

/** The store calls the webhooks make, always as the admin context below (the InventoryStore has them). */
export interface WebhookStore<Order extends PayableOrder> {
  getOrder(ctx: CallContext, orderId: string): Promise<Order>;
  confirmPayment(ctx: CallContext, input: { orderId: string; reference: string }): Promise<Order>;
  cancelOrder(
    ctx: CallContext,
    input: { orderId: string; restock: boolean; reason?: 'merchant' | 'payment_expired' },
  ): Promise<Order>;
}

/** Who a webhook acts as: any channel's order, written to the ledger under `payments`. */
export const PAYMENTS_CONTEXT: CallContext & { admin: true } = { channel: 'payments', admin: true };

export interface PaymentRoutesOptions<Order extends PayableOrder> {
  store: WebhookStore<Order>;
  clock: Clock;
  logger: Logger;
  /** The link provider's webhook, keyed by the payment secret. */
  link?: { key: Uint8Array };
  /** Stripe's webhook: the provider's client and the endpoint's signing secret (STRIPE_WEBHOOK_SECRET). */
  stripe?: { client: Stripe; webhookSecret: string };
  /** Largest webhook body; default 64 KB (Stripe's Checkout events are a few KB). */
  maxBodyBytes?: number;
}

export const DEFAULT_WEBHOOK_BODY_BYTES = 64 * 1024;
/** Stripe's own default tolerance for a signed event's age. */
const STRIPE_TOLERANCE_SECONDS = 300;

type Outcome = { status: number; body: Record<string, unknown> };
const received = (body: Record<string, unknown>): Outcome => ({
  status: 200,
  body: { received: true, ...body },
});

/** The routes, relative to where they are mounted (`/payments`): /webhook, /stripe and the shopper's /return page. */
export function paymentRoutes<Order extends PayableOrder>(options: PaymentRoutesOptions<Order>): Router {
  const router = express.Router();
  const raw = express.raw({ type: () => true, limit: options.maxBodyBytes ?? DEFAULT_WEBHOOK_BODY_BYTES });
  const bodyOf = (req: Request) => (Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
  const answer = (res: Response, outcome: Outcome) => res.status(outcome.status).json(outcome.body);

  if (options.link) {
    const webhook = new Webhook(options.link.key, { format: 'raw' });
    const seen = new SeenMessages();
    router.post('/webhook', raw, async (req, res) => {
      answer(res, await handleLink(options, webhook, seen, bodyOf(req), req.headers));
    });
  }
  if (options.stripe) {
    const stripe = options.stripe;
    router.post('/stripe', raw, async (req, res) => {
      answer(res, await handleStripe(options, stripe, bodyOf(req), req.headers['stripe-signature']));
    });
  }
  router.get('/return', (req, res) => {
    res.type('html').send(returnPage(req.query.order_id, req.query.status));
  });
  router.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    const parserError = error as { status?: number; type?: string };
    if (parserError.type === 'entity.too.large') {
      return answer(res, {
        status: 413,
        body: { error: 'too_large', message: 'the webhook body is too large' },
      });
    }
    if (parserError.status && parserError.status < 500) {
      return answer(res, {
        status: 400,
        body: { error: 'invalid_body', message: 'the body could not be read' },
      });
    }
    next(error);
  });
  return router;
}

async function handleLink<Order extends PayableOrder>(
  options: PaymentRoutesOptions<Order>,
  webhook: Webhook,
  seen: SeenMessages,
  body: Buffer,
  headers: Request['headers'],
): Promise<Outcome> {
  const now = options.clock.now();
  let message: ReturnType<typeof verifyStandardWebhook>;
  try {
    message = verifyStandardWebhook(webhook, body, headers, now);
  } catch (error) {
    if (!(error instanceof WebhookRefusal)) throw error;
    options.logger.warn({ code: error.code }, 'payment webhook refused');
    return { status: error.status, body: { error: error.code, message: error.message } };
  }
  if (seen.has(message.id, now)) return received({ duplicate: true });
  const event = message.payload as { type?: unknown; data?: Record<string, unknown> } | null;
  if (event?.type !== 'payment.succeeded') return received({ ignored: String(event?.type ?? 'no type') });
  const data = event.data ?? {};
  const { order_id: orderId, reference, total_minor: totalMinor, currency } = data;
  if (
    typeof orderId !== 'string' ||
    typeof reference !== 'string' ||
    reference.length === 0 ||
    reference.length > 255 ||
    !Number.isSafeInteger(totalMinor) ||
    typeof currency !== 'string'
  ) {
    return {
      status: 400,
      body: {
        error: 'invalid_payload',
        message:
          'payment.succeeded needs data.order_id, data.reference (1-255 characters), data.total_minor and data.currency',
      },
    };
  }
  const outcome = await applying(options, orderId, 'link', async () => {
    const order = await options.store.getOrder(PAYMENTS_CONTEXT, orderId);
    if (order.total_minor !== totalMinor || order.currency !== currency.toUpperCase()) {
      return {
        status: 422,
        body: {
          error: 'amount_mismatch',
          message: `order ${orderId} is ${order.total_minor} ${order.currency}, the payment ${String(totalMinor)} ${currency}; nothing changed`,
        },
      };
    }
    const paid = await options.store.confirmPayment(PAYMENTS_CONTEXT, { orderId, reference });
    return received({ order_id: paid.order_id, status: paid.status });
  });
  if (outcome.status < 300) seen.remember(message.id, message.timestampSeconds, now);
  return outcome;
}

async function handleStripe<Order extends PayableOrder>(
  options: PaymentRoutesOptions<Order>,
  stripe: NonNullable<PaymentRoutesOptions<Order>['stripe']>,
  body: Buffer,
  signature: string | string[] | undefined,
): Promise<Outcome> {
  let event: Stripe.Event;
  try {
    if (!signature) throw new Error('no Stripe-Signature header');
    event = stripe.client.webhooks.constructEvent(
      body,
      signature,
      stripe.webhookSecret,
      STRIPE_TOLERANCE_SECONDS,
      undefined,
      options.clock.now(),
    );
  } catch (error) {
    options.logger.warn({ err: (error as Error).message }, 'Stripe webhook refused');
    return {
      status: 400,
      body: { error: 'invalid_signature', message: 'the Stripe-Signature does not verify' },
    };
  }
  const confirming =
    (event.type === 'checkout.session.completed' &&
      (event.data.object.payment_status === 'paid' ||
        event.data.object.payment_status === 'no_payment_required')) ||
    event.type === 'checkout.session.async_payment_succeeded';
  const expiring = event.type === 'checkout.session.expired';
  if (!confirming && !expiring) return received({ ignored: event.type });
  const session = event.data.object as Stripe.Checkout.Session;
  const orderId = session.client_reference_id ?? session.metadata?.order_id;
  if (!orderId) return received({ ignored: `${event.type} without an order` });
  return applying(options, orderId, 'stripe', async () => {
    if (confirming) {
      const intent = session.payment_intent;
      const reference = typeof intent === 'string' ? intent : (intent?.id ?? session.id);
      const paid = await options.store.confirmPayment(PAYMENTS_CONTEXT, { orderId, reference });
      return received({ order_id: paid.order_id, status: paid.status });
    }
    const order = await options.store.getOrder(PAYMENTS_CONTEXT, orderId);
    if (order.status !== 'awaiting_payment') return received({ order_id: orderId, status: order.status });
    const cancelled = await options.store.cancelOrder(PAYMENTS_CONTEXT, {
      orderId,
      restock: false,
      reason: 'payment_expired',
    });
    return received({ order_id: cancelled.order_id, status: cancelled.status });
  });
}

/**
 * A store call's answer as the sender should read it: done or nothing to do (2xx, no retry), the sender's mistake
 * (4xx), or try again later (503). Stripe retries a non-2xx for days, so an order it cannot change is a 200 there.
 */
async function applying<Order extends PayableOrder>(
  options: PaymentRoutesOptions<Order>,
  orderId: string,
  provider: 'link' | 'stripe',
  apply: () => Promise<Outcome>,
): Promise<Outcome> {
  try {
    return await apply();
  } catch (error) {
    if (!isStockError(error)) {
      options.logger.error({ err: error, orderId, provider }, 'payment webhook failed');
      return {
        status: 500,
        body: { error: 'internal_error', message: 'the payment could not be recorded; retry' },
      };
    }
    if (error.code === ErrorCode.ORDER_NOT_FOUND || error.code === ErrorCode.ORDER_CLOSED) {
      // A payment for an order the merchant cancelled is money to give back: say so where the merchant looks.
      options.logger.error(
        { orderId, provider, code: error.code },
        'payment received for an order that cannot take it; refund it at the payment provider',
      );
      if (provider === 'stripe') return received({ ignored: error.code });
      return {
        status: error.code === ErrorCode.ORDER_NOT_FOUND ? 404 : 409,
        body: { error: error.code, message: error.message },
      };
    }
    const retry = [ErrorCode.STORE_BUSY, ErrorCode.OUTCOME_UNKNOWN, ErrorCode.STORE_READ_ONLY] as string[];
    if (retry.includes(error.code)) {
      return { status: 503, body: { error: error.code, message: error.message } };
    }
    return { status: 422, body: { error: error.code, message: error.message } };
  }
}
