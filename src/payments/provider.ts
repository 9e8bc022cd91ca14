// What a payment provider does for an order awaiting payment: give the shopper a place to pay, after the order committed.
import { ErrorCode, StockError } from '../domain/errors.js';

/** The line of an order a provider reads. */
export interface PayableLine {
  sku: string;
  name: string;
  quantity: number;
  unit_price_minor: number;
}

/** The part of an order a provider and the webhooks read (the store's OrderView has all of it). */
export interface PayableOrder {
  order_id: string;
  status: 'awaiting_payment' | 'paid' | 'cancelled';
  lines: PayableLine[];
  total_minor: number;
  currency: string;
  created_at: string;
  pay_by: string | null;
  payment_url: string | null;
  payment_instructions: string | null;
}

export interface PaymentStart {
  payment_url?: string;
  payment_instructions?: string;
  reference?: string;
}

export interface PaymentProvider {
  readonly kind: 'manual' | 'link' | 'stripe';
  /**
   * Called after the order committed, never inside a transaction; the same order may be started again
   * (a retried checkout) and must give the same answer. Throws StockError PAYMENT_UNAVAILABLE when the
   * provider cannot be reached.
   */
  start(order: PayableOrder): Promise<PaymentStart>;
  /**
   * Closes the place to pay of an order that will not be paid now (cancelled, timed out), by the reference
   * `start` gave: 'closed', or 'not_open' when there was nothing left to close (already expired or completed).
   * Called after the cancellation committed; throws when the provider could not be reached (the caller retries).
   * Absent: the provider's pages have no session to end.
   */
  close?(reference: string): Promise<'closed' | 'not_open'>;
}

/** The refusal a shopper's agent can act on: the order stands and holds its items; the same checkout retries. */
export function paymentUnavailable(
  order: Pick<PayableOrder, 'order_id' | 'pay_by'>,
  provider: PaymentProvider['kind'],
  why: string,
): StockError {
  const until = order.pay_by ? ` until ${order.pay_by}` : '';
  return new StockError(
    ErrorCode.PAYMENT_UNAVAILABLE,
    `Order "${order.order_id}" is saved and its items are held${until}, but the payment page could not be made (${why}). Call checkout again with the same idempotency_key to retry.`,
    { order_id: order.order_id, pay_by: order.pay_by, provider, retriable: true },
  );
}
