// checkout: turn a cart into an order, selling its reserved units.
import { z } from 'zod';
import { cartIdInput, idempotencyKeyInput, orderOutput } from '../schemas.js';
import { orderText } from '../summaries.js';
import { defineTool } from '../tool.js';

export const checkout = defineTool({
  name: 'checkout',
  title: 'Check out',
  description:
    'Place the order for a cart: the reserved units are sold and the cart is closed. Call only once the customer has confirmed. Calling it again for the same cart returns the same order, so a retry never sells twice. An expired cart is re-reserved first; if stock ran out meanwhile it fails with OUT_OF_STOCK and sells nothing.',
  scope: 'customer',
  inputSchema: z.object({ cart_id: cartIdInput, idempotency_key: idempotencyKeyInput.optional() }).strict(),
  outputSchema: orderOutput,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  run: (store, ctx, input) =>
    store.checkout(ctx, { cartId: input.cart_id, idempotencyKey: input.idempotency_key }),
  summarize: orderText,
});
