// add_to_cart: reserve units in a cart, creating the cart when no cart_id is given.
import { z } from 'zod';
import { cartIdInput, cartOutput, idempotencyKeyInput, quantityInput, skuInput } from '../schemas.js';
import { cartText } from '../summaries.js';
import { defineTool } from '../tool.js';

export const addToCart = defineTool({
  name: 'add_to_cart',
  title: 'Add to cart',
  description:
    'Reserve units of a product for this customer. Without cart_id a new cart is created: keep its cart_id for later calls. Units are held until expires_at (each add extends it); checkout before then. Adding a SKU already in the cart adds to its quantity. Fails with OUT_OF_STOCK, naming what is available, when there is not enough.',
  scope: 'customer',
  inputSchema: z
    .object({
      sku: skuInput,
      quantity: quantityInput,
      cart_id: cartIdInput.optional().describe('The cart to add to. Omit to start a new cart.'),
      idempotency_key: idempotencyKeyInput.optional(),
    })
    .strict(),
  outputSchema: cartOutput,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  run: (store, ctx, input) =>
    store.addToCart(ctx, {
      sku: input.sku,
      quantity: input.quantity,
      cartId: input.cart_id,
      idempotencyKey: input.idempotency_key,
    }),
  summarize: cartText,
});
