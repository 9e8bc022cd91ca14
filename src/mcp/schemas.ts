// Zod schemas shared by the tools: inputs phrased for a language model, outputs describing success only.
import { z } from 'zod';
import { MAX_QUANTITY, MAX_STOCK, SKU_PATTERN, UNSTORABLE_TEXT } from '../domain/rules.js';

/** The string schema, refusing text that no store can keep exactly (NUL, unpaired surrogates). */
export function storableText(schema: z.ZodString): z.ZodString {
  return schema.refine((text) => !UNSTORABLE_TEXT.test(text), {
    message: 'must be valid Unicode text without NUL characters',
  });
}

export const skuInput = z
  .string()
  .min(1, 'must be 1-64 characters')
  .max(64, 'must be 1-64 characters')
  .regex(SKU_PATTERN, 'may use only A-Z a-z 0-9 . _ -')
  .describe('Product SKU exactly as returned by search_products, e.g. "TEE-BLK-M".');

export const quantityInput = z
  .number()
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(MAX_QUANTITY, `must be at most ${MAX_QUANTITY}`)
  .describe('How many units, a whole number of at least 1, e.g. 2.');

export const stockQuantityInput = z
  .number()
  .int('must be a whole number')
  .min(0, 'must be 0 or more')
  .max(MAX_STOCK, `must be at most ${MAX_STOCK}`);

export const cartIdInput = storableText(
  z.string().min(1, 'must not be empty').max(100, 'is at most 100 characters'),
).describe('The cart id returned by add_to_cart, e.g. "cart_4kq9ZLm2nX8pQ1rT5vW7yA".');

export const idempotencyKeyInput = storableText(
  z.string().min(1, 'must not be empty').max(200, 'is at most 200 characters'),
).describe(
  'Optional but recommended. A unique string you make up for this request (a UUID is ideal). Send the same key again when retrying after a timeout, a lost reply or an OUTCOME_UNKNOWN error, and the call is applied only once.',
);

const money = {
  currency: z.string().describe('ISO 4217 currency code, e.g. "EUR".'),
};

export const productOutput = z.object({
  sku: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  price_minor: z.number().int().describe('Price in minor units (cents): 1250 means 12.50.'),
  ...money,
  price_display: z.string().describe('Price to show or say, e.g. "12.50 EUR".'),
  available: z.number().int().nullable().describe('Units that can still be bought; null means unlimited.'),
  in_stock: z.boolean(),
});

export const cartLineOutput = z.object({
  sku: z.string(),
  name: z.string(),
  quantity: z.number().int(),
  unit_price_minor: z.number().int(),
  line_total_minor: z.number().int(),
});

export const cartOutput = z.object({
  cart_id: z.string(),
  status: z.enum(['open', 'checked_out', 'released', 'expired']),
  lines: z.array(cartLineOutput),
  total_minor: z.number().int(),
  currency: z.string().nullable(),
  total_display: z.string().nullable(),
  item_count: z.number().int(),
  order_id: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string().describe('When the reservation lapses unless the cart is checked out or added to.'),
});

export const orderIdInput = storableText(
  z.string().min(1, 'must not be empty').max(100, 'is at most 100 characters'),
).describe('The order id returned by checkout, e.g. "ord_7Hq2mXc9LpR4tV1wZ8yB3n".');

export const orderOutput = z.object({
  order_id: z.string(),
  cart_id: z.string(),
  channel: z.string().describe('The sales channel the order was placed on.'),
  status: z
    .enum(['awaiting_payment', 'paid', 'cancelled'])
    .describe(
      'paid: sold. awaiting_payment: the items are held for the shopper until pay_by; tell them how to pay. cancelled: nothing is sold.',
    ),
  lines: z.array(cartLineOutput),
  total_minor: z.number().int(),
  currency: z.string(),
  total_display: z.string().describe('The total to show or say, e.g. "25.00 EUR".'),
  created_at: z.string(),
  pay_by: z
    .string()
    .nullable()
    .describe(
      'ISO time by which the payment must arrive; the items are held until then. Null for a direct sale.',
    ),
  payment_url: z
    .string()
    .nullable()
    .describe('Where the shopper pays, while awaiting payment; give it to them.'),
  payment_instructions: z
    .string()
    .nullable()
    .describe("The shop's own payment instructions when there is no payment_url; read them to the shopper."),
  payment_reference: z.string().nullable().describe("The payment provider's reference, once paid."),
  paid_at: z.string().nullable(),
  cancelled_at: z.string().nullable(),
  cancel_reason: z
    .enum(['payment_timeout', 'merchant', 'payment_expired', 'grant_revoked'])
    .nullable()
    .describe('Why a cancelled order was cancelled; payment_timeout means pay_by passed unpaid.'),
  needs_refund: z
    .boolean()
    .describe('True when a payment arrived after the items were gone: the merchant refunds it.'),
});

export const stockLevelOutput = z.object({
  sku: z.string(),
  name: z.string(),
  on_hand: z.number().int(),
  reserved: z.number().int(),
  available: z.number().int().nullable(),
  track_stock: z.boolean(),
  active: z.boolean(),
});
