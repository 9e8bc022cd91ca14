// checkout in a payment channel: the order commits first; only then is the provider asked where the shopper pays.
import { isStockError } from '../domain/errors.js';
import type { CallContext } from '../domain/types.js';
import type { Logger } from '../logger.js';
import type { CheckoutInput } from '../storage/store.js';
import {
  type PayableOrder,
  type PaymentProvider,
  type PaymentStart,
  paymentUnavailable,
} from './provider.js';

/** The store calls a payment checkout makes (the InventoryStore has them). */
export interface CheckoutStore<Order extends PayableOrder> {
  checkout(ctx: CallContext, input: CheckoutInput): Promise<Order>;
  getOrder(ctx: CallContext, orderId: string): Promise<Order>;
  attachPayment(
    orderId: string,
    payment: { url?: string | null; instructions?: string | null; reference?: string | null },
  ): Promise<Order>;
}

export interface PaymentCheckoutDeps<Order extends PayableOrder> {
  store: CheckoutStore<Order>;
  provider: PaymentProvider;
  /** The longest a checkout waits for the provider; default 15 s. */
  timeoutMs?: number;
  logger?: Logger;
}

export const DEFAULT_PROVIDER_TIMEOUT_MS = 15_000;

/**
 * store.checkout, then (outside any transaction) the provider for an order still awaiting payment and without a
 * place to pay; its answer is stored with attachPayment. A provider that fails or does not answer in time leaves
 * the order awaiting payment and refuses with PAYMENT_UNAVAILABLE: the same checkout (same idempotency key) finds
 * the order again and starts its payment again, which the providers answer the same way.
 */
export async function checkoutWithPayment<Order extends PayableOrder>(
  deps: PaymentCheckoutDeps<Order>,
  ctx: CallContext,
  input: CheckoutInput,
): Promise<Order> {
  const committed = await deps.store.checkout(ctx, input);
  if (!needsPayment(committed)) return committed;
  // A retried checkout replays the answer of the commit; an earlier attempt may have attached the payment since.
  const order = input.idempotencyKey ? await deps.store.getOrder(ctx, committed.order_id) : committed;
  if (!needsPayment(order)) return order;
  const start = await startWithin(deps, order);
  return deps.store.attachPayment(order.order_id, {
    url: start.payment_url ?? null,
    instructions: start.payment_instructions ?? null,
    reference: start.reference ?? null,
  });
}

function needsPayment(order: PayableOrder): boolean {
  return order.status === 'awaiting_payment' && !order.payment_url && !order.payment_instructions;
}

async function startWithin<Order extends PayableOrder>(
  deps: PaymentCheckoutDeps<Order>,
  order: Order,
): Promise<PaymentStart> {
  const timeoutMs = deps.timeoutMs ?? DEFAULT_PROVIDER_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          paymentUnavailable(order, deps.provider.kind, `no answer within ${Math.round(timeoutMs / 1000)} s`),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([deps.provider.start(order), timedOut]);
  } catch (error) {
    if (isStockError(error)) throw error;
    deps.logger?.warn(
      { orderId: order.order_id, provider: deps.provider.kind, err: (error as Error).message },
      'payment provider failed',
    );
    throw paymentUnavailable(order, deps.provider.kind, 'the payment provider failed');
  } finally {
    clearTimeout(timer);
  }
}
