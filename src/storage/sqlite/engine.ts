// SQLite's engine for the stock operations (workflow/operations.ts): one per write, made once BEGIN IMMEDIATE
// holds the file's lock, so every read is already serialised and every answer is synchronous.
import { checkChannelCap, type ExpiredHolds, type StoredCart } from '../../domain/decisions.js';
import type { Limits } from '../../domain/rules.js';
import type { CallContext, OrderView } from '../../domain/types.js';
import { type CartRow, type LineRow, orderView, type ProductRow } from '../../domain/views.js';
import type { Hold, StoredLine, Writes } from '../../domain/writes.js';
import { holderOf, type KeyedCall } from '../shared.js';
import type { Engine, ExpiredCart, OrderWrite, ProductWrite, Reader } from '../workflow/engine.js';
import type { Statements } from './statements.js';

/** The reads get_cart shares with the write path. */
export class SqliteReader implements Reader {
  constructor(protected readonly s: Statements) {}

  lineViews(cartId: string): LineRow[] {
    return this.s.lineViews.all(cartId) as LineRow[];
  }

  orderOf(cartId: string): OrderView {
    const order = this.s.orderForCart.get(cartId) as
      | { id: string; cart_id: string; channel: string; currency: string; created_at: number }
      | undefined;
    if (!order) throw new Error(`checked-out cart ${cartId} has no order`);
    return orderView(order, this.s.orderLines.all(order.id) as LineRow[]);
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
      expiredElsewhere: (this.s.channelExpiredHeld.get(channel, this.time, check.cartId) as { held: number })
        .held,
      adding: check.adding,
      reviving: check.reviving,
    });
  }

  holderHeld(channel: string, holder: string, cartId: string): number {
    return (this.s.holderHeld.get(channel, holder, this.time, cartId) as { held: number }).held;
  }

  apply(writes: Writes): void {
    const now = this.time;
    for (const [sku, delta] of writes.stock) {
      if (delta.touched) this.s.addStock.run(delta.onHand, delta.reserved, now, sku);
      else if (delta.reserved !== 0) this.s.addReserved.run(delta.reserved, sku);
      this.products.delete(sku);
    }
    for (const line of writes.held.values()) this.s.setHeld.run(line.held, line.cart_id, line.sku);
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

  insertOrder(order: OrderWrite, sold: LineRow[]): void {
    this.s.insertOrder.run(order.id, order.cart_id, order.channel, order.total, order.currency, this.time);
    for (const line of sold) {
      this.s.insertOrderLine.run(order.id, line.sku, line.name, line.quantity, line.unit_price_minor);
    }
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
