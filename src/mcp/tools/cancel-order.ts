// cancel_order (admin): an unpaid order frees its held items; a paid one is cancelled, its units restocked or written off.
import { z } from 'zod';
import { orderSummary } from '../../domain/orders.js';
import { orderIdInput, orderOutput } from '../schemas.js';
import { defineTool } from '../tool.js';

export const cancelOrder = defineTool({
  name: 'cancel_order',
  title: 'Cancel order (admin)',
  description:
    'Cancel an order on any channel. Awaiting payment: its held items go back on sale. Paid: with restock true its units are returned to on-hand stock; with restock false they stay written off (damaged, kept by the buyer). Refund the payment itself at the payment provider. Cancelling a cancelled order changes nothing.',
  scope: 'admin',
  inputSchema: z
    .object({
      order_id: orderIdInput,
      restock: z
        .boolean()
        .describe(
          'For a paid order: true puts its units back in stock (they came back), false writes them off.',
        ),
    })
    .strict(),
  outputSchema: orderOutput,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  run: (store, ctx, input) => store.cancelOrder(ctx, { orderId: input.order_id, restock: input.restock }),
  summarize: orderSummary,
});
