// checkout: turn a cart into an order: the sale (a direct channel), or an order awaiting payment that holds the items.
import { z } from 'zod';
import { cartIdInput, idempotencyKeyInput, orderOutput } from '../schemas.js';
import { orderText } from '../summaries.js';
import { defineTool } from '../tool.js';

export const checkout = defineTool({
  name: 'checkout',
  title: 'Check out',
  description:
    "Place the order for a cart. Call only once the customer has confirmed. The answer's status says what happened: paid (the sale is done), or awaiting_payment (the items are held for the shopper until pay_by; tell them to pay at payment_url, or read them payment_instructions, and check later with get_order). Calling it again for the same cart returns the same order, so a retry never sells twice. An expired cart is re-reserved first; if stock ran out meanwhile it fails with OUT_OF_STOCK and nothing is held or sold. PAYMENT_UNAVAILABLE means the order is saved and held but the payment link could not be made yet: retry with the same idempotency_key.",
  scope: 'customer',
  inputSchema: z.object({ cart_id: cartIdInput, idempotency_key: idempotencyKeyInput.optional() }).strict(),
  outputSchema: orderOutput,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  run: (store, ctx, input) =>
    store.checkout(ctx, { cartId: input.cart_id, idempotencyKey: input.idempotency_key }),
  summarize: orderText,
});
