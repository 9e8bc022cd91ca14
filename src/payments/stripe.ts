// The Stripe provider: one Checkout Session per order, made after the order committed, keyed by the order id.
import Stripe from 'stripe';
import type { Logger } from '../logger.js';
import { type PayableOrder, type PaymentProvider, paymentUnavailable } from './provider.js';

/** Stripe accepts a session's `expires_at` only 30 minutes to 24 hours after the session is made. */
export const STRIPE_MIN_EXPIRY_MS = 30 * 60_000;
export const STRIPE_MAX_EXPIRY_MS = 24 * 60 * 60_000;
/**
 * How long after the order's creation a first attempt may still reach Stripe when the window is shorter than
 * Stripe's minimum: the session then expires at creation + 30 min + this slack, and stocklock ends the order at
 * pay_by itself. The expiry is a function of the order alone, so a retry sends the very parameters the first
 * attempt sent and Stripe's idempotency key returns the same session.
 */
export const FIRST_ATTEMPT_SLACK_MS = 5 * 60_000;
/** Room for the two clocks to disagree at the 24 h end. */
const MAX_SKEW_MS = 60_000;

export interface StripeProviderOptions {
  secretKey: string;
  /** Where Checkout sends the shopper after paying; `{order_id}` is filled in. */
  successUrl: string;
  /** Where Checkout's back link goes; `{order_id}` is filled in. */
  cancelUrl: string;
  /** Per request; default 10 s. */
  timeoutMs?: number;
  /** Retries of a failed connection or a 5xx, safe under the idempotency key; default 1. */
  maxNetworkRetries?: number;
  /** Another API address (a local stand-in in tests); default api.stripe.com over https. */
  api?: { host: string; port: number; protocol: 'http' | 'https' };
  logger?: Logger;
}

/** The session's expiry for an order: pay_by, moved into Stripe's 30 min to 24 h range. */
export function sessionExpiresAt(order: Pick<PayableOrder, 'created_at' | 'pay_by'>): number {
  const created = Date.parse(order.created_at);
  const payBy = order.pay_by ? Date.parse(order.pay_by) : created + STRIPE_MAX_EXPIRY_MS;
  const earliest = created + STRIPE_MIN_EXPIRY_MS + FIRST_ATTEMPT_SLACK_MS;
  const latest = created + STRIPE_MAX_EXPIRY_MS - MAX_SKEW_MS;
  return Math.floor(Math.min(Math.max(payBy, earliest), latest) / 1000);
}

/** The Checkout Session for an order: its lines at their prices, the order id as client reference and metadata. */
export function sessionParams(
  order: PayableOrder,
  urls: { successUrl: string; cancelUrl: string },
): Stripe.Checkout.SessionCreateParams {
  const currency = order.currency.toLowerCase();
  const withOrder = (url: string) => url.replaceAll('{order_id}', encodeURIComponent(order.order_id));
  return {
    mode: 'payment',
    line_items: order.lines.map((line) => ({
      quantity: line.quantity,
      price_data: {
        currency,
        unit_amount: line.unit_price_minor,
        product_data: { name: line.name || line.sku, metadata: { sku: line.sku } },
      },
    })),
    client_reference_id: order.order_id,
    metadata: { order_id: order.order_id },
    payment_intent_data: { metadata: { order_id: order.order_id } },
    success_url: withOrder(urls.successUrl),
    cancel_url: withOrder(urls.cancelUrl),
    expires_at: sessionExpiresAt(order),
  };
}

export interface StripeProvider extends PaymentProvider {
  readonly kind: 'stripe';
  /** The configured client, for the webhook's signature check. */
  readonly stripe: Stripe;
}

export function createStripeProvider(options: StripeProviderOptions): StripeProvider {
  const stripe = new Stripe(options.secretKey, {
    timeout: options.timeoutMs ?? 10_000,
    maxNetworkRetries: options.maxNetworkRetries ?? 1,
    telemetry: false,
    ...(options.api ?? {}),
  });
  return {
    kind: 'stripe',
    stripe,
    async start(order) {
      try {
        const session = await stripe.checkout.sessions.create(sessionParams(order, options), {
          idempotencyKey: order.order_id,
        });
        if (!session.url) throw new Error(`session ${session.id} has no url`);
        return { payment_url: session.url, reference: session.id };
      } catch (error) {
        options.logger?.warn(
          { err: describe(error), orderId: order.order_id },
          'could not create a Stripe Checkout Session',
        );
        throw paymentUnavailable(order, 'stripe', whyStripeFailed(error));
      }
    },
    async close(reference) {
      // Only Checkout Sessions are closed here; a reference set by hand (a bank transfer's) is left alone.
      if (!reference.startsWith('cs_')) return 'not_open';
      try {
        await stripe.checkout.sessions.expire(reference);
        return 'closed';
      } catch (error) {
        // Stripe refuses to expire a session that is no longer open (expired, or completed: that payment then
        // arrives by its webhook as a late payment) or that it does not know.
        if (error instanceof Stripe.errors.StripeInvalidRequestError) return 'not_open';
        throw error;
      }
    },
  };
}

function whyStripeFailed(error: unknown): string {
  if (error instanceof Stripe.errors.StripeConnectionError) return 'Stripe could not be reached';
  if (error instanceof Stripe.errors.StripeError && (error.statusCode ?? 500) >= 500)
    return 'Stripe answered with a server error';
  if (error instanceof Stripe.errors.StripeRateLimitError) return 'Stripe is rate limiting this shop';
  return 'Stripe refused the request; the shop must check its Stripe settings';
}

/** What the log keeps of a Stripe failure: type, code, status and message, never the request. */
function describe(error: unknown): Record<string, unknown> {
  if (error instanceof Stripe.errors.StripeError) {
    return { type: error.type, code: error.code, status: error.statusCode, message: error.message };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}
