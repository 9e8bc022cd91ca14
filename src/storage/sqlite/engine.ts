// SQLite's engine for the stock operations (workflow/operations.ts): one per write, made once BEGIN IMMEDIATE
// holds the file's lock, so every read is already serialised and every answer is synchronous.
import { checkChannelCap, type ExpiredHolds, type StoredCart } from '../../domain/decisions.js';
import type { StoredOrder, StoredOrderLine } from '../../domain/orders.js';
import type { Limits } from '../../domain/rules.js';
import type { CallContext, CheckoutMode } from '../../domain/types.js';
import type { CartRow, LineRow, ProductRow } from '../../domain/views.js';
import type { Hold, StoredLine, Writes } from '../../domain/writes.js';
import { holderOf, type KeyedCall } from '../shared.js';
import type { Engine, ExpiredCart, OrderQuery, OrderRows, ProductWrite, Reader } from '../workflow/engine.js';
import type { Statements } from './statements.js';

/** The reads get_cart shares with the write path. */
export class SqliteReader implements Reader {
  constructor(protected readonly s: Statements) {}

  lineViews(cartId: string): LineRow[] {
    return this.s.lineViews.all(cartId) as LineRow[];
  }

  orderForCart(cartId: string): StoredOrder | undefined {
    return this.s.orderForCart.get(cartId) as StoredOrder | undefined;
  }

  order(orderId: string): StoredOrder | undefined {
    return this.s.order.get(orderId) as StoredOrder | undefined;
  }

  orderByReference(reference: string): StoredOrder | undefined {
    return this.s.orderByReference.get(reference) as StoredOrder | undefined;
  }

  orderLines(orderId: string): StoredOrderLine[] {
    return this.s.orderLines.all(orderId) as StoredOrderLine[];
  }

  orders(query: OrderQuery): StoredOrder[] {
    return this.s.orders.all(query) as StoredOrder[];
  }

  linesOfOrders(orderIds: string[]): (StoredOrderLine & { order_id: string })[] {
    return this.s.linesOfOrders.all(JSON.stringify(orderIds)) as (StoredOrderLine & { order_id: string })[];
  }

  channelMode(channel: string): CheckoutMode | undefined {
    return (this.s.channelMode.get(channel) as { checkout: CheckoutMode } | undefined)?.checkout;
  }

  channelModes(): { channel: string; checkout: CheckoutMode }[] {
    return this.s.channelModes.all() as { channel: string; checkout: CheckoutMode }[];
  }

  hostRules(): { host: string; channel: string | null }[] {
    return this.s.hostRules.all() as { host: string; channel: string | null }[];
  }

  tokenChannels(): string[] {
    return (this.s.tokenChannels.all() as { channel: string }[]).map((row) => row.channel);
  }

  openCartsOf(holder: string): { id: string; channel: string }[] {
    return this.s.openCartsOf.all(holder) as { id: string; channel: string }[];
  }

  awaitingOrdersOf(holder: string): string[] {
    return (this.s.awaitingOrdersOf.all(holder) as { id: string }[]).map((row) => row.id);
  }

  cart(ctx: CallContext, cartId: string): StoredCart | undefined {
    return this.s.cart.get(cartId, ctx.channel, holderOf(ctx)) as StoredCart | undefined;
  }

  expiredHeldAt(sku: string, now: number): number {
    return (this.s.expiredHeldSum.get(sku, now) as { held: number }).held;
  }
}

export class SqliteEngine extends SqliteReader implements Engine {
  /** Rows read in this transaction; a row whose counts apply() changed is dropped, to be read again. */
  readonly products = new Map<string, ProductRow>();

  constructor(
    s: Statements,
    private readonly limits: Limits,
    /** The clock, read once the lock was held. */
    private readonly time: number,
  ) {
    super(s);
  }

  now(): number {
    return this.time;
  }

  readKey(call: KeyedCall): { fingerprint: string; result: string } | undefined {
    return this.s.idempotency.get(call.channel, call.tool, call.key) as
      | { fingerprint: string; result: string }
      | undefined;
  }

  saveKey(call: KeyedCall, result: unknown): void {
    const { channel, tool, key, print } = call;
    this.s.saveIdempotency.run(channel, tool, key, print, JSON.stringify(result), this.time);
  }

  /** Writers of one file already take turns. */
  lockHolder(): void {}

  lockCart(ctx: CallContext, cartId: string): StoredCart | undefined {
    return this.cart(ctx, cartId);
  }

  lines(cartId: string): StoredLine[] {
    return this.s.lines.all(cartId) as StoredLine[];
  }

  lockProducts(skus: Iterable<string>): void {
    for (const sku of skus) {
      if (this.products.has(sku)) continue;
      const row = this.s.product.get(sku) as ProductRow | undefined;
      if (row) this.products.set(sku, row);
    }
  }

  expiredHolds(skus: Iterable<string>): ExpiredHolds {
    const holds = new Map<string, Hold[]>();
    for (const sku of skus) holds.set(sku, this.s.expiredHolds.all(sku, this.time) as Hold[]);
    return holds;
  }

  expiredHeld(sku: string): number {
    return this.expiredHeldAt(sku, this.time);
  }

  /** The channel's counter before this write, less what its other expired carts still hold. */
  checkChannelCap(channel: string, check: { adding: number; reviving: boolean; cartId: string }): void {
    checkChannelCap(this.limits, {
      counted: (this.s.channelHeld.get(channel) as { held: number } | undefined)?.held ?? 0,
      expiredElsewhere: (
        this.s.channelExpiredHeld.get({ channel, now: this.time, cart: check.cartId }) as { held: number }
      ).held,
      adding: check.adding,
      reviving: check.reviving,
    });
  }

  holderHeld(channel: string, holder: string, cartId: string): number {
    return (this.s.holderHeld.get(channel, holder, this.time, cartId) as { held: number }).held;
  }

  holderAwaiting(channel: string, holder: string): number {
    return (this.s.holderAwaiting.get(channel, holder, this.time) as { held: number }).held;
  }

  apply(writes: Writes): void {
    const now = this.time;
    for (const [sku, delta] of writes.stock) {
      if (delta.touched) this.s.addStock.run(delta.onHand, delta.reserved, now, sku);
      else if (delta.reserved !== 0) this.s.addReserved.run(delta.reserved, sku);
      this.products.delete(sku);
    }
    for (const line of writes.held.values()) this.s.setHeld.run(line.held, line.cart_id, line.sku);
    for (const line of writes.orderHeld.values()) this.s.setOrderHeld.run(line.held, line.order_id, line.sku);
    for (const [channel, delta] of writes.channels) this.s.addChannelHeld.run(channel, delta);
    for (const movement of writes.movements) this.s.movement.run({ at: now, ...movement });
  }

  saveCart(ctx: CallContext, cart: CartRow, line: StoredLine, isNew: boolean): void {
    const now = this.time;
    if (isNew) {
      this.s.insertCart.run(cart.id, ctx.channel, holderOf(ctx), cart.currency, now, now, cart.expires_at);
    }
    this.s.upsertLine.run(cart.id, line.sku, line.quantity, line.held);
    if (!isNew) this.s.touchCart.run('open', cart.currency, now, cart.expires_at, cart.id);
  }

  closeCarts(status: string, ids: string[]): void {
    for (const id of ids) this.s.closeCart.run(status, this.time, id);
  }

  deleteLines(cartId: string, skus: string[]): void {
    for (const sku of skus) this.s.deleteLine.run(cartId, sku);
  }

  insertOrder(order: StoredOrder, lines: StoredOrderLine[]): void {
    const { id, cart_id, channel, holder, status, total_minor, currency, created_at, pay_by, paid_at } =
      order;
    this.s.insertOrder.run({
      id,
      cart_id,
      channel,
      holder,
      status,
      total_minor,
      currency,
      created_at,
      pay_by,
      paid_at,
    });
    for (const l of lines) {
      this.s.insertOrderLine.run(id, l.sku, l.name, l.quantity, l.unit_price_minor, l.held);
    }
  }

  lockOrder(ctx: CallContext, orderId: string): StoredOrder | undefined {
    if (ctx.admin) return this.order(orderId);
    return this.s.orderOf.get(orderId, ctx.channel, holderOf(ctx)) as StoredOrder | undefined;
  }

  saveOrder(order: StoredOrder): void {
    const { id, status, paid_at, cancelled_at, cancel_reason, payment_url, payment_instructions } = order;
    this.s.saveOrder.run({
      id,
      status,
      paid_at,
      cancelled_at,
      cancel_reason,
      payment_url,
      payment_instructions,
      payment_reference: order.payment_reference,
      needs_refund: order.needs_refund ? 1 : 0,
    });
  }

  overdueOrders(limit: number): OrderRows[] {
    const orders = this.s.overdueOrders.all(this.time, limit) as StoredOrder[];
    return orders.map((order) => ({ order, lines: this.orderLines(order.id) }));
  }

  saveChannelMode(channel: string, mode: CheckoutMode): void {
    this.s.saveChannelMode.run(channel, mode, this.time);
  }

  expiredCarts(limit: number): ExpiredCart[] {
    const carts = this.s.expiredCarts.all(this.time, limit) as { id: string; channel: string }[];
    return carts.map((cart) => ({ ...cart, lines: this.lines(cart.id) }));
  }

  liveCartsWithSku(sku: string): number {
    return (this.s.liveCartsWithSku.get(sku, this.time) as { carts: number }).carts;
  }

  cartsWithSku(sku: string): number {
    return (this.s.cartsWithSku.get(sku) as { carts: number }).carts;
  }

  writeProduct(product: ProductWrite): void {
    this.s.upsertProduct.run({
      ...product,
      track_stock: product.track_stock ? 1 : 0,
      active: product.active ? 1 : 0,
      now: this.time,
    });
    this.products.delete(product.sku);
  }
}
