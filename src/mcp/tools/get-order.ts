// get_order: read an order of this channel and shopper: whether it is paid, and how to pay while it is not.
import { z } from 'zod';
import { orderSummary } from '../../domain/orders.js';
import { orderIdInput, orderOutput } from '../schemas.js';
import { defineTool, READ_ONLY } from '../tool.js';

export const getOrder = defineTool({
  name: 'get_order',
  title: 'Get order',
  description:
    'Show an order placed by checkout: its lines, total and status. awaiting_payment: still held for the shopper until pay_by (payment_url or payment_instructions say how to pay); paid: the payment arrived and the sale is done; cancelled: nothing was sold (cancel_reason says why; payment_timeout means pay_by passed). Use it to tell the shopper when their payment arrived.',
  scope: 'customer',
  inputSchema: z.object({ order_id: orderIdInput }).strict(),
  outputSchema: orderOutput,
  annotations: READ_ONLY,
  run: (store, ctx, input) => store.getOrder(ctx, input.order_id),
  summarize: orderSummary,
});
