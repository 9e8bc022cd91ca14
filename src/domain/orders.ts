// The order decisions, written once like the stock ones: checkout in either mode, the payment's confirmation
// (on time or late), the payment window's end, and cancellation. Pure: stores read the rows, call, and apply.
import { type CheckoutState, type ExpiredHolds, freeExpired, holdLines, product } from './decisions.js';
import { refuse, type ShortLine } from './errors.js';
import { formatMoney, iso } from './rules.js';
import type { CancelReason, CheckoutMode, OrderStatus, OrderView } from './types.js';
import { lineViews, type ProductRow } from './views.js';
import { Writes } from './writes.js';

/** An order as stored. `holder` is '' for the whole channel (a static token, stdio). Times in ms. */
export interface StoredOrder {
  id: string;
  cart_id: string;
  channel: string;
  holder: string;
  status: OrderStatus;
  currency: string;
  total_minor: number;
  created_at: number;
  pay_by: number | null;
  paid_at: number | null;
  cancelled_at: number | null;
  cancel_reason: CancelReason | null;
  payment_url: string | null;
  payment_instructions: string | null;
  payment_reference: string | null;
  needs_refund: boolean | number;
}

/** An order line as stored: the price it sold at, and how many units it holds while awaiting payment. */
export interface StoredOrderLine {
  sku: string;
  name: string;
  quantity: number;
  unit_price_minor: number;
  held: number;
}

export interface OrderDecision {
  writes: Writes;
  /** The order after the call; `changed` false means nothing is written (a repeat, or a no-op). */
  order: StoredOrder;
  lines: StoredOrderLine[];
  changed: boolean;
}

/** The ledger note on units freed when an order's payment window ends. */
export const PAYMENT_TIMEOUT = 'payment_timeout';

/** An order past its pay_by reads as cancelled for timeout, whether or not the sweeper has released it yet. */
export function isOverdue(order: StoredOrder, now: number): boolean {
  return order.status === 'awaiting_payment' && order.pay_by !== null && order.pay_by <= now;
}

export function orderView(order: StoredOrder, lines: readonly StoredOrderLine[], now: number): OrderView {
  const views = lineViews([...lines]);
  const overdue = isOverdue(order, now);
  const paidAt = order.paid_at ?? (order.status === 'paid' ? order.created_at : null);
  return {
    order_id: order.id,
    cart_id: order.cart_id,
    channel: order.channel,
    status: overdue ? 'cancelled' : order.status,
    lines: views,
    total_minor: order.total_minor,
    currency: order.currency,
    total_display: formatMoney(order.total_minor, order.currency),
    created_at: iso(order.created_at),
    pay_by: order.pay_by === null ? null : iso(order.pay_by),
    payment_url: order.payment_url,
    payment_instructions: order.payment_instructions,
    payment_reference: order.payment_reference,
    // Orders sold before payments existed have no paid_at: a paid order without it was paid when it was made.
    paid_at: paidAt === null ? null : iso(paidAt),
    cancelled_at: overdue
      ? iso(order.pay_by as number)
      : order.cancelled_at === null
        ? null
        : iso(order.cancelled_at),
    cancel_reason: overdue ? 'payment_timeout' : order.cancel_reason,
    needs_refund: Boolean(order.needs_refund),
  };
}

export interface OrderCheckoutState extends CheckoutState {
  mode: CheckoutMode;
  /** The cart's holder ('' for the whole channel): the order's, so its shopper can look it up. */
  holder: string;
  paymentWindowMs: number;
}

/**
 * Checkout of an open (or expired) cart that has lines. Whatever was freed is held again first (all or nothing).
 * `direct`: every line is sold now (`sale`), the order is paid. `payment`: every hold moves from the cart to the
 * order, `reserved` and the channel's counter unchanged, and the order awaits payment until now + the window.
 */
export function decideOrderCheckout(state: OrderCheckoutState): OrderDecision {
  const { cart, channel, now } = state;
  if (state.lines.length === 0) throw refuse.cartEmpty(cart.id);
  const writes = new Writes(state.products);
  writes.addChannel(channel, holdLines(writes, new Set(), { ...state, everyLine: true }));
  const paying = state.mode === 'payment';
  const lines: StoredOrderLine[] = [];
  for (const line of state.lines) {
    const row = product(state.products, line.sku);
    if (cart.currency !== null && row.currency !== cart.currency) {
      throw refuse.currencyMismatch(row.sku, row.currency, cart.currency);
    }
    const tracked = Boolean(row.track_stock);
    // holdLines made every tracked line hold its full quantity.
    const held = tracked ? line.quantity : line.held;
    if (held > 0) writes.setHeld(cart.id, line.sku, 0);
    const { sku, quantity } = line;
    lines.push({ sku, name: row.name, quantity, unit_price_minor: row.price_minor, held: 0 });
    if (paying) {
      if (held > 0) writes.setOrderHeld(state.orderId, sku, held);
      (lines.at(-1) as StoredOrderLine).held = held;
      continue;
    }
    if (held > 0 || tracked) writes.changeStock(sku, tracked ? -quantity : 0, 0 - held, true);
    writes.addChannel(channel, -held);
    writes.record({
      sku,
      kind: 'sale',
      quantity,
      on_hand_delta: tracked ? -quantity : 0,
      reserved_delta: 0 - held,
      cart_id: cart.id,
      order_id: state.orderId,
      channel,
    });
  }
  // A cart takes its currency from its first line, so a cart with lines always has one.
  const order: StoredOrder = {
    ...emptyOrder(state.orderId, cart.id, channel, state.holder, cart.currency as string, now),
    status: paying ? 'awaiting_payment' : 'paid',
    total_minor: lines.reduce((sum, line) => sum + line.quantity * line.unit_price_minor, 0),
    pay_by: paying ? now + state.paymentWindowMs : null,
    paid_at: paying ? null : now,
  };
  return { writes, order, lines, changed: true };
}

function emptyOrder(
  id: string,
  cartId: string,
  channel: string,
  holder: string,
  currency: string,
  now: number,
): StoredOrder {
  return {
    id,
    cart_id: cartId,
    channel,
    holder,
    status: 'awaiting_payment',
    currency,
    total_minor: 0,
    created_at: now,
    pay_by: null,
    paid_at: null,
    cancelled_at: null,
    cancel_reason: null,
    payment_url: null,
    payment_instructions: null,
    payment_reference: null,
    needs_refund: false,
  };
}

export interface OrderState {
  now: number;
  order: StoredOrder;
  lines: readonly StoredOrderLine[];
  /** The rows of the order's tracked SKUs, locked. */
  products: ReadonlyMap<string, ProductRow>;
}

/** Frees what the order's lines hold: `release` for a cancellation, `expire` when its time ran out. */
function releaseOrder(
  writes: Writes,
  order: StoredOrder,
  lines: StoredOrderLine[],
  kind: 'release' | 'expire',
  note: string,
) {
  for (const line of lines) {
    writes.release(
      line.sku,
      { cart_id: order.cart_id, order_id: order.id, held: line.held, channel: order.channel },
      kind,
      note,
    );
    line.held = 0;
  }
}

const copyLines = (lines: readonly StoredOrderLine[]) => lines.map((line) => ({ ...line }));

/**
 * A payment arrived (webhook, admin tool, CLI or console): the same call every time, so it is idempotent.
 * Awaiting payment (even past pay_by, not yet swept: its units are still held): sold. Paid, or already flagged
 * for a refund: unchanged. Cancelled because its time ran out (or its session expired, or its grant was revoked):
 * sold again if the stock is there now, else flagged `needs_refund` with the reference, nothing oversold.
 * Cancelled by the merchant: ORDER_CLOSED.
 */
export function decideConfirmPayment(
  state: OrderState & {
    reference: string /** Other carts' expired holds of its SKUs, freed for a late sale. */;
    expired: ExpiredHolds;
  },
): OrderDecision {
  const { now, order } = state;
  const writes = new Writes(state.products);
  const lines = copyLines(state.lines);
  const unchanged = { writes, order, lines, changed: false };
  if (order.status === 'paid' || (order.status === 'cancelled' && order.needs_refund)) return unchanged;
  if (order.status === 'cancelled' && order.cancel_reason === 'merchant') {
    throw refuse.orderClosed(
      order.id,
      order.status,
      'the merchant cancelled it, so a payment for it is not taken. Refund the payment at the payment provider.',
    );
  }
  const short: ShortLine[] = [];
  const freed = new Set<string>();
  for (const line of lines) {
    const row = state.products.get(line.sku);
    if (!row?.track_stock) continue;
    const need = line.quantity - line.held;
    if (need > 0) freeExpired(writes, freed, state.expired, line.sku, order.cart_id);
    if (need > writes.available(line.sku)) {
      short.push({
        sku: line.sku,
        requested: line.quantity,
        available: Math.max(0, writes.available(line.sku)),
      });
    }
  }
  const reference = state.reference;
  if (short.length > 0) {
    // Nothing is sold: whatever the order still held goes back, and the merchant is told to refund.
    releaseOrder(writes, order, lines, 'expire', PAYMENT_TIMEOUT);
    const cancelled = order.status === 'cancelled';
    return {
      writes,
      lines,
      changed: true,
      order: {
        ...order,
        status: 'cancelled',
        cancelled_at: cancelled ? order.cancelled_at : (order.pay_by ?? now),
        cancel_reason: cancelled ? order.cancel_reason : 'payment_timeout',
        payment_reference: reference,
        needs_refund: true,
      },
    };
  }
  for (const line of lines) {
    const tracked = Boolean(state.products.get(line.sku)?.track_stock);
    const onHand = tracked ? -line.quantity : 0;
    if (tracked || line.held > 0) writes.changeStock(line.sku, onHand, 0 - line.held, true);
    writes.addChannel(order.channel, -line.held);
    if (line.held > 0) writes.setOrderHeld(order.id, line.sku, 0);
    writes.record({
      sku: line.sku,
      kind: 'sale',
      quantity: line.quantity,
      on_hand_delta: onHand,
      reserved_delta: 0 - line.held,
      cart_id: order.cart_id,
      order_id: order.id,
      channel: order.channel,
      note: order.status === 'cancelled' ? 'late payment' : null,
    });
    line.held = 0;
  }
  return {
    writes,
    lines,
    changed: true,
    order: {
      ...order,
      status: 'paid',
      paid_at: now,
      cancelled_at: null,
      cancel_reason: null,
      payment_reference: reference,
    },
  };
}

/**
 * Cancels an order. Awaiting payment: its holds are freed (`release`; `expire` when the payment session expired).
 * Paid (by the merchant only): with `restock` its units come back to on-hand (`return`), without they stay
 * written off; the refund itself happens at the payment provider. A cancelled order is returned unchanged, and a
 * payment session's expiry never cancels an order that was paid.
 */
export function decideCancelOrder(
  state: OrderState & { restock: boolean; reason: Exclude<CancelReason, 'payment_timeout'> },
): OrderDecision {
  const { now, order } = state;
  const writes = new Writes(state.products);
  const lines = copyLines(state.lines);
  const unchanged = { writes, order, lines, changed: false };
  if (order.status === 'cancelled') return unchanged;
  if (order.status === 'paid') {
    if (state.reason !== 'merchant') return unchanged;
    if (state.restock) {
      for (const line of lines) {
        // An untracked line's return is recorded too, with no stock delta, as its sale was.
        const tracked = Boolean(state.products.get(line.sku)?.track_stock);
        if (tracked) writes.changeStock(line.sku, line.quantity, 0, true);
        writes.record({
          sku: line.sku,
          kind: 'return',
          quantity: line.quantity,
          on_hand_delta: tracked ? line.quantity : 0,
          reserved_delta: 0,
          cart_id: order.cart_id,
          order_id: order.id,
          channel: order.channel,
          note: 'order cancelled',
        });
      }
    }
  } else {
    releaseOrder(
      writes,
      order,
      lines,
      state.reason === 'payment_expired' ? 'expire' : 'release',
      state.reason,
    );
  }
  return {
    writes,
    lines,
    changed: true,
    order: { ...order, status: 'cancelled', cancelled_at: now, cancel_reason: state.reason },
  };
}

/**
 * The sweeper's batch of orders past pay_by: every hold freed (`expire`, noted payment_timeout), each order
 * cancelled for timeout as of its pay_by.
 */
export function decideOrderTimeouts(
  orders: readonly { order: StoredOrder; lines: readonly StoredOrderLine[] }[],
  products: ReadonlyMap<string, ProductRow>,
): { writes: Writes; orders: StoredOrder[]; units: number } {
  const writes = new Writes(products);
  const after: StoredOrder[] = [];
  let units = 0;
  for (const { order, lines } of orders) {
    units += lines.reduce((sum, line) => sum + Math.max(0, line.held), 0);
    releaseOrder(writes, order, copyLines(lines), 'expire', PAYMENT_TIMEOUT);
    after.push({
      ...order,
      status: 'cancelled',
      cancelled_at: order.pay_by ?? order.created_at,
      cancel_reason: 'payment_timeout',
    });
  }
  return { writes, orders: after, units };
}

/** What a shopper (or the model reading to them) is told after a checkout. */
export function orderSummary(order: OrderView): string {
  const id = `Order ${order.order_id} (${order.total_display})`;
  if (order.status === 'paid') return `${id} is paid.`;
  if (order.status === 'cancelled') {
    const refund = order.needs_refund ? ' A payment arrived too late; the merchant will refund it.' : '';
    return `${id} is cancelled (${(order.cancel_reason ?? 'cancelled').replace('_', ' ')}).${refund}`;
  }
  const by = order.pay_by ? ` by ${order.pay_by.slice(11, 16)} UTC (${order.pay_by})` : '';
  const where = order.payment_url
    ? `Pay at ${order.payment_url}${by}`
    : order.payment_instructions
      ? `To pay${by}: ${order.payment_instructions}`
      : `Pay${by} as the shop tells you`;
  return `${id} awaits payment. ${where}; the items are held until then.`;
}
