// Turns stored rows into the views tools report; shared by every store so they all answer alike.
import { formatMoney, iso } from './rules.js';
import type { CartLineView, CartStatus, CartView, OrderView, ProductView, StockLevel } from './types.js';

export interface ProductRow {
  sku: string;
  name: string;
  description: string | null;
  price_minor: number;
  currency: string;
  on_hand: number;
  reserved: number;
  track_stock: number | boolean;
  active: number | boolean;
}

export interface CartRow {
  id: string;
  channel: string;
  status: string;
  currency: string | null;
  created_at: number;
  expires_at: number;
}

export interface LineRow {
  sku: string;
  name: string;
  quantity: number;
  unit_price_minor: number;
}

/** Units a tracked product can still be sold: holds of expired carts count as free even before a sweep. */
export function availableUnits(row: ProductRow, expiredHeld: number): number | null {
  if (!row.track_stock) return null;
  return Math.max(0, row.on_hand - row.reserved + expiredHeld);
}

export function productView(row: ProductRow, expiredHeld = 0): ProductView {
  const available = availableUnits(row, expiredHeld);
  return {
    sku: row.sku,
    name: row.name,
    description: row.description,
    price_minor: row.price_minor,
    currency: row.currency,
    price_display: formatMoney(row.price_minor, row.currency),
    available,
    in_stock: available === null || available > 0,
  };
}

export function stockLevel(row: ProductRow, expiredHeld = 0): StockLevel {
  const reserved = row.reserved - expiredHeld;
  return {
    sku: row.sku,
    name: row.name,
    on_hand: row.on_hand,
    reserved,
    available: row.track_stock ? row.on_hand - reserved : null,
    track_stock: Boolean(row.track_stock),
    active: Boolean(row.active),
  };
}

/** A cart past its expiry reads as expired, whether or not the sweeper has released it yet. */
export function effectiveStatus(cart: CartRow, now: number): CartStatus {
  if (cart.status === 'open' && cart.expires_at <= now) return 'expired';
  return cart.status as CartStatus;
}

export function lineViews(lines: LineRow[]): CartLineView[] {
  return lines.map((line) => ({
    sku: line.sku,
    name: line.name,
    quantity: line.quantity,
    unit_price_minor: line.unit_price_minor,
    line_total_minor: line.quantity * line.unit_price_minor,
  }));
}

export function cartView(cart: CartRow, lines: LineRow[], now: number, orderId: string | null): CartView {
  const views = lineViews(lines);
  const total = views.reduce((sum, line) => sum + line.line_total_minor, 0);
  return {
    cart_id: cart.id,
    status: effectiveStatus(cart, now),
    lines: views,
    total_minor: total,
    currency: cart.currency,
    total_display: cart.currency ? formatMoney(total, cart.currency) : null,
    item_count: views.reduce((sum, line) => sum + line.quantity, 0),
    order_id: orderId,
    created_at: iso(cart.created_at),
    expires_at: iso(cart.expires_at),
  };
}

/** A direct sale's order (paid at checkout): what stores answer until they keep the order's own status. */
export function orderView(
  order: { id: string; cart_id: string; channel: string; currency: string; created_at: number },
  lines: LineRow[],
): OrderView {
  const views = lineViews(lines);
  const total = views.reduce((sum, line) => sum + line.line_total_minor, 0);
  return {
    order_id: order.id,
    cart_id: order.cart_id,
    channel: order.channel,
    status: 'paid',
    lines: views,
    total_minor: total,
    currency: order.currency,
    total_display: formatMoney(total, order.currency),
    created_at: iso(order.created_at),
    pay_by: null,
    payment_url: null,
    payment_instructions: null,
    payment_reference: null,
    paid_at: iso(order.created_at),
    cancelled_at: null,
    cancel_reason: null,
    needs_refund: false,
  };
}
