// get_cart: read a cart of this channel.
import { z } from 'zod';
import { cartIdInput, cartOutput } from '../schemas.js';
import { cartText } from '../summaries.js';
import { defineTool, READ_ONLY } from '../tool.js';

export const getCart = defineTool({
  name: 'get_cart',
  title: 'Get cart',
  description:
    'Show a cart: its lines, total, status (open, checked_out, released or expired) and when its reservation expires.',
  scope: 'customer',
  inputSchema: z.object({ cart_id: cartIdInput }).strict(),
  outputSchema: cartOutput,
  annotations: READ_ONLY,
  run: (store, ctx, input) => store.getCart(ctx, input.cart_id),
  summarize: cartText,
});
