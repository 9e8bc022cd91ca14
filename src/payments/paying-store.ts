// A store whose checkout also starts the payment: what the server hands its connections when a provider is set.
import type { Logger } from '../logger.js';
import type { InventoryStore } from '../storage/store.js';
import { checkoutWithPayment } from './checkout.js';
import type { PaymentProvider } from './provider.js';

/**
 * The same store, with `checkout` going through checkoutWithPayment: the order commits in the store's own
 * transaction, then the provider is asked. Every other call (and `this` inside it) is the store's own, so the MCP
 * tools, the console and the sweeper see one store.
 */
export function withPayments(
  store: InventoryStore,
  provider: PaymentProvider,
  options: { timeoutMs?: number; logger?: Logger } = {},
): InventoryStore {
  const checkout: InventoryStore['checkout'] = (ctx, input) =>
    checkoutWithPayment({ store, provider, ...options }, ctx, input);
  return new Proxy(store, {
    get(target, property) {
      if (property === 'checkout') return checkout;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
