// Fixtures for the payment tests: a payment secret and an order as the store hands it to a provider.
import type { PayableOrder } from '../../src/payments/provider.js';

export const SECRET = `whsec_${Buffer.from('a-test-secret-of-thirty-two-byte').toString('base64')}`;

export function order(overrides: Partial<PayableOrder> = {}): PayableOrder {
  return {
    order_id: 'ord_7Hq2',
    status: 'awaiting_payment',
    lines: [
      { sku: 'TEE-BLK-M', name: 'Organic cotton T-shirt, black, M', quantity: 2, unit_price_minor: 2400 },
    ],
    total_minor: 4800,
    currency: 'EUR',
    created_at: '2026-01-01T12:00:00.000Z',
    pay_by: '2026-01-01T12:30:00.000Z',
    payment_url: null,
    payment_instructions: null,
    ...overrides,
  };
}
