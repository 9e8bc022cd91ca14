// search_products: find products by words in their SKU, name or description.
import { z } from 'zod';
import { productOutput, storableText } from '../schemas.js';
import { productText } from '../summaries.js';
import { defineTool, READ_ONLY } from '../tool.js';

export const searchProducts = defineTool({
  name: 'search_products',
  title: 'Search products',
  description:
    'Find products to sell by words in their name, SKU or description. Returns each product with its price and how many units are available right now. Use it before add_to_cart to get the exact SKU.',
  scope: 'customer',
  inputSchema: z
    .object({
      query: storableText(z.string().max(200, 'is at most 200 characters'))
        .default('')
        .describe('Words to look for, e.g. "black t-shirt". Empty or omitted lists all products.'),
      limit: z
        .number()
        .int('must be a whole number')
        .min(1, 'must be at least 1')
        .max(50, 'must be at most 50')
        .default(10)
        .describe('Most products to return, 1-50. Default 10.'),
      in_stock_only: z.boolean().default(false).describe('true to leave out products that are sold out.'),
    })
    .strict(),
  outputSchema: z.object({ products: z.array(productOutput) }),
  annotations: READ_ONLY,
  run: async (store, _ctx, input) => ({
    products: await store.searchProducts({
      query: input.query,
      limit: input.limit,
      inStockOnly: input.in_stock_only,
    }),
  }),
  summarize: ({ products }) =>
    products.length === 0
      ? 'No products match.'
      : `${products.length} found: ${products.map(productText).join('; ')}.`,
});
