// upsert_product (admin): create or update a product's catalog data (not its stock).
import { z } from 'zod';
import { CURRENCY_PATTERN, MAX_PRICE_MINOR } from '../../domain/rules.js';
import { productOutput, skuInput, storableText } from '../schemas.js';
import { productText } from '../summaries.js';
import { defineTool } from '../tool.js';

export const upsertProduct = defineTool({
  name: 'upsert_product',
  title: 'Create or update product (admin)',
  description:
    'Create a product or update its name, description, price, currency, tracking or active flag. Stock is changed with restock or set_stock; a new product starts with 0 on hand.',
  scope: 'admin',
  inputSchema: z
    .object({
      sku: skuInput,
      name: storableText(
        z.string().min(1, 'must not be empty').max(200, 'is at most 200 characters'),
      ).describe('e.g. "T-shirt, black, M".'),
      description: storableText(z.string().max(2000, 'is at most 2000 characters'))
        .optional()
        .describe('Description shown to shoppers, e.g. "Heavyweight organic cotton." Omitted: unchanged.'),
      price_minor: z
        .number()
        .int('must be a whole number of minor units')
        .min(0, 'must be 0 or more')
        .max(MAX_PRICE_MINOR, `must be at most ${MAX_PRICE_MINOR}`)
        .describe('Price in minor units: 1250 for 12.50.'),
      currency: z
        .string()
        .regex(CURRENCY_PATTERN, 'must be a 3-letter ISO 4217 code')
        .describe('e.g. "EUR".'),
      track_stock: z
        .boolean()
        .optional()
        .describe(
          'false for goods that never run out (digital). Omitted: unchanged (true for a new product).',
        ),
      active: z
        .boolean()
        .optional()
        .describe('false hides the product from customers. Omitted: unchanged (true for a new product).'),
    })
    .strict(),
  outputSchema: productOutput,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  run: (store, ctx, input) => store.upsertProduct(ctx, input),
  summarize: (product) => `Saved ${productText(product)}.`,
});
