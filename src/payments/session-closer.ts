// Orders that stop awaiting payment unpaid get their payment sessions closed, after the commit and outside every
// stock transaction: a shopper who opens the link later sees an ended session instead of paying for items that
// went back on sale.
import type { Logger } from '../logger.js';
import type { CancelledOrder } from '../storage/store.js';
import type { PaymentProvider } from './provider.js';

export interface SessionCloserOptions {
  logger?: Logger;
  /** Tries per session (the first and the retries); default 4. */
  attempts?: number;
  /** The wait before the first retry, doubled each time; default 2 s. */
  retryDelayMs?: number;
}

export interface SessionCloser {
  /** For StoreOptions.onOrdersCancelled: starts closing, returns at once. */
  onOrdersCancelled(orders: readonly CancelledOrder[]): void;
  /** Resolves when every close started so far has ended (closed, nothing to close, or given up and reported). */
  settled(): Promise<void>;
}

/**
 * Closes at the provider each cancelled order's session, with retries. One that cannot be closed is reported
 * (an error in the log naming the order and the session) and left: the cancellation stands, and a payment made
 * there is a late payment (sold if the stock is still there, else the order is flagged needs_refund).
 * An order cancelled because its session expired has nothing left to close.
 */
export function createSessionCloser(
  provider: PaymentProvider,
  options: SessionCloserOptions = {},
): SessionCloser {
  const attempts = Math.max(1, options.attempts ?? 4);
  const retryDelayMs = options.retryDelayMs ?? 2_000;
  const running = new Set<Promise<void>>();

  async function closeOne(
    order: CancelledOrder,
    reference: string,
    close: (ref: string) => Promise<unknown>,
  ) {
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await close(reference);
        options.logger?.info(
          { orderId: order.order_id, reference, outcome },
          'closed the payment session of a cancelled order',
        );
        return;
      } catch (error) {
        if (attempt >= attempts) {
          options.logger?.error(
            { orderId: order.order_id, reference, attempts, err: (error as Error).message },
            'could not close the payment session of a cancelled order; a payment made there arrives as a late payment',
          );
          return;
        }
        await new Promise((done) => setTimeout(done, retryDelayMs * 2 ** (attempt - 1)).unref());
      }
    }
  }

  return {
    onOrdersCancelled(orders) {
      const close = provider.close?.bind(provider);
      if (!close) return;
      for (const order of orders) {
        const reference = order.payment_reference;
        if (!reference || order.cancel_reason === 'payment_expired') continue;
        const closing = closeOne(order, reference, close).finally(() => running.delete(closing));
        running.add(closing);
      }
    },
    async settled() {
      while (running.size > 0) await Promise.all([...running]);
    },
  };
}
