// The InventoryStore contract: everything a tool, the CLI or a transport may ask of the stock pool.

import type { Clock } from '../domain/clock.js';
import type { ImportOptions } from '../domain/import-stock.js';
import type { RateLimiter, RateLimits } from '../domain/limits.js';
import type { Limits } from '../domain/rules.js';
import type {
  AuditReport,
  CallContext,
  CancelReason,
  CartView,
  ChannelSetting,
  CheckoutMode,
  ImportResult,
  ImportRow,
  OrderStatus,
  OrderView,
  ProductInput,
  ProductView,
  ReleaseResult,
  StockLevel,
  SweepResult,
  TokenRecord,
} from '../domain/types.js';
import type { McpSessionStore } from './mcp-sessions.js';
import type { OAuthStore } from './oauth.js';

export interface StoreOptions {
  clock: Clock;
  reservationTtlMs: number;
  /**
   * The longest a cart holds stock from its first hold, however often it is added to; at least the TTL.
   * Unset: one hour, or the TTL when that is longer.
   */
  maxHoldMs?: number;
  limits: Limits;
  /** How long a stock write may wait for the lock before it is refused with STORE_BUSY. */
  lockTimeoutMs: number;
  /** SQLite only: FULL survives power loss, NORMAL only a process crash. */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * SQLite only: writers of one file take turns in a first-come, first-served queue across processes
   * (sqlite/writer-queue.ts). Default true; the CLI's commands that only read (audit, stock levels, token list)
   * open the store without it, so they never touch the queue's lock file.
   */
  queueWriters?: boolean;
  /** PostgreSQL only: connections in the pool. */
  poolSize?: number;
  /** Rate limits the servers on this store apply; DEFAULT_RATE_LIMITS when absent. */
  rateLimits?: RateLimits;
  /** How long an order in a payment channel awaits its payment (pay_by = checkout + this); default 30 minutes. */
  paymentWindowMs?: number;
  /**
   * PostgreSQL only: add_to_cart into a new cart and checkout without a key run as one statement each (the
   * functions of drizzle/postgres migrations 0004 and 0008), the general transaction deciding only what they hand
   * back.
   * Default true. The store contract and the model test run the store both ways, so the rules in those
   * functions and in workflow/operations.ts cannot drift apart unnoticed.
   */
  oneStatement?: boolean;
  /**
   * Told, after the commit, of orders that stopped awaiting payment without being paid (cancelled, timed out by
   * the sweeper, their grant revoked), so the payment provider can close their sessions. Must not throw or block:
   * the cancellation already stands.
   */
  onOrdersCancelled?: (orders: readonly CancelledOrder[]) => void;
}

/** An order that was awaiting payment and is now cancelled: what a payment provider needs to close its session. */
export interface CancelledOrder {
  order_id: string;
  payment_reference: string | null;
  cancel_reason: CancelReason;
}

export interface SearchQuery {
  query: string;
  limit: number;
  inStockOnly: boolean;
}

export interface AddToCartInput {
  sku: string;
  quantity: number;
  cartId?: string;
  idempotencyKey?: string;
}

export interface CheckoutInput {
  cartId: string;
  idempotencyKey?: string;
}

export interface ReleaseInput {
  cartId: string;
  sku?: string;
}

export interface ConfirmPaymentInput {
  orderId: string;
  /** The payment's reference at the provider or bank; kept on the order. */
  reference: string;
}

export interface CancelOrderInput {
  orderId: string;
  /** A paid order: return its units to on-hand (`return`); without, they stay written off. */
  restock: boolean;
  /**
   * Default `merchant`; `payment_expired` (a provider's session ran out) and `grant_revoked` (its shopper's
   * sign-in was revoked) cancel only an unpaid order.
   */
  reason?: 'merchant' | 'payment_expired' | 'grant_revoked';
}

/** What a payment provider gave for an order, stored after the order committed. */
export interface PaymentAttachment {
  url?: string | null;
  instructions?: string | null;
  reference?: string | null;
}

export interface OrderFilter {
  status?: OrderStatus;
  channel?: string;
  /** Newest first, at most this many (default 100). */
  limit?: number;
}

export interface StockChange {
  sku: string;
  quantity: number;
  note?: string;
}

export interface IssuedToken {
  token: string;
  record: TokenRecord;
}

/**
 * Every method that changes stock is one short transaction that takes the lock first,
 * reads inside it, decides and writes. Refusals reject with a StockError and change nothing.
 */
export interface AuditOptions {
  /** Start from the last clean audit's checkpoint (when it still checks out) instead of the whole history. */
  incremental?: boolean;
  /** Save this audit's checkpoint when it finds nothing wrong (best effort: a read-only database keeps none). */
  checkpoint?: boolean;
}

export interface InventoryStore {
  readonly dialect: 'sqlite' | 'postgres';
  readonly options: StoreOptions;

  searchProducts(query: SearchQuery): Promise<ProductView[]>;
  checkStock(skus: string[]): Promise<{ products: ProductView[]; unknown_skus: string[] }>;
  addToCart(ctx: CallContext, input: AddToCartInput): Promise<CartView>;
  getCart(ctx: CallContext, cartId: string): Promise<CartView>;
  /**
   * The cart becomes an order. In a `direct` channel it is the sale (paid); in a `payment` channel the order
   * awaits payment until now + the payment window, its units still reserved (held by the order now). The mode is
   * read from the channels table inside the transaction.
   */
  checkout(ctx: CallContext, input: CheckoutInput): Promise<OrderView>;
  releaseCart(ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult>;

  /** A customer sees its own channel and holder's orders (others are ORDER_NOT_FOUND); an admin context any. */
  getOrder(ctx: CallContext, orderId: string): Promise<OrderView>;
  /**
   * Idempotent: a paid order is returned unchanged; awaiting → paid (`sale` movements); cancelled for timeout or
   * expiry → sold again if the stock is there, else `needs_refund` with the reference, nothing oversold; cancelled
   * by the merchant → ORDER_CLOSED. Any channel's order (admin).
   */
  confirmPayment(ctx: CallContext, input: ConfirmPaymentInput): Promise<OrderView>;
  /** Awaiting: holds released. Paid: `return` movements with restock, else written off. Cancelled: unchanged. */
  cancelOrder(ctx: CallContext, input: CancelOrderInput): Promise<OrderView>;
  /** Stores a provider's URL, instructions or reference on an order: a short write of its own, after the checkout. */
  attachPayment(orderId: string, payment: PaymentAttachment): Promise<OrderView>;
  /** The order whose payment reference this is (for webhooks that only know the provider's id). */
  findOrderByReference(reference: string): Promise<OrderView | undefined>;
  listOrders(filter: OrderFilter): Promise<OrderView[]>;

  /** Every known channel (set, mapped by an OAuth host, or with a token) and its checkout mode. */
  channelSettings(): Promise<ChannelSetting[]>;
  setCheckoutMode(channel: string, mode: CheckoutMode): Promise<ChannelSetting>;

  restock(ctx: CallContext, change: StockChange): Promise<StockLevel>;
  setStock(ctx: CallContext, change: StockChange): Promise<StockLevel>;
  upsertProduct(ctx: CallContext, product: ProductInput): Promise<ProductView>;
  /**
   * All rows or none. New products take the row's `stock`; existing ones keep their on-hand unless
   * `options.setStock` (then refused below what carts hold): domain/import-stock.ts.
   */
  importProducts(ctx: CallContext, rows: ImportRow[], options?: ImportOptions): Promise<ImportResult>;
  stockLevels(skus?: string[]): Promise<StockLevel[]>;

  /** Releases expired carts in small batches, each its own transaction. */
  sweepExpired(batchSize?: number): Promise<SweepResult>;
  /** Cancels orders past pay_by (payment_timeout), their units back on sale, in small batches like carts. */
  sweepOverdueOrders(batchSize?: number): Promise<{ orders: number; units: number }>;
  /** Drops idempotency records older than the retention window. */
  pruneIdempotency(olderThanMs: number): Promise<number>;
  /** Checks every invariant; from scratch unless `options.incremental` (which starts from the last checkpoint). */
  audit(options?: AuditOptions): Promise<AuditReport>;
  /** True when the database holds no products yet (a brand-new store). */
  isEmpty(): Promise<boolean>;

  createToken(channel: string, admin: boolean, label?: string): Promise<IssuedToken>;
  listTokens(): Promise<TokenRecord[]>;
  revokeToken(id: string): Promise<boolean>;
  /** The live token record whose secret this is, or undefined. */
  verifyToken(token: string): Promise<TokenRecord | undefined>;

  /** OAuth clients, codes, grants and the host map (src/auth/), kept in the same database. */
  readonly oauth: OAuthStore;
  /** MCP sessions of the 2025 revisions, so every server on the database serves every session. */
  readonly mcpSessions: McpSessionStore;
  /** A rate limiter named `name` whose counters live in this database (storage/limits.ts). */
  limiter(name: string, points: number, durationS: number): RateLimiter;

  /**
   * SQLite only: writes an online, consistent copy of the database to `path` (replacing it) while the
   * store keeps serving. PostgreSQL stores leave it out: back those up with pg_dump.
   */
  backup?(path: string): Promise<void>;

  close(): Promise<void>;
}
