// The engine: what a dialect lends the stock operations (operations.ts) inside one write transaction.
//
// An operation is a generator over an Engine. Each engine method returns its answer directly (SQLite, whose
// transactions are synchronous and must stay so: an await inside better-sqlite3's transaction commits early)
// or as a Promise (PostgreSQL). The body takes every answer through `yield* step(...)`, so one body serves
// both: runSync drives it without ever leaving the call stack, runAsync awaits each promise.
import type { ExpiredHolds, StoredCart } from '../../domain/decisions.js';
import type { StoredOrder, StoredOrderLine } from '../../domain/orders.js';
import type { CallContext, CheckoutMode, OrderStatus } from '../../domain/types.js';
import type { CartRow, LineRow, ProductRow } from '../../domain/views.js';
import type { StoredLine, Writes } from '../../domain/writes.js';
import type { KeyedCall } from '../shared.js';

/** An engine's answer: a value (SQLite) or a promise of it (PostgreSQL). */
export type Step<T> = T | Promise<T>;

/** A stock operation's body: yields only what `step` yields, returns R. */
export type Operation<R> = Generator<unknown, R, unknown>;

/** Takes an engine's answer inside an operation: `const cart = yield* step(e.lockCart(ctx, id))`. */
export function* step<T>(answer: Step<T>): Generator<unknown, T, unknown> {
  if (answer instanceof Promise) return (yield answer) as T;
  return answer;
}

/** Runs an operation whose engine answers synchronously (SQLite): the whole body runs before this returns. */
export function runSync<R>(operation: Operation<R>): R {
  const next = operation.next();
  if (!next.done) throw new Error('a synchronous engine answered with a promise');
  return next.value;
}

/** Runs an operation whose engine answers with promises (PostgreSQL), awaiting each; a rejection is thrown into the body. */
export async function runAsync<R>(operation: Operation<R>): Promise<R> {
  let next = operation.next();
  while (!next.done) {
    let answer: unknown;
    try {
      answer = await next.value;
    } catch (error) {
      next = operation.throw(error);
      continue;
    }
    next = operation.next(answer);
  }
  return next.value;
}

/** A product as upsert_product writes it. */
export interface ProductWrite {
  sku: string;
  name: string;
  description: string | null;
  price_minor: number;
  currency: string;
  track_stock: boolean;
  active: boolean;
}

/** A cart a sweep closes, with the lines whose holds it frees. */
export interface ExpiredCart {
  id: string;
  channel: string;
  lines: StoredLine[];
}

/** An order with its lines. */
export interface OrderRows {
  order: StoredOrder;
  lines: StoredOrderLine[];
}

/** Which orders `stocklock orders` and the console list; `now` tells an overdue order (cancelled) apart. */
export interface OrderQuery {
  status: OrderStatus | null;
  channel: string | null;
  limit: number;
  now: number;
}

/** The reads outside a write transaction too (get_cart, get_order, the order lists, the channel modes). */
export interface Reader {
  lineViews(cartId: string): Step<LineRow[]>;
  /** The order a checked-out cart made, at the prices of the sale. */
  orderForCart(cartId: string): Step<StoredOrder | undefined>;
  /** Any channel's order; a caller's scope is checked by the operation. */
  order(orderId: string): Step<StoredOrder | undefined>;
  orderByReference(reference: string): Step<StoredOrder | undefined>;
  orderLines(orderId: string): Step<StoredOrderLine[]>;
  /** Newest first. */
  orders(query: OrderQuery): Step<StoredOrder[]>;
  /** The lines of these orders, in one read. */
  linesOfOrders(orderIds: string[]): Step<(StoredOrderLine & { order_id: string })[]>;
  /** The merchant's checkout setting for a channel, if any. */
  channelMode(channel: string): Step<CheckoutMode | undefined>;
  channelModes(): Step<{ channel: string; checkout: CheckoutMode }[]>;
  /** The OAuth host map's rules (null: denied), which decide a channel's default mode. */
  hostRules(): Step<{ host: string; channel: string | null }[]>;
  /** Channels of live static tokens. */
  tokenChannels(): Step<string[]>;
  /** An OAuth holder's carts still open (expired ones included: their holds may stand). */
  openCartsOf(holder: string): Step<{ id: string; channel: string }[]>;
  /** An OAuth holder's orders awaiting payment. */
  awaitingOrdersOf(holder: string): Step<string[]>;
}

/**
 * One write transaction of one dialect. The dialect's write() begins it (BEGIN IMMEDIATE in a group commit's
 * savepoint, or BEGIN … COMMIT on a pooled connection) and commits it; the operation only reads, decides and
 * applies through these methods. Methods take the transaction's own time where they need one.
 */
export interface Engine extends Reader {
  /**
   * Product rows read under the transaction's lock (PostgreSQL: row locks, in SKU order). Kept current by
   * apply() and writeProduct(), or dropped so the next lockProducts() reads them again.
   */
  readonly products: ReadonlyMap<string, ProductRow>;
  /** The time this transaction decides by: SQLite's clock once the lock is held, PostgreSQL's after its first row lock. */
  now(): Step<number>;

  /** The stored answer to a keyed call (PostgreSQL first takes the key's lock), or undefined. */
  readKey(call: KeyedCall): Step<{ fingerprint: string; result: string } | undefined>;
  /** Stores a keyed call's answer; the transaction's last write. */
  saveKey(call: KeyedCall, result: unknown): Step<void>;
  /** An OAuth holder's adds take turns, so the holds its cap counts cannot grow under it. */
  lockHolder(channel: string, holder: string): Step<void>;

  /** The caller's cart, locked (PostgreSQL: the first row lock, which sets the time), or undefined. */
  lockCart(ctx: CallContext, cartId: string): Step<StoredCart | undefined>;
  lines(cartId: string): Step<StoredLine[]>;
  /** Reads (PostgreSQL: locks, in SKU order) the rows of these SKUs into `products`; unknown SKUs stay absent. */
  lockProducts(skus: Iterable<string>): Step<void>;
  /** Other carts' expired holds on these (locked) SKUs; PostgreSQL skips a cart someone else has locked. */
  expiredHolds(skus: Iterable<string>, keepCartId?: string): Step<ExpiredHolds>;
  /** Units expired carts still hold of one SKU. */
  expiredHeld(sku: string): Step<number>;

  /** The per-channel cap (SQLite: checked now; PostgreSQL: under the channel row's lock, taken last). */
  checkChannelCap(channel: string, check: { adding: number; reviving: boolean; cartId: string }): Step<void>;
  /** What a holder's live carts hold, `cartId` included even when expired. */
  holderHeld(channel: string, holder: string, cartId: string): Step<number>;
  /** What a holder's orders awaiting payment hold, those past pay_by left out. */
  holderAwaiting(channel: string, holder: string): Step<number>;

  /** Applies a decision's writes: counts, holds, channel counters, the ledger. */
  apply(writes: Writes): Step<void>;
  /** Writes the cart after add_to_cart and its one changed line (a new cart is inserted). */
  saveCart(ctx: CallContext, cart: CartRow, line: StoredLine, isNew: boolean): Step<void>;
  closeCarts(status: string, ids: string[]): Step<void>;
  deleteLines(cartId: string, skus: string[]): Step<void>;
  insertOrder(order: StoredOrder, lines: StoredOrderLine[]): Step<void>;
  /**
   * The order, locked (PostgreSQL: the first row lock, which sets the time), or undefined; a customer's only
   * when it is its channel and holder's, an admin's (ctx.admin) any.
   */
  lockOrder(ctx: CallContext, orderId: string): Step<StoredOrder | undefined>;
  /** Writes an order's status, times and payment fields (its lines' holds go through apply()). */
  saveOrder(order: StoredOrder): Step<void>;
  /** Orders awaiting payment past pay_by, at most `limit`, locked (PostgreSQL skips locked ones), with their lines. */
  overdueOrders(limit: number): Step<OrderRows[]>;
  saveChannelMode(channel: string, mode: CheckoutMode): Step<void>;
  /** Open carts expired by now, at most `limit`, locked (PostgreSQL skips locked ones), with their held lines. */
  expiredCarts(limit: number): Step<ExpiredCart[]>;

  /** Carts holding a SKU that are still live (not expired, not closed). */
  liveCartsWithSku(sku: string): Step<number>;
  /** Carts of any state with a line of this SKU. */
  cartsWithSku(sku: string): Step<number>;
  /** Inserts or updates a product's catalog fields (never its counts); `existed` says which. */
  writeProduct(product: ProductWrite, existed: boolean): Step<void>;
}
