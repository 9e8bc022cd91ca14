// add_to_cart: reserve units in a cart, creating the cart when no cart_id is given.
import { z } from 'zod';
import { refuse } from '../../domain/errors.js';
import { DEFAULT_RATE_LIMITS } from '../../domain/limits.js';
import type { InventoryStore } from '../../storage/store.js';
import { cartIdInput, cartOutput, idempotencyKeyInput, quantityInput, skuInput } from '../schemas.js';
import { cartText } from '../summaries.js';
import { defineTool } from '../tool.js';

/** An OAuth shopper's new carts are rate-limited: carts of untracked items escape the holder's cap. */
async function countNewCart(store: InventoryStore, holder: string): Promise<void> {
  const rate = (store.options.rateLimits ?? DEFAULT_RATE_LIMITS).newCarts;
  if (!rate) return;
  const verdict = await store.limiter('new-carts', rate.points, rate.durationS).consume(holder);
  if (!verdict.allowed) throw refuse.rateLimited('new carts per shopper', verdict.retryAfterMs);
}

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
  run: async (store, ctx, input) => {
    if (ctx.holder && input.cart_id === undefined) await countNewCart(store, ctx.holder);
    return store.addToCart(ctx, {
      sku: input.sku,
      quantity: input.quantity,
      cartId: input.cart_id,
      idempotencyKey: input.idempotency_key,
    });
  },
  summarize: cartText,
});
