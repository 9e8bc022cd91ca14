// The manual provider: no payment page, the merchant's own instructions; the merchant confirms the payment by hand.
import type { PaymentProvider } from './provider.js';

const DEFAULT_INSTRUCTIONS =
  'The shop confirms this order once it has your payment; contact the shop with the order id to arrange it.';

export function createManualProvider(instructions?: string): PaymentProvider {
  const text = instructions?.trim() || DEFAULT_INSTRUCTIONS;
  return {
    kind: 'manual',
    start: async () => ({ payment_instructions: text }),
  };
}
