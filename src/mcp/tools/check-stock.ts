// check_stock: current availability of known SKUs.
import { z } from 'zod';
import { productOutput, skuInput } from '../schemas.js';
import { productText } from '../summaries.js';
import { defineTool, READ_ONLY } from '../tool.js';

export const checkStock = defineTool({
  name: 'check_stock',
  title: 'Check stock',
  description:
    'Check how many units of one or more SKUs can be bought right now. Availability can change at any moment; only add_to_cart actually reserves units.',
  scope: 'customer',
  inputSchema: z
    .object({
      skus: z
        .array(skuInput)
        .min(1, 'give at least one SKU')
        .max(100, 'at most 100 SKUs per call')
        .describe('SKUs to check, e.g. ["TEE-BLK-M", "MUG-WHT"]. 1-100 of them.'),
    })
    .strict(),
  outputSchema: z.object({
    products: z.array(productOutput),
    unknown_skus: z.array(z.string()).describe('SKUs that match no active product.'),
  }),
  annotations: READ_ONLY,
  run: (store, _ctx, input) => store.checkStock(input.skus),
  summarize: ({ products, unknown_skus }) => {
    const known = products.map(productText).join('; ');
    const unknown = unknown_skus.length > 0 ? ` Unknown: ${unknown_skus.join(', ')}.` : '';
    return `${known || 'No known SKUs.'}${known ? '.' : ''}${unknown}`;
  },
});
