// The order operations, written once for both dialects like the stock ones (operations.ts): checkout in the
// channel's mode, a payment's confirmation, cancellation, a provider's link attached after the commit, the
// sweeper's batch of orders past pay_by, each channel's checkout mode; and the reads of orders.

import { checkoutModeOf, oauthChannels } from '../../domain/channels.js';
import { refuse } from '../../domain/errors.js';
import {
  decideCancelOrder,
  decideConfirmPayment,
  decideOrderCheckout,
  decideOrderTimeouts,
  orderView,
  type StoredOrder,
  type StoredOrderLine,
} from '../../domain/orders.js';
import { newId } from '../../domain/rules.js';
import type { CallContext, ChannelSetting, CheckoutMode, OrderView } from '../../domain/types.js';
import { holderOf, keyedCall } from '../shared.js';
import type {
  CancelledOrder,
  CancelOrderInput,
  CheckoutInput,
  ConfirmPaymentInput,
  OrderFilter,
  PaymentAttachment,
} from '../store.js';
import { type Engine, type Operation, type Reader, step } from './engine.js';
import { remember, replay } from './operations.js';

export function* orderViewOf(r: Reader, order: StoredOrder, now: number): Operation<OrderView> {
  return orderView(order, yield* step(r.orderLines(order.id)), now);
}

/** A channel's checkout mode: the merchant's setting, else payment when an OAuth host signs in as it. */
export function* checkoutModeFor(r: Reader, channel: string): Operation<CheckoutMode> {
  const setting = yield* step(r.channelMode(channel));
  if (setting) return setting;
  return checkoutModeOf(undefined, oauthChannels(yield* step(r.hostRules())).has(channel));
}

/**
 * The cart becomes an order in its channel's mode, read inside the transaction: the sale (direct), or an order
 * awaiting payment that now holds the cart's units (payment). A repeat, by key or on the checked-out cart,
 * answers with the order as it is now (paid since, or with its payment link attached).
 */
export function* checkout(
  e: Engine,
  rules: { paymentWindowMs: number },
  ctx: CallContext,
  input: CheckoutInput,
): Operation<OrderView> {
  const call = keyedCall(ctx, 'checkout', input.idempotencyKey, [input.cartId]);
  const replayed = (yield* replay(e, call)) as OrderView | undefined;
  if (replayed) {
    const order = yield* step(e.order(replayed.order_id));
    return order ? yield* orderViewOf(e, order, yield* step(e.now())) : replayed;
  }
  const cart = yield* step(e.lockCart(ctx, input.cartId));
  if (!cart) throw refuse.cartNotFound(input.cartId);
  const now = yield* step(e.now());
  if (cart.status === 'checked_out') {
    const order = yield* step(e.orderForCart(cart.id));
    if (!order) throw new Error(`checked-out cart ${cart.id} has no order`);
    const view = yield* orderViewOf(e, order, now);
    yield* remember(e, call, view);
    return view;
  }
  if (cart.status === 'released') throw refuse.cartClosed(cart.id, cart.status);
  const lines = yield* step(e.lines(cart.id));
  yield* step(e.lockProducts(lines.map((line) => line.sku)));
  const freed = lines.filter((line) => line.held < line.quantity).map((line) => line.sku);
  const decision = decideOrderCheckout({
    now,
    channel: ctx.channel,
    holder: holderOf(ctx),
    cart,
    lines,
    products: e.products,
    expired: yield* step(e.expiredHolds(freed, cart.id)),
    orderId: newId('ord_'),
    mode: yield* checkoutModeFor(e, ctx.channel),
    paymentWindowMs: rules.paymentWindowMs,
  });
  yield* step(e.apply(decision.writes));
  yield* step(e.insertOrder(decision.order, decision.lines));
  yield* step(e.closeCarts('checked_out', [cart.id]));
  const view = orderView(decision.order, decision.lines, now);
  yield* remember(e, call, view);
  return view;
}

/** The order locked (the caller's, or any for an admin), its lines, and its tracked products locked. */
function* lockedOrder(e: Engine, ctx: CallContext, orderId: string) {
  const order = yield* step(e.lockOrder(ctx, orderId));
  if (!order) throw refuse.orderNotFound(orderId);
  const now = yield* step(e.now());
  const lines = yield* step(e.orderLines(order.id));
  yield* step(e.lockProducts(lines.map((line) => line.sku)));
  return { order, lines, now };
}

function* saved(
  e: Engine,
  decision: {
    order: StoredOrder;
    lines: StoredOrderLine[];
    changed: boolean;
    writes: Parameters<Engine['apply']>[0];
  },
  now: number,
): Operation<OrderView> {
  if (decision.changed) {
    yield* step(e.apply(decision.writes));
    yield* step(e.saveOrder(decision.order));
  }
  return orderView(decision.order, decision.lines, now);
}

export function* confirmPayment(
  e: Engine,
  ctx: CallContext,
  input: ConfirmPaymentInput,
): Operation<OrderView> {
  const { order, lines, now } = yield* lockedOrder(e, ctx, input.orderId);
  // A late payment takes its units from what is free now, other carts' expired holds included.
  const taking = lines.filter((line) => line.held < line.quantity && e.products.get(line.sku)?.track_stock);
  const expired = yield* step(
    e.expiredHolds(
      taking.map((line) => line.sku),
      order.cart_id,
    ),
  );
  const decision = decideConfirmPayment({
    now,
    order,
    lines,
    products: e.products,
    reference: input.reference,
    expired,
  });
  return yield* saved(e, decision, now);
}

/** `cancelled` receives the order when it stopped awaiting payment (emptied first: a retried transaction runs again). */
export function* cancelOrder(
  e: Engine,
  ctx: CallContext,
  input: CancelOrderInput,
  cancelled: CancelledOrder[] = [],
): Operation<OrderView> {
  cancelled.length = 0;
  const { order, lines, now } = yield* lockedOrder(e, ctx, input.orderId);
  const reason = input.reason ?? 'merchant';
  const decision = decideCancelOrder({
    now,
    order,
    lines,
    products: e.products,
    restock: input.restock,
    reason,
  });
  if (decision.changed && order.status === 'awaiting_payment') cancelled.push(cancelledOf(decision.order));
  return yield* saved(e, decision, now);
}

const cancelledOf = (order: StoredOrder): CancelledOrder => ({
  order_id: order.id,
  payment_reference: order.payment_reference,
  cancel_reason: order.cancel_reason ?? 'merchant',
});

/** A provider's link, instructions or reference, stored on the order after its checkout committed. */
export function* attachPayment(e: Engine, orderId: string, payment: PaymentAttachment): Operation<OrderView> {
  const order = yield* step(e.lockOrder({ channel: 'payments', admin: true }, orderId));
  if (!order) throw refuse.orderNotFound(orderId);
  const now = yield* step(e.now());
  const after: StoredOrder = {
    ...order,
    payment_url: payment.url === undefined ? order.payment_url : payment.url,
    payment_instructions:
      payment.instructions === undefined ? order.payment_instructions : payment.instructions,
    payment_reference: payment.reference === undefined ? order.payment_reference : payment.reference,
  };
  yield* step(e.saveOrder(after));
  return yield* orderViewOf(e, after, now);
}

/** One batch of the sweeper: orders past pay_by give their units back (expire) and close as cancelled. */
export function* sweepOrdersBatch(
  e: Engine,
  batchSize: number,
  cancelled: CancelledOrder[] = [],
): Operation<{ orders: number; units: number }> {
  cancelled.length = 0;
  yield* step(e.now());
  const overdue = yield* step(e.overdueOrders(batchSize));
  if (overdue.length === 0) return { orders: 0, units: 0 };
  // These orders are locked, so their lines' holds stand.
  const held = overdue.flatMap(({ lines }) => lines.filter((line) => line.held > 0).map((line) => line.sku));
  yield* step(e.lockProducts(held));
  const decision = decideOrderTimeouts(overdue, e.products);
  yield* step(e.apply(decision.writes));
  for (const order of decision.orders) {
    yield* step(e.saveOrder(order));
    cancelled.push(cancelledOf(order));
  }
  return { orders: overdue.length, units: decision.units };
}

export function* setCheckoutMode(e: Engine, channel: string, mode: CheckoutMode): Operation<ChannelSetting> {
  yield* step(e.now());
  yield* step(e.saveChannelMode(channel, mode));
  return { channel, checkout: mode, explicit: true };
}

// ---------------------------------------------------------------- reads

/** A customer's own order (its channel and holder), or any for an admin; others are not found. */
export function* readOrder(r: Reader, ctx: CallContext, orderId: string, now: number): Operation<OrderView> {
  const order = yield* step(r.order(orderId));
  const visible = order && (ctx.admin || (order.channel === ctx.channel && order.holder === holderOf(ctx)));
  if (!visible) throw refuse.orderNotFound(orderId);
  return yield* orderViewOf(r, order, now);
}

export function* readOrders(r: Reader, filter: OrderFilter, now: number): Operation<OrderView[]> {
  const query = {
    status: filter.status ?? null,
    channel: filter.channel ?? null,
    limit: filter.limit ?? 100,
    now,
  };
  const orders = yield* step(r.orders(query));
  if (orders.length === 0) return [];
  const lines = yield* step(r.linesOfOrders(orders.map((order) => order.id)));
  return orders.map((order) =>
    orderView(
      order,
      lines.filter((line) => line.order_id === order.id),
      now,
    ),
  );
}

/** The order a checked-out cart made. */
export function* readOrderForCart(r: Reader, cartId: string, now: number): Operation<OrderView> {
  const order = yield* step(r.orderForCart(cartId));
  if (!order) throw new Error(`checked-out cart ${cartId} has no order`);
  return yield* orderViewOf(r, order, now);
}

export function* readOrderByReference(
  r: Reader,
  reference: string,
  now: number,
): Operation<OrderView | undefined> {
  const order = yield* step(r.orderByReference(reference));
  return order ? yield* orderViewOf(r, order, now) : undefined;
}

/** Every channel the store knows (a setting, an OAuth host's, a live token's) with the mode it checks out in. */
export function* readChannelSettings(r: Reader): Operation<ChannelSetting[]> {
  const set = new Map((yield* step(r.channelModes())).map((row) => [row.channel, row.checkout]));
  const mapped = oauthChannels(yield* step(r.hostRules()));
  const names = new Set([...set.keys(), ...mapped, ...(yield* step(r.tokenChannels()))]);
  return [...names].sort().map((channel) => {
    const setting = set.get(channel);
    return {
      channel,
      checkout: checkoutModeOf(setting, mapped.has(channel)),
      explicit: setting !== undefined,
    };
  });
}
