// The SQLite store's transactions: read under BEGIN IMMEDIATE's lock, call the domain decision, apply its
// writes. Running them (the writers queue, the lock, retries, the clock) is the store's (store.ts).
import {
  addToCartHoldSkus,
  addToCartInputs,
  assertCurrencyChange,
  assertTrackingSwitch,
  changeOnHand,
  checkChannelCap,
  checkHolderCap,
  decideAddToCart,
  decideCheckout,
  decideOnHand,
  decideRelease,
  decideSweep,
  type ExpiredHolds,
  freeExpiredHolds,
  productChange,
  type StoredCart,
  unheldLines,
} from '../../domain/decisions.js';
import { inRow, refuse } from '../../domain/errors.js';
import { type ImportOptions, importedOnHand } from '../../domain/import-stock.js';
import { assertProduct, newId } from '../../domain/rules.js';
import type {
  CallContext,
  CartView,
  ImportResult,
  ImportRow,
  OrderView,
  ProductInput,
  ProductView,
  ReleaseResult,
  StockLevel,
  SweepResult,
} from '../../domain/types.js';
import {
  type CartRow,
  cartView,
  effectiveStatus,
  type LineRow,
  orderView,
  type ProductRow,
  productView,
  stockLevel,
} from '../../domain/views.js';
import { type Hold, type StoredLine, Writes } from '../../domain/writes.js';
import { holderOf, type KeyedCall, keyedCall, replayOf } from '../shared.js';
import type { AddToCartInput, CheckoutInput, ReleaseInput, StockChange, StoreOptions } from '../store.js';
import type { Statements } from './statements.js';

export class Transactions {
  constructor(
    private readonly s: Statements,
    private readonly options: StoreOptions,
  ) {}

  requireProduct(sku: string, activeOnly = true): ProductRow {
    const product = this.s.product.get(sku) as ProductRow | undefined;
    if (!product || (activeOnly && !product.active)) throw refuse.unknownSku(sku);
    return product;
  }

  expiredHeld(sku: string, now: number): number {
    return (this.s.expiredHeldSum.get(sku, now) as { held: number }).held;
  }

  /** The rows a decision needs, keyed by SKU (rows that do not exist are left out). */
  productsOf(skus: Iterable<string>): Map<string, ProductRow> {
    const rows = new Map<string, ProductRow>();
    for (const sku of skus) {
      const row = this.s.product.get(sku) as ProductRow | undefined;
      if (row) rows.set(sku, row);
    }
    return rows;
  }

  writesFor(rows: ProductRow[]): Writes {
    return new Writes(new Map(rows.map((row) => [row.sku, row])));
  }

  expiredOf(skus: Iterable<string>, now: number): ExpiredHolds {
    const holds = new Map<string, Hold[]>();
    for (const sku of skus) holds.set(sku, this.s.expiredHolds.all(sku, now) as Hold[]);
    return holds;
  }

  /** Applies a decision's writes: counts, holds, channel counters, then the ledger. */
  apply(writes: Writes, now: number): void {
    for (const [sku, delta] of writes.stock) {
      if (delta.touched) this.s.addStock.run(delta.onHand, delta.reserved, now, sku);
      else if (delta.reserved !== 0) this.s.addReserved.run(delta.reserved, sku);
    }
    for (const line of writes.held.values()) this.s.setHeld.run(line.held, line.cart_id, line.sku);
    for (const [channel, delta] of writes.channels) this.s.addChannelHeld.run(channel, delta);
    for (const movement of writes.movements) this.s.movement.run({ at: now, ...movement });
  }

  loadCart(ctx: CallContext, cartId: string): StoredCart {
    const cart = this.s.cart.get(cartId, ctx.channel, holderOf(ctx)) as StoredCart | undefined;
    if (!cart) throw refuse.cartNotFound(cartId);
    return cart;
  }

  replay(call: KeyedCall | undefined): unknown {
    if (!call) return undefined;
    const record = this.s.idempotency.get(call.channel, call.tool, call.key);
    return replayOf(call, record as { fingerprint: string; result: string } | undefined);
  }

  remember(call: KeyedCall | undefined, result: unknown, now: number): void {
    if (!call) return;
    this.s.saveIdempotency.run(call.channel, call.tool, call.key, call.print, JSON.stringify(result), now);
  }

  addToCartLocked(ctx: CallContext, input: AddToCartInput, now: number): CartView {
    const call = keyedCall(ctx, 'add_to_cart', input.idempotencyKey, [
      input.sku,
      input.quantity,
      input.cartId ?? null,
    ]);
    const replayed = this.replay(call);
    if (replayed) return replayed as CartView;

    const cart =
      input.cartId === undefined
        ? undefined
        : (this.s.cart.get(input.cartId, ctx.channel, holderOf(ctx)) as StoredCart | undefined);
    const open = cart !== undefined && cart.status !== 'checked_out' && cart.status !== 'released';
    const lines = open ? (this.s.lines.all(cart.id) as StoredLine[]) : [];
    const reviving = open && effectiveStatus(cart, now) === 'expired';
    const products = this.productsOf([
      input.sku,
      ...lines.filter((line) => reviving || line.held < line.quantity).map((line) => line.sku),
    ]);
    const { reservationTtlMs: ttlMs, limits } = this.options;
    const state = addToCartInputs({ now, channel: ctx.channel, ttlMs, limits }, input, {
      cart,
      lines,
      products,
    });
    const decision = decideAddToCart({ ...state, expired: this.expiredOf(addToCartHoldSkus(state), now) });
    const { cart: after, line } = decision;
    // The channel's counter before this write, less what its other expired carts still hold.
    checkChannelCap(this.options.limits, {
      counted: (this.s.channelHeld.get(ctx.channel) as { held: number } | undefined)?.held ?? 0,
      expiredElsewhere: (this.s.channelExpiredHeld.get(ctx.channel, now, after.id) as { held: number }).held,
      adding: decision.adding,
      reviving: decision.reviving,
    });
    if (ctx.holder) {
      checkHolderCap(this.options.limits, ctx.holder, {
        held: (this.s.holderHeld.get(ctx.channel, ctx.holder, now, after.id) as { held: number }).held,
        adding: decision.adding,
        reviving: decision.reviving,
      });
    }
    if (decision.isNew) {
      this.s.insertCart.run(after.id, ctx.channel, holderOf(ctx), after.currency, now, now, after.expires_at);
    }
    this.apply(decision.writes, now);
    this.s.upsertLine.run(after.id, line.sku, line.quantity, line.held);
    if (!decision.isNew) this.s.touchCart.run('open', after.currency, now, after.expires_at, after.id);

    const view = this.cartViewOf(after, now, null);
    this.remember(call, view, now);
    return view;
  }

  checkoutLocked(ctx: CallContext, input: CheckoutInput, now: number): OrderView {
    const call = keyedCall(ctx, 'checkout', input.idempotencyKey, [input.cartId]);
    const replayed = this.replay(call);
    if (replayed) return replayed as OrderView;

    const cart = this.loadCart(ctx, input.cartId);
    if (cart.status === 'checked_out') {
      // Checkout is idempotent on the cart: a repeat returns the order it made.
      const order = this.orderOf(cart.id);
      this.remember(call, order, now);
      return order;
    }
    if (cart.status === 'released') throw refuse.cartClosed(cart.id, cart.status);
    const lines = this.s.lines.all(cart.id) as StoredLine[];
    const products = this.productsOf(lines.map((line) => line.sku));
    const { writes, order, sold } = decideCheckout({
      now,
      channel: ctx.channel,
      cart,
      lines,
      products,
      expired: this.expiredOf(unheldLines(lines, products), now),
      orderId: newId('ord_'),
    });
    this.apply(writes, now);
    this.s.insertOrder.run(order.id, cart.id, ctx.channel, order.total, order.currency, now);
    for (const line of sold) {
      this.s.insertOrderLine.run(order.id, line.sku, line.name, line.quantity, line.unit_price_minor);
    }
    this.s.closeCart.run('checked_out', now, cart.id);

    const view = orderView(order, sold);
    this.remember(call, view, now);
    return view;
  }

  releaseLocked(ctx: CallContext, input: ReleaseInput, now: number): ReleaseResult {
    const cart = this.loadCart(ctx, input.cartId);
    const lines = cart.status === 'open' || cart.status === 'expired' ? this.s.lines.all(cart.id) : [];
    const decision = decideRelease(cart, lines as StoredLine[], new Map(), input.sku);
    this.apply(decision.writes, now);
    for (const sku of decision.deleted) this.s.deleteLine.run(cart.id, sku);
    if (decision.status !== cart.status) {
      cart.status = decision.status;
      this.s.closeCart.run(decision.status, now, cart.id);
    }
    return { cart: this.cartViewOf(cart, now, null), released: decision.released };
  }

  /** set_stock and import: the SKU's expired holds freed, then on-hand set (never below what carts hold). */
  setOnHand(
    channel: string,
    sku: string,
    onHand: number,
    kind: 'adjust' | 'import',
    note: string | null,
    now: number,
  ): void {
    const writes = this.writesFor([this.requireProduct(sku, false)]);
    decideOnHand(writes, this.expiredOf([sku], now), { sku, onHand, kind, channel, note });
    this.apply(writes, now);
  }

  /** Returns whether the product existed. */
  upsertLocked(input: ProductInput, now: number): boolean {
    assertProduct(input);
    const existing = this.s.product.get(input.sku) as ProductRow | undefined;
    const change = productChange(existing, input);
    if (existing && change.switchesTracking) {
      const writes = this.writesFor([existing]);
      freeExpiredHolds(writes, this.expiredOf([input.sku], now), input.sku);
      this.apply(writes, now);
      const live = (this.s.liveCartsWithSku.get(input.sku, now) as { carts: number }).carts;
      const { reserved } = this.requireProduct(input.sku, false);
      assertTrackingSwitch(input.sku, change.trackStock, reserved, live);
    }
    if (change.changesCurrency) {
      assertCurrencyChange(input.sku, (this.s.cartsWithSku.get(input.sku) as { carts: number }).carts);
    }
    const { sku, name, price_minor, currency } = input;
    this.s.upsertProduct.run({
      sku,
      name,
      price_minor,
      currency,
      description: change.description,
      track_stock: change.trackStock ? 1 : 0,
      active: change.active ? 1 : 0,
      now,
    });
    return existing !== undefined;
  }

  cartViewOf(cart: CartRow, now: number, orderId: string | null): CartView {
    return cartView(cart, this.s.lineViews.all(cart.id) as LineRow[], now, orderId);
  }

  orderOf(cartId: string): OrderView {
    const order = this.s.orderForCart.get(cartId) as
      | { id: string; cart_id: string; channel: string; currency: string; created_at: number }
      | undefined;
    if (!order) throw new Error(`checked-out cart ${cartId} has no order`);
    return orderView(order, this.s.orderLines.all(order.id) as LineRow[]);
  }

  level(sku: string, now: number): StockLevel {
    return stockLevel(this.requireProduct(sku, false), this.expiredHeld(sku, now));
  }

  restock(ctx: CallContext, change: StockChange, now: number): StockLevel {
    const writes = this.writesFor([this.requireProduct(change.sku, false)]);
    changeOnHand(writes, change.sku, 'restock', change.quantity, ctx.channel, change.note ?? null);
    this.apply(writes, now);
    return this.level(change.sku, now);
  }

  setStock(ctx: CallContext, change: StockChange, now: number): StockLevel {
    this.setOnHand(ctx.channel, change.sku, change.quantity, 'adjust', change.note ?? null, now);
    return this.level(change.sku, now);
  }

  upsert(product: ProductInput, now: number): ProductView {
    this.upsertLocked(product, now);
    return productView(this.requireProduct(product.sku, false), this.expiredHeld(product.sku, now));
  }

  importRows(ctx: CallContext, rows: ImportRow[], options: ImportOptions, now: number): ImportResult {
    const result: ImportResult = { created: 0, updated: 0, stock: [] };
    rows.forEach((row, index) => {
      try {
        const before = (this.s.product.get(row.sku) as ProductRow | undefined)?.on_hand ?? null;
        const existed = this.upsertLocked(row, now);
        result[existed ? 'updated' : 'created'] += 1;
        const onHand = importedOnHand(before, row.stock, options);
        if (onHand !== undefined)
          this.setOnHand(ctx.channel, row.sku, onHand, 'import', 'catalog import', now);
        const after = this.requireProduct(row.sku, false).on_hand;
        result.stock.push({ sku: row.sku, before, file: row.stock ?? null, after });
      } catch (error) {
        // DESIGN: import errors name the line, also when a row fails only inside the transaction.
        throw inRow(error, index);
      }
    });
    return result;
  }

  sweepBatch(batchSize: number, now: number): SweepResult {
    const carts = (this.s.expiredCarts.all(now, batchSize) as { id: string; channel: string }[]).map(
      (cart) => ({ ...cart, lines: this.s.lines.all(cart.id) as StoredLine[] }),
    );
    const { writes, units } = decideSweep(carts, new Map());
    this.apply(writes, now);
    for (const cart of carts) this.s.closeCart.run('expired', now, cart.id);
    return { carts: carts.length, units };
  }
}
