// restock (admin): units arrived; add them to on-hand.
import { z } from 'zod';
import { skuInput, stockLevelOutput, stockQuantityInput, storableText } from '../schemas.js';
import { levelText } from '../summaries.js';
import { defineTool } from '../tool.js';

export const restock = defineTool({
  name: 'restock',
  title: 'Restock (admin)',
  description: "Add units that arrived to a product's on-hand stock. Recorded in the stock ledger.",
  scope: 'admin',
  inputSchema: z
    .object({
      sku: skuInput,
      quantity: stockQuantityInput.min(1, 'must be at least 1').describe('Units received, e.g. 24.'),
      note: storableText(z.string().max(500, 'is at most 500 characters'))
        .optional()
        .describe('Why, e.g. "PO-1042".'),
    })
    .strict(),
  outputSchema: stockLevelOutput,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  run: (store, ctx, input) =>
    store.restock(ctx, { sku: input.sku, quantity: input.quantity, note: input.note }),
  summarize: levelText,
});
