// confirm_payment (admin): the payment for an order arrived; its held items are sold.
import { z } from 'zod';
import { orderSummary } from '../../domain/orders.js';
import { orderIdInput, orderOutput, storableText } from '../schemas.js';
import { defineTool } from '../tool.js';

export const confirmPayment = defineTool({
  name: 'confirm_payment',
  title: 'Confirm payment (admin)',
  description:
    "Record that an order's payment arrived, on any channel: an order awaiting payment is sold from its held items and becomes paid. Confirming a paid order again changes nothing. If the order was already cancelled because its payment window passed, the items are sold again if still in stock; otherwise the order stays cancelled with needs_refund true (refund it at the payment provider), and nothing is oversold. An order the merchant cancelled is refused with ORDER_CLOSED.",
  scope: 'admin',
  inputSchema: z
    .object({
      order_id: orderIdInput,
      reference: storableText(
        z.string().min(1, 'must not be empty').max(200, 'is at most 200 characters'),
      ).describe(
        'The payment\'s reference at the provider or bank, e.g. "pi_3Nf…" or "transfer 2026-01-05".',
      ),
    })
    .strict(),
  outputSchema: orderOutput,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  run: (store, ctx, input) =>
    store.confirmPayment(ctx, { orderId: input.order_id, reference: input.reference }),
  summarize: orderSummary,
});
