// PostgreSQL's engine for the stock operations (workflow/operations.ts): row locks taken in one global order,
// the database's time, and the ledger and channel counters written last (flush).
import { checkChannelCap, type ExpiredHolds, type StoredCart } from '../../domain/decisions.js';
import type { StoredOrder, StoredOrderLine } from '../../domain/orders.js';
import type { Limits } from '../../domain/rules.js';
import type { CallContext, CheckoutMode } from '../../domain/types.js';
import type { CartRow, LineRow, ProductRow } from '../../domain/views.js';
import type { Hold, StoredLine, Writes } from '../../domain/writes.js';
import { holderOf, type KeyedCall } from '../shared.js';
import type { Engine, ExpiredCart, OrderQuery, OrderRows, ProductWrite, Reader } from '../workflow/engine.js';
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

type Query = <T>(statement: Statement, values: unknown[]) => Promise<T[]>;

/** The reads get_cart shares with the write path, on a pooled connection or inside a transaction. */
export class PostgresReader implements Reader {
  constructor(private readonly query: Query) {}

  async lineViews(cartId: string): Promise<LineRow[]> {
    return this.query<LineRow>(S.lineViews, [cartId]);
  }

  async orderForCart(cartId: string): Promise<StoredOrder | undefined> {
    return (await this.query<StoredOrder>(S.orderForCart, [cartId]))[0];
  }

  async order(orderId: string): Promise<StoredOrder | undefined> {
    return (await this.query<StoredOrder>(S.order, [orderId]))[0];
  }

  async orderByReference(reference: string): Promise<StoredOrder | undefined> {
    return (await this.query<StoredOrder>(S.orderByReference, [reference]))[0];
  }

  async orderLines(orderId: string): Promise<StoredOrderLine[]> {
    return this.query<StoredOrderLine>(S.orderLines, [orderId]);
  }

  async orders(q: OrderQuery): Promise<StoredOrder[]> {
    return this.query<StoredOrder>(S.orders, [q.status, q.channel, q.limit, q.now]);
  }

  async linesOfOrders(orderIds: string[]): Promise<(StoredOrderLine & { order_id: string })[]> {
    return this.query<StoredOrderLine & { order_id: string }>(S.linesOfOrders, [orderIds]);
  }

  async channelMode(channel: string): Promise<CheckoutMode | undefined> {
    return (await this.query<{ checkout: CheckoutMode }>(S.channelMode, [channel]))[0]?.checkout;
  }

  async channelModes(): Promise<{ channel: string; checkout: CheckoutMode }[]> {
    return this.query<{ channel: string; checkout: CheckoutMode }>(S.channelModes, []);
  }

  async hostRules(): Promise<{ host: string; channel: string | null }[]> {
    return this.query<{ host: string; channel: string | null }>(S.hostRules, []);
  }

  async tokenChannels(): Promise<string[]> {
    return (await this.query<{ channel: string }>(S.tokenChannels, [])).map((row) => row.channel);
  }

  async openCartsOf(holder: string): Promise<{ id: string; channel: string }[]> {
    return this.query<{ id: string; channel: string }>(S.openCartsOf, [holder]);
  }

  async awaitingOrdersOf(holder: string): Promise<string[]> {
    return (await this.query<{ id: string }>(S.awaitingOrdersOf, [holder])).map((row) => row.id);
  }
}

/** The per-channel cap a write leaves to the flush, where the channel's row is locked last. */
interface CapCheck {
  channel: string;
  adding: number;
  reviving: boolean;
  cartId: string;
}

export class PostgresEngine extends PostgresReader implements Engine {
  private capCheck: CapCheck | undefined;

  constructor(
    readonly tx: Tx,
    private readonly limits: Limits,
  ) {
    super((statement, values) => tx.rows(statement, values));
  }

  get products(): ReadonlyMap<string, ProductRow> {
    return this.tx.products;
  }

  now(): number | Promise<number> {
    return this.tx.decided ?? this.tx.clock();
  }

  async readKey(call: KeyedCall): Promise<{ fingerprint: string; result: string } | undefined> {
    await this.tx.run(S.keyLock, [JSON.stringify([call.channel, call.tool, call.key])]);
    return this.tx.row(S.idempotency, [call.channel, call.tool, call.key]);
  }

  /** The record is written after the flush: the channel rows' locks come before it. */
  async saveKey(call: KeyedCall, result: unknown): Promise<void> {
    await this.flush();
    const { channel, tool, key, print } = call;
    await this.tx.run(S.saveIdempotency, [channel, tool, key, print, JSON.stringify(result), this.tx.now]);
  }

  async lockHolder(channel: string, holder: string): Promise<void> {
    await this.tx.run(S.holderLock, [JSON.stringify([channel, holder])]);
  }

  async lockCart(ctx: CallContext, cartId: string): Promise<StoredCart | undefined> {
    return (await this.tx.locked<StoredCart>(S.lockCart, [cartId, ctx.channel, holderOf(ctx)]))[0];
  }

  async lines(cartId: string): Promise<StoredLine[]> {
    return this.tx.rows<StoredLine>(S.lines, [cartId]);
  }

  async lockProducts(skus: Iterable<string>): Promise<void> {
    const wanted = [...new Set(skus)].filter((sku) => !this.tx.products.has(sku));
    if (wanted.length === 0) return;
    const rows =
      wanted.length === 1
        ? await this.tx.locked<ProductRow>(S.lockProduct, [wanted[0]])
        : await this.tx.locked<ProductRow>(S.lockProducts, [wanted]);
    for (const row of rows) this.tx.products.set(row.sku, row);
  }

  async expiredHolds(skus: Iterable<string>, keepCartId?: string): Promise<ExpiredHolds> {
    const holds = new Map<string, Hold[]>();
    for (const sku of new Set(skus)) {
      holds.set(sku, await this.tx.rows<Hold>(S.expiredHolds, [sku, this.tx.now, keepCartId ?? null]));
    }
    return holds;
  }

  async expiredHeld(sku: string): Promise<number> {
    return (await this.tx.row<{ held: number }>(S.expiredHeldSum, [sku, this.tx.now]))?.held ?? 0;
  }

  checkChannelCap(channel: string, check: { adding: number; reviving: boolean; cartId: string }): void {
    this.capCheck = { channel, ...check };
  }

  async holderHeld(channel: string, holder: string, cartId: string): Promise<number> {
    const values = [channel, holder, this.tx.now, cartId];
    return (await this.tx.row<{ held: number }>(S.holderHeld, values))?.held ?? 0;
  }

  async holderAwaiting(channel: string, holder: string): Promise<number> {
    return (await this.tx.row<{ held: number }>(S.holderAwaiting, [channel, holder, this.tx.now]))?.held ?? 0;
  }

  /** The row changes in one round trip; the ledger rows and counters wait for the flush. */
  async apply(writes: Writes): Promise<void> {
    const stock = [...writes.stock].filter(([, d]) => d.touched || d.onHand !== 0 || d.reserved !== 0);
    const held = [...writes.held.values()];
    const orderHeld = [...writes.orderHeld.values()];
    if (stock.length > 0 || held.length > 0 || orderHeld.length > 0) {
      const rows = await this.tx.rows<ProductRow>(S.applyRows, [
        this.tx.now,
        stock.map(([sku]) => sku),
        stock.map(([, d]) => d.onHand),
        stock.map(([, d]) => d.reserved),
        stock.map(([, d]) => d.touched),
        held.map((line) => line.cart_id),
        held.map((line) => line.sku),
        held.map((line) => line.held),
        orderHeld.map((line) => line.order_id),
        orderHeld.map((line) => line.sku),
        orderHeld.map((line) => line.held),
      ]);
      for (const row of rows) this.tx.products.set(row.sku, row);
    }
    for (const [channel, delta] of writes.channels) this.tx.addChannel(channel, delta);
    this.tx.movements.push(...writes.movements);
  }

  async saveCart(ctx: CallContext, cart: CartRow, line: StoredLine, isNew: boolean): Promise<void> {
    const now = this.tx.now;
    if (isNew) {
      const { sku, quantity, held } = line;
      const values = [cart.id, ctx.channel, cart.currency, now, cart.expires_at, sku, quantity, held];
      await this.tx.run(S.insertCartWithLine, [...values, holderOf(ctx)]);
      return;
    }
    await this.tx.run(S.upsertLine, [cart.id, line.sku, line.quantity, line.held]);
    await this.tx.run(S.touchCart, ['open', cart.currency, now, cart.expires_at, cart.id]);
  }

  async closeCarts(status: string, ids: string[]): Promise<void> {
    await this.tx.run(S.closeCarts, [status, this.tx.now, ids]);
  }

  async deleteLines(cartId: string, skus: string[]): Promise<void> {
    for (const sku of skus) await this.tx.run(S.deleteLine, [cartId, sku]);
  }

  async insertOrder(order: StoredOrder, lines: StoredOrderLine[]): Promise<void> {
    const { id, cart_id, channel, holder, status, total_minor, currency, created_at, pay_by, paid_at } =
      order;
    const values = [id, cart_id, channel, holder, status, total_minor, currency, created_at, pay_by, paid_at];
    await this.tx.run(S.insertOrder, values);
    await this.tx.run(S.insertOrderLines, [
      id,
      lines.map((l) => l.sku),
      lines.map((l) => l.name),
      lines.map((l) => l.quantity),
      lines.map((l) => l.unit_price_minor),
      lines.map((l) => l.held),
    ]);
  }

  async lockOrder(ctx: CallContext, orderId: string): Promise<StoredOrder | undefined> {
    const scope = ctx.admin ? [null, null] : [ctx.channel, holderOf(ctx)];
    return (await this.tx.locked<StoredOrder>(S.lockOrder, [orderId, ...scope]))[0];
  }

  async saveOrder(o: StoredOrder): Promise<void> {
    await this.tx.run(S.saveOrder, [
      o.id,
      o.status,
      o.paid_at,
      o.cancelled_at,
      o.cancel_reason,
      o.payment_url,
      o.payment_instructions,
      o.payment_reference,
      Boolean(o.needs_refund),
    ]);
  }

  /** Locked with SKIP LOCKED: several sweepers at once each take different orders. */
  async overdueOrders(limit: number): Promise<OrderRows[]> {
    const orders = await this.tx.rows<StoredOrder>(S.overdueOrders, [this.tx.now, limit]);
    if (orders.length === 0) return [];
    const lines = await this.linesOfOrders(orders.map((order) => order.id));
    return orders.map((order) => ({ order, lines: lines.filter((line) => line.order_id === order.id) }));
  }

  async saveChannelMode(channel: string, mode: CheckoutMode): Promise<void> {
    await this.tx.run(S.saveChannelMode, [channel, mode, await this.now()]);
  }

  /** Locked with SKIP LOCKED: several sweepers at once each take different carts. */
  async expiredCarts(limit: number): Promise<ExpiredCart[]> {
    const carts = await this.tx.rows<{ id: string; channel: string }>(S.expiredCarts, [this.tx.now, limit]);
    if (carts.length === 0) return [];
    const ids = carts.map((cart) => cart.id);
    const held = await this.tx.rows<{ cart_id: string; sku: string; held: number }>(S.heldLinesOf, [ids]);
    const linesOf = (id: string) =>
      held.filter((line) => line.cart_id === id).map(({ sku, held }) => ({ sku, quantity: held, held }));
    return carts.map((cart) => ({ ...cart, lines: linesOf(cart.id) }));
  }

  async liveCartsWithSku(sku: string): Promise<number> {
    return (await this.tx.row<{ carts: number }>(S.liveCartsWithSku, [sku, this.tx.now]))?.carts ?? 0;
  }

  async cartsWithSku(sku: string): Promise<number> {
    return (await this.tx.row<{ carts: number }>(S.cartsWithSku, [sku]))?.carts ?? 0;
  }

  async writeProduct(product: ProductWrite, existed: boolean): Promise<void> {
    const { sku, name, description, price_minor, currency, track_stock, active } = product;
    const values = [sku, name, description, price_minor, currency, track_stock, active, this.tx.now];
    const row = await this.tx.row<ProductRow>(existed ? S.updateProduct : S.insertProduct, values);
    // A concurrent call created the row after our lock found none: start again and update it instead.
    if (!row) throw new RetryTransaction();
    this.tx.products.set(row.sku, row);
  }

  /**
   * Writes what the transaction deferred: the ledger rows and the channel counters, whose row locks come last.
   * The per-channel cap is decided here, under the channel row's lock.
   */
  async flush(): Promise<void> {
    const { tx } = this;
    const cap = this.capCheck;
    this.capCheck = undefined;
    // A revived cart counts in full even if nothing was added (see checkChannelCap).
    const checking = cap !== undefined && (cap.adding > 0 || cap.reviving) ? cap : undefined;
    if (checking && !tx.channelDeltas.has(checking.channel)) tx.channelDeltas.set(checking.channel, 0);
    const channels = [...tx.channelDeltas];
    const m = tx.movements.splice(0);
    tx.channelDeltas.clear();
    if (channels.length === 0 && m.length === 0) return;
    const counters = await tx.rows<{ channel: string; held: number }>(S.flush, [
      tx.now,
      m.map((x) => x.sku),
      m.map((x) => x.kind),
      m.map((x) => x.quantity),
      m.map((x) => x.on_hand_delta),
      m.map((x) => x.reserved_delta),
      m.map((x) => x.cart_id),
      m.map((x) => x.order_id),
      m.map((x) => x.channel),
      m.map((x) => x.note ?? null),
      channels.map(([channel]) => channel),
      channels.map(([, delta]) => delta),
    ]);
    if (!checking) return;
    const counted = counters.find((row) => row.channel === checking.channel)?.held ?? 0;
    // Expired holds only ever lower the figure: within the cap by the counter alone means within the cap.
    if (counted <= this.limits.maxChannelReserved) return;
    // Units the channel's other expired carts still hold no longer count against its cap.
    const values = [checking.channel, tx.now, checking.cartId];
    const expired = (await tx.row<{ held: number }>(S.channelExpiredHeld, values))?.held ?? 0;
    checkChannelCap(this.limits, {
      counted: counted - checking.adding,
      expiredElsewhere: expired,
      adding: checking.adding,
      reviving: checking.reviving,
    });
  }
}
