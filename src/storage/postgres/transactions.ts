// The PostgreSQL store's transactions: lock and read in PostgreSQL's way, call the domain decision, apply its
// writes. The transaction around them (BEGIN, retries, the flush) is the store's (store.ts).
import type { DatabaseTime } from '../../domain/clock.js';
import {
  addToCartHoldSkus,
  addToCartInputs,
  assertCurrencyChange,
  assertTrackingSwitch,
  changeOnHand,
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
import { RetryTransaction } from './errors.js';
import { S, type Statement } from './statements.js';
import type { Tx } from './tx.js';

/*
 * Time: every server decides expiry by the database's clock (see DatabaseTime), read once a transaction's
 * first row lock (its cart, or its product) is granted and kept for the whole transaction.
 *
 * Lock order, the same in every write transaction, so that waits cannot form a cycle:
 *   idempotency key (advisory) → cart row → product rows in SKU order → channel_holds rows in channel order.
 * Product rows are locked with one `ORDER BY sku COLLATE "C" FOR UPDATE`. Channel rows are written by one
 * statement at the end (flush), in channel order; after it only the idempotency record is written, and no
 * other transaction can be writing that one (its key lock came first), so nothing waits holding a channel row.
 * `cart_lines.held` changes only under both its product's row lock and its cart's row lock: freeing another
 * cart's expired hold takes that cart's lock with SKIP LOCKED (never waiting, so the order holds), and skips a
 * cart someone else has locked. So a writer holding a cart lock can trust its lines' holds without locking
 * their products, and no cart's hold is freed while its owner is extending it.
 */

type Flush = (
  tx: Tx,
  capCheck?: { channel: string; adding: number; cartId: string; reviving: boolean },
) => Promise<void>;

export class Transactions {
  constructor(
    private readonly options: StoreOptions,
    private readonly flush: Flush,
    private readonly query: <T>(statement: Statement, values: unknown[]) => Promise<T[]>,
    private readonly databaseTime: () => DatabaseTime,
  ) {}

  /** Locks the rows of these SKUs in SKU order; rows that do not exist are simply absent. */
  async lockProducts(tx: Tx, skus: Iterable<string>): Promise<void> {
    const wanted = [...new Set(skus)].filter((sku) => !tx.products.has(sku));
    if (wanted.length === 0) return;
    const rows =
      wanted.length === 1
        ? await tx.locked<ProductRow>(S.lockProduct, [wanted[0]])
        : await tx.locked<ProductRow>(S.lockProducts, [wanted]);
    for (const row of rows) tx.products.set(row.sku, row);
  }

  /** The locked product row (locking it if this transaction has not yet). */
  async requireProduct(tx: Tx, sku: string, activeOnly = true): Promise<ProductRow> {
    if (!tx.products.has(sku)) await this.lockProducts(tx, [sku]);
    const product = tx.products.get(sku);
    if (!product || (activeOnly && !product.active)) throw refuse.unknownSku(sku);
    return product;
  }

  async updateProduct(tx: Tx, statement: Statement, values: unknown[]): Promise<ProductRow | undefined> {
    const row = await tx.row<ProductRow>(statement, values);
    if (row) tx.products.set(row.sku, row);
    return row;
  }

  async expiredHeld(tx: Tx, sku: string, now: number): Promise<number> {
    return (await tx.row<{ held: number }>(S.expiredHeldSum, [sku, now]))?.held ?? 0;
  }

  /**
   * Expired holds of other carts on these SKUs (whose rows this transaction has locked), each of those carts
   * locked with SKIP LOCKED: one another transaction has locked is left to it.
   */
  async expiredOf(tx: Tx, skus: Iterable<string>, keepCartId?: string): Promise<ExpiredHolds> {
    const holds = new Map<string, Hold[]>();
    for (const sku of new Set(skus)) {
      holds.set(sku, await tx.rows<Hold>(S.expiredHolds, [sku, tx.now, keepCartId ?? null]));
    }
    return holds;
  }

  /** Applies a decision's row changes in one round trip; its ledger rows and counters wait for the flush. */
  async apply(tx: Tx, writes: Writes): Promise<void> {
    const stock = [...writes.stock].filter(([, d]) => d.touched || d.onHand !== 0 || d.reserved !== 0);
    const held = [...writes.held.values()];
    if (stock.length > 0 || held.length > 0) {
      const rows = await tx.rows<ProductRow>(S.applyRows, [
        tx.now,
        stock.map(([sku]) => sku),
        stock.map(([, d]) => d.onHand),
        stock.map(([, d]) => d.reserved),
        stock.map(([, d]) => d.touched),
        held.map((line) => line.cart_id),
        held.map((line) => line.sku),
        held.map((line) => line.held),
      ]);
      for (const row of rows) tx.products.set(row.sku, row);
    }
    for (const [channel, delta] of writes.channels) tx.addChannel(channel, delta);
    tx.movements.push(...writes.movements);
  }

  /** The cart, locked inside a transaction (which then has its time); outside one, with the database's time. */
  async loadCart(
    tx: Tx | undefined,
    ctx: CallContext,
    cartId: string,
  ): Promise<StoredCart & { now: number }> {
    const time = this.databaseTime();
    const [cart] = tx
      ? await tx.locked<StoredCart & { now: number }>(S.lockCart, [cartId, ctx.channel, holderOf(ctx)])
      : await this.query<StoredCart & { now: number }>(S.cart, [
          cartId,
          ctx.channel,
          holderOf(ctx),
          time.fixedAt,
          time.offsetMs,
        ]);
    if (!cart) throw refuse.cartNotFound(cartId);
    return cart;
  }

  async replay(tx: Tx, call: KeyedCall | undefined): Promise<unknown> {
    if (!call) return undefined;
    await tx.run(S.keyLock, [JSON.stringify([call.channel, call.tool, call.key])]);
    const values = [call.channel, call.tool, call.key];
    return replayOf(call, await tx.row<{ fingerprint: string; result: string }>(S.idempotency, values));
  }

  async remember(tx: Tx, call: KeyedCall | undefined, result: unknown, now: number): Promise<void> {
    if (!call) return;
    const { channel, tool, key, print } = call;
    await tx.run(S.saveIdempotency, [channel, tool, key, print, JSON.stringify(result), now]);
  }

  async addToCartTx(tx: Tx, ctx: CallContext, input: AddToCartInput): Promise<CartView> {
    const call = keyedCall(ctx, 'add_to_cart', input.idempotencyKey, [
      input.sku,
      input.quantity,
      input.cartId ?? null,
    ]);
    const replayed = await this.replay(tx, call);
    if (replayed) return replayed as CartView;
    // An OAuth holder's adds take turns (after the key's lock, before any row lock), so the holds its cap
    // counts cannot grow under it. Nothing else waits on this lock.
    if (ctx.holder) await tx.run(S.holderLock, [JSON.stringify([ctx.channel, ctx.holder])]);

    // The cart row is locked before any product row, and its lines read under that lock (their holds stand,
    // see the lock order above). An expired cart then locks every line's product at once, a live one those
    // of lines that hold less than their quantity.
    let cart: StoredCart | undefined;
    let lines: StoredLine[] = [];
    if (input.cartId !== undefined) {
      cart = (await tx.locked<StoredCart>(S.lockCart, [input.cartId, ctx.channel, holderOf(ctx)]))[0];
      if (cart && cart.status !== 'checked_out' && cart.status !== 'released') {
        lines = await tx.rows<StoredLine>(S.lines, [cart.id]);
        const expired = effectiveStatus(cart, tx.now) === 'expired';
        const short = lines.filter((line) => expired || line.held < line.quantity);
        await this.lockProducts(tx, [input.sku, ...short.map((line) => line.sku)]);
      }
    }
    await this.lockProducts(tx, [input.sku]);
    // Set by the lock just taken; an unknown SKU locked nothing, and is refused before the time matters.
    const now = await tx.clock();
    const { reservationTtlMs: ttlMs, limits } = this.options;
    const state = addToCartInputs({ now, channel: ctx.channel, ttlMs, limits }, input, {
      cart,
      lines,
      products: tx.products,
    });
    // Only a decision that gets as far as holding needs the expired holds: refusals come first.
    const decision = decideAddToCart({
      ...state,
      expired: tx.products.get(input.sku)?.active
        ? await this.expiredOf(tx, addToCartHoldSkus(state), cart?.id)
        : new Map(),
    });
    const { cart: after, line } = decision;
    if (ctx.holder) {
      const held = await tx.row<{ held: number }>(S.holderHeld, [ctx.channel, ctx.holder, now, after.id]);
      checkHolderCap(this.options.limits, ctx.holder, {
        held: held?.held ?? 0,
        adding: decision.adding,
        reviving: decision.reviving,
      });
    }
    await this.apply(tx, decision.writes);
    let view: CartView;
    if (decision.isNew) {
      await tx.run(S.insertCartWithLine, [
        after.id,
        ctx.channel,
        after.currency,
        now,
        after.expires_at,
        line.sku,
        line.quantity,
        line.held,
        holderOf(ctx),
      ]);
      // A new cart holds just this line.
      const product = tx.products.get(line.sku) as ProductRow;
      const only: LineRow = {
        sku: line.sku,
        name: product.name,
        quantity: line.quantity,
        unit_price_minor: product.price_minor,
      };
      view = cartView(after, [only], now, null);
    } else {
      await tx.run(S.upsertLine, [after.id, line.sku, line.quantity, line.held]);
      await tx.run(S.touchCart, ['open', after.currency, now, after.expires_at, after.id]);
      view = await this.cartViewOf(tx, after, now, null);
    }
    // The per-channel cap is decided under the channel row's lock, taken last.
    await this.flush(tx, {
      channel: ctx.channel,
      adding: decision.adding,
      cartId: after.id,
      reviving: decision.reviving,
    });
    await this.remember(tx, call, view, now);
    return view;
  }

  async checkoutTx(tx: Tx, ctx: CallContext, input: CheckoutInput): Promise<OrderView> {
    const call = keyedCall(ctx, 'checkout', input.idempotencyKey, [input.cartId]);
    const replayed = await this.replay(tx, call);
    if (replayed) return replayed as OrderView;

    const cart = await this.loadCart(tx, ctx, input.cartId);
    const { now } = tx;
    if (cart.status === 'checked_out') {
      // Checkout is idempotent on the cart: a repeat returns the order it made.
      const order = await this.orderOf(tx, cart.id);
      await this.remember(tx, call, order, now);
      return order;
    }
    if (cart.status === 'released') throw refuse.cartClosed(cart.id, cart.status);
    const lines = await tx.rows<StoredLine>(S.lines, [cart.id]);
    await this.lockProducts(
      tx,
      lines.map((line) => line.sku),
    );
    const { writes, order, sold } = decideCheckout({
      now,
      channel: ctx.channel,
      cart,
      lines,
      products: tx.products,
      expired: await this.expiredOf(tx, unheldLines(lines, tx.products), cart.id),
      orderId: newId('ord_'),
    });
    await this.apply(tx, writes);
    await tx.run(S.insertOrder, [order.id, cart.id, ctx.channel, order.total, order.currency, now]);
    await tx.run(S.insertOrderLines, [
      order.id,
      sold.map((l) => l.sku),
      sold.map((l) => l.name),
      sold.map((l) => l.quantity),
      sold.map((l) => l.unit_price_minor),
    ]);
    await tx.run(S.closeCarts, ['checked_out', now, [cart.id]]);
    const view = orderView(order, sold);
    await this.flush(tx);
    await this.remember(tx, call, view, now);
    return view;
  }

  async releaseTx(tx: Tx, ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult> {
    const cart = await this.loadCart(tx, ctx, input.cartId);
    const { now } = tx;
    const open = cart.status === 'open' || cart.status === 'expired';
    const lines = open ? await tx.rows<StoredLine>(S.lines, [cart.id]) : [];
    // Holds change under their product's lock too.
    await this.lockProducts(
      tx,
      lines.filter((line) => line.held > 0 && (input.sku ?? line.sku) === line.sku).map((line) => line.sku),
    );
    const decision = decideRelease(cart, lines, tx.products, input.sku);
    await this.apply(tx, decision.writes);
    for (const sku of decision.deleted) await tx.run(S.deleteLine, [cart.id, sku]);
    if (decision.status !== cart.status) {
      cart.status = decision.status;
      await tx.run(S.closeCarts, [decision.status, now, [cart.id]]);
    }
    return { cart: await this.cartViewOf(tx, cart, now, null), released: decision.released };
  }

  async sweepBatchTx(tx: Tx, batchSize: number): Promise<SweepResult> {
    // Read before the carts are locked: a cart another writer extends meanwhile is checked again under its
    // lock (FOR UPDATE re-reads the row), so an early time only ever sweeps less.
    const now = await tx.clock();
    const carts = await tx.rows<{ id: string; channel: string }>(S.expiredCarts, [now, batchSize]);
    if (carts.length === 0) return { carts: 0, units: 0 };
    const ids = carts.map((cart) => cart.id);
    // These carts are locked, so their lines' holds stand (see the lock order above).
    const held = await tx.rows<{ cart_id: string; sku: string; held: number }>(S.heldLinesOf, [ids]);
    await this.lockProducts(
      tx,
      held.map((line) => line.sku),
    );
    const linesOf = (id: string) =>
      held.filter((line) => line.cart_id === id).map((line) => ({ ...line, quantity: line.held }));
    const { writes, units } = decideSweep(
      carts.map((cart) => ({ ...cart, lines: linesOf(cart.id) })),
      tx.products,
    );
    await this.apply(tx, writes);
    await tx.run(S.closeCarts, ['expired', now, ids]);
    return { carts: carts.length, units };
  }

  /** set_stock and import: the SKU's expired holds freed, then on-hand set (never below what carts hold). */
  async setOnHand(
    tx: Tx,
    channel: string,
    sku: string,
    onHand: number,
    kind: 'adjust' | 'import',
    note: string | null,
  ): Promise<void> {
    await this.requireProduct(tx, sku, false);
    const writes = new Writes(tx.products);
    decideOnHand(writes, await this.expiredOf(tx, [sku]), { sku, onHand, kind, channel, note });
    await this.apply(tx, writes);
  }

  /** Returns whether the product existed. */
  async upsertLocked(tx: Tx, input: ProductInput): Promise<boolean> {
    assertProduct(input);
    await this.lockProducts(tx, [input.sku]);
    const now = await tx.clock();
    const existing = tx.products.get(input.sku);
    const change = productChange(existing, input);
    if (change.switchesTracking) {
      const writes = new Writes(tx.products);
      freeExpiredHolds(writes, await this.expiredOf(tx, [input.sku]), input.sku);
      await this.apply(tx, writes);
      const live = (await tx.row<{ carts: number }>(S.liveCartsWithSku, [input.sku, now]))?.carts ?? 0;
      const { reserved } = tx.products.get(input.sku) as ProductRow;
      assertTrackingSwitch(input.sku, change.trackStock, reserved, live);
    }
    if (change.changesCurrency) {
      const carts = (await tx.row<{ carts: number }>(S.cartsWithSku, [input.sku]))?.carts ?? 0;
      assertCurrencyChange(input.sku, carts);
    }
    const { sku, name, price_minor, currency } = input;
    const values = [
      sku,
      name,
      change.description,
      price_minor,
      currency,
      change.trackStock,
      change.active,
      now,
    ];
    if (existing) {
      await this.updateProduct(tx, S.updateProduct, values);
      return true;
    }
    // A concurrent call created the row after our lock found none: start again and update it instead.
    if (!(await this.updateProduct(tx, S.insertProduct, values))) throw new RetryTransaction();
    return false;
  }

  async cartViewOf(
    tx: Tx | undefined,
    cart: CartRow,
    now: number,
    orderId: string | null,
  ): Promise<CartView> {
    const lines = tx
      ? await tx.rows<LineRow>(S.lineViews, [cart.id])
      : await this.query<LineRow>(S.lineViews, [cart.id]);
    return cartView(cart, lines, now, orderId);
  }

  async orderOf(tx: Tx | undefined, cartId: string): Promise<OrderView> {
    type StoredOrder = { id: string; cart_id: string; channel: string; currency: string; created_at: number };
    const order = tx
      ? await tx.row<StoredOrder>(S.orderForCart, [cartId])
      : (await this.query<StoredOrder>(S.orderForCart, [cartId]))[0];
    if (!order) throw new Error(`checked-out cart ${cartId} has no order`);
    const lines = tx
      ? await tx.rows<LineRow>(S.orderLines, [order.id])
      : await this.query<LineRow>(S.orderLines, [order.id]);
    return orderView(order, lines);
  }

  async level(tx: Tx, sku: string, now: number): Promise<StockLevel> {
    return stockLevel(await this.requireProduct(tx, sku, false), await this.expiredHeld(tx, sku, now));
  }

  async restock(tx: Tx, ctx: CallContext, change: StockChange): Promise<StockLevel> {
    await this.requireProduct(tx, change.sku, false);
    const writes = new Writes(tx.products);
    changeOnHand(writes, change.sku, 'restock', change.quantity, ctx.channel, change.note ?? null);
    await this.apply(tx, writes);
    return this.level(tx, change.sku, tx.now);
  }

  async setStock(tx: Tx, ctx: CallContext, change: StockChange): Promise<StockLevel> {
    await this.setOnHand(tx, ctx.channel, change.sku, change.quantity, 'adjust', change.note ?? null);
    return this.level(tx, change.sku, tx.now);
  }

  async upsert(tx: Tx, product: ProductInput): Promise<ProductView> {
    await this.upsertLocked(tx, product);
    const row = await this.requireProduct(tx, product.sku, false);
    return productView(row, await this.expiredHeld(tx, product.sku, tx.now));
  }

  async importRows(
    tx: Tx,
    ctx: CallContext,
    rows: ImportRow[],
    options: ImportOptions,
  ): Promise<ImportResult> {
    // Existing rows are locked up front in SKU order; new ones are created as the rows come.
    await this.lockProducts(
      tx,
      rows.map((row) => row.sku),
    );
    const result: ImportResult = { created: 0, updated: 0, stock: [] };
    for (const [index, row] of rows.entries()) {
      try {
        const before = tx.products.get(row.sku)?.on_hand ?? null;
        const existed = await this.upsertLocked(tx, row);
        result[existed ? 'updated' : 'created'] += 1;
        const onHand = importedOnHand(before, row.stock, options);
        if (onHand !== undefined) {
          await this.setOnHand(tx, ctx.channel, row.sku, onHand, 'import', 'catalog import');
        }
        const after = (await this.requireProduct(tx, row.sku, false)).on_hand;
        result.stock.push({ sku: row.sku, before, file: row.stock ?? null, after });
      } catch (error) {
        // DESIGN: import errors name the line, also when a row fails only inside the transaction.
        throw inRow(error, index);
      }
    }
    return result;
  }
}
