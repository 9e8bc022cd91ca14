// One-line texts for tool results, written to be read out by a chat or voice agent.
import { orderSummary } from '../domain/orders.js';
import type { CartView, OrderView, ProductView, StockLevel } from '../domain/types.js';

export function availabilityText(product: ProductView): string {
  if (product.available === null) return 'always available';
  return product.available > 0 ? `${product.available} available` : 'out of stock';
}

export function productText(product: ProductView): string {
  return `${product.name} (${product.sku}) ${product.price_display}, ${availabilityText(product)}`;
}

function linesText(lines: { name: string; quantity: number }[]): string {
  return lines.map((line) => `${line.quantity} × ${line.name}`).join(', ');
}

export function cartText(cart: CartView): string {
  if (cart.lines.length === 0) return `Cart ${cart.cart_id} is ${cart.status} and empty.`;
  const total = cart.total_display ? `, total ${cart.total_display}` : '';
  const hold = cart.status === 'open' ? `; held until ${cart.expires_at}` : '';
  return `Cart ${cart.cart_id} (${cart.status}): ${linesText(cart.lines)}${total}${hold}.`;
}

/** checkout's answer: a direct sale as placed; an order awaiting payment says where to pay and by when. */
export function orderText(order: OrderView): string {
  if (order.status !== 'paid') return orderSummary(order);
  return `Order ${order.order_id} placed: ${linesText(order.lines)}, total ${order.total_display}.`;
}

export function levelText(level: StockLevel): string {
  const available = level.available === null ? 'untracked' : `${level.available} available`;
  return `${level.sku}: ${level.on_hand} on hand, ${level.reserved} reserved, ${available}.`;
}
