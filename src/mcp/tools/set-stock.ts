// set_stock (admin): a stock count says on-hand is N; refused below what carts hold.
import { z } from 'zod';
import { skuInput, stockLevelOutput, stockQuantityInput, storableText } from '../schemas.js';
import { levelText } from '../summaries.js';
import { defineTool } from '../tool.js';

export const setStock = defineTool({
  name: 'set_stock',
  title: 'Set stock (admin)',
  description:
    "Set a product's on-hand count after a stock take. Refused with BELOW_RESERVED if carts hold more than that.",
  scope: 'admin',
  inputSchema: z
    .object({
      sku: skuInput,
      quantity: stockQuantityInput.describe('The counted on-hand units, e.g. 12.'),
      note: storableText(z.string().max(500, 'is at most 500 characters'))
        .optional()
        .describe('Why, e.g. "stock take".'),
    })
    .strict(),
  outputSchema: stockLevelOutput,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  run: (store, ctx, input) =>
    store.setStock(ctx, { sku: input.sku, quantity: input.quantity, note: input.note }),
  summarize: levelText,
});
