// release_cart: give a cart's reserved units (or one line's) back to the pool.
import { z } from 'zod';
import { cartIdInput, cartOutput, skuInput } from '../schemas.js';
import { cartText } from '../summaries.js';
import { defineTool } from '../tool.js';

export const releaseCart = defineTool({
  name: 'release_cart',
  title: 'Release cart',
  description:
    'Give reserved units back so other customers can buy them: the whole cart (it is closed) or, with sku, just that line (the cart stays open). Call it when the customer abandons the purchase or removes an item. Releasing again is harmless.',
  scope: 'customer',
  inputSchema: z
    .object({
      cart_id: cartIdInput,
      sku: skuInput
        .optional()
        .describe('Only remove this SKU\'s line, e.g. "MUG-WHT". Omit to release the whole cart.'),
    })
    .strict(),
  outputSchema: z.object({
    cart: cartOutput,
    released: z.array(z.object({ sku: z.string(), quantity: z.number().int() })),
  }),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  run: (store, ctx, input) => store.releaseCart(ctx, { cartId: input.cart_id, sku: input.sku }),
  summarize: ({ cart, released }) => {
    const what =
      released.length === 0
        ? 'Nothing to release'
        : `Released ${released.map((r) => `${r.quantity} × ${r.sku}`).join(', ')}`;
    return `${what}. ${cartText(cart)}`;
  },
});
