// What both stores do the same way around their transactions: each public stock method checks its arguments,
// tries the dialect's fast path if it has one, and runs its operation (operations.ts) in the dialect's write;
// the sweep's batches, check_stock's answer and the API tokens' rules live here too.
import type { ImportOptions } from '../../domain/import-stock.js';
import {
  assertCount,
  assertImportRows,
  assertProduct,
  assertSku,
  DEFAULT_PAYMENT_WINDOW_MS,
  MAX_QUANTITY,
  MAX_STOCK,
  newId,
} from '../../domain/rules.js';
import type {
  CallContext,
  CartView,
  ChannelSetting,
  CheckoutMode,
  ImportResult,
  ImportRow,
  OrderView,
  ProductInput,
  ProductView,
  ReleaseResult,
  StockLevel,
  SweepResult,
  TokenRecord,
} from '../../domain/types.js';
import { type ProductRow, productView, stockLevel } from '../../domain/views.js';
import type { OAuthStore } from '../oauth.js';
import { hashToken, issuedToken, newTokenSecret, type StoredToken, tokenRecord } from '../shared.js';
import type {
  AddToCartInput,
  CancelledOrder,
  CancelOrderInput,
  CheckoutInput,
  ConfirmPaymentInput,
  IssuedToken,
  OrderFilter,
  PaymentAttachment,
  ReleaseInput,
  StockChange,
  StoreOptions,
} from '../store.js';
import { type Engine, type Operation, type Reader, step } from './engine.js';
import * as op from './operations.js';
import * as orders from './orders.js';

/** A product row with the units expired carts still hold of it, as a store's reads return it. */
export type ProductWithExpired = ProductRow & { expired_held: number };

/** A token as createToken stores it (only the secret's hash). */
export interface NewToken {
  id: string;
  hash: string;
  channel: string;
  admin: boolean;
  label: string | null;
  now: number;
}

/** last_used_at is advisory: refreshed at most this often, it keeps authentication off the write path. */
const TOKEN_TOUCH_MS = 60_000;

export abstract class StockStore {
  abstract readonly options: StoreOptions;

  /** Runs an operation as one write transaction of this dialect; `started` begins the call's lock budget. */
  protected abstract transact<R>(body: (e: Engine) => Operation<R>, started?: number): Promise<R>;
  /** Runs reads (get_order, the order lists, the channel modes) outside any write transaction. */
  protected abstract readWith<R>(body: (r: Reader) => Operation<R>): Promise<R>;
  /** Active and inactive products of these SKUs (all, without SKUs), with their expired holds, from one read. */
  protected abstract productRows(skus: string[] | undefined): Promise<ProductWithExpired[]>;
  protected abstract insertToken(token: NewToken): Promise<void>;
  protected abstract tokenRows(): Promise<StoredToken[]>;
  protected abstract tokenByHash(hash: string): Promise<StoredToken | undefined>;
  /** Marks a token revoked (at the dialect's time); false when it was unknown or revoked already. */
  protected abstract revokeTokenRow(id: string): Promise<boolean>;
  /** Refreshes last_used_at without waiting for any lock; a failure is ignored (the next request refreshes it). */
  protected abstract touchToken(id: string, now: number): Promise<void>;

  /** A dialect's answer without the general transaction, or undefined (nothing written) to run it. */
  protected addToCartFast(
    _ctx: CallContext,
    _input: AddToCartInput,
    _started: number,
  ): Promise<CartView | undefined> | undefined {
    return undefined;
  }

  protected checkoutFast(
    _ctx: CallContext,
    _input: CheckoutInput,
    _started: number,
  ): Promise<OrderView | undefined> | undefined {
    return undefined;
  }

  /** Between two sweep batches: SQLite lets waiting writes have the lock. */
  protected betweenSweepBatches(): Promise<void> | undefined {
    return undefined;
  }

  protected now(): number {
    return this.options.clock.now();
  }

  async addToCart(ctx: CallContext, input: AddToCartInput): Promise<CartView> {
    assertSku(input.sku);
    assertCount(input.quantity, 'quantity', 1, MAX_QUANTITY);
    const started = performance.now();
    const fast = this.addToCartFast(ctx, input, started);
    const answered = fast && (await fast);
    if (answered) return answered;
    return this.transact((e) => op.addToCart(e, this.options, ctx, input), started);
  }

  protected get paymentWindowMs(): number {
    return this.options.paymentWindowMs ?? DEFAULT_PAYMENT_WINDOW_MS;
  }

  async checkout(ctx: CallContext, input: CheckoutInput): Promise<OrderView> {
    const started = performance.now();
    const fast = this.checkoutFast(ctx, input, started);
    const answered = fast && (await fast);
    if (answered) return answered;
    const rules = { paymentWindowMs: this.paymentWindowMs };
    return this.transact((e) => orders.checkout(e, rules, ctx, input), started);
  }

  async getOrder(ctx: CallContext, orderId: string): Promise<OrderView> {
    return this.readWith((r) => orders.readOrder(r, ctx, orderId, this.now()));
  }

  async confirmPayment(ctx: CallContext, input: ConfirmPaymentInput): Promise<OrderView> {
    return this.transact((e) => orders.confirmPayment(e, ctx, input));
  }

  async cancelOrder(ctx: CallContext, input: CancelOrderInput): Promise<OrderView> {
    const cancelled: CancelledOrder[] = [];
    const view = await this.transact((e) => orders.cancelOrder(e, ctx, input, cancelled));
    this.tellCancelled(cancelled);
    return view;
  }

  /** After the commit: the provider may close the sessions of orders that will not be paid now. */
  private tellCancelled(cancelled: readonly CancelledOrder[]): void {
    if (cancelled.length === 0) return;
    try {
      this.options.onOrdersCancelled?.(cancelled);
    } catch {
      // The cancellation stands whatever the listener does; it reports its own failures.
    }
  }

  async attachPayment(orderId: string, payment: PaymentAttachment): Promise<OrderView> {
    return this.transact((e) => orders.attachPayment(e, orderId, payment));
  }

  async findOrderByReference(reference: string): Promise<OrderView | undefined> {
    return this.readWith((r) => orders.readOrderByReference(r, reference, this.now()));
  }

  async listOrders(filter: OrderFilter): Promise<OrderView[]> {
    return this.readWith((r) => orders.readOrders(r, filter, this.now()));
  }

  async channelSettings(): Promise<ChannelSetting[]> {
    return this.readWith((r) => orders.readChannelSettings(r));
  }

  async setCheckoutMode(channel: string, mode: CheckoutMode): Promise<ChannelSetting> {
    return this.transact((e) => orders.setCheckoutMode(e, channel, mode));
  }

  /** Orders past pay_by give their units back, in small batches like carts. */
  async sweepOverdueOrders(batchSize = 100): Promise<{ orders: number; units: number }> {
    const total = { orders: 0, units: 0 };
    for (;;) {
      const cancelled: CancelledOrder[] = [];
      const batch = await this.transact((e) => orders.sweepOrdersBatch(e, batchSize, cancelled));
      this.tellCancelled(cancelled);
      total.orders += batch.orders;
      total.units += batch.units;
      if (batch.orders < batchSize) return total;
      await this.betweenSweepBatches();
    }
  }

  /**
   * What a revoked grant held goes back on sale: its open carts released, its orders awaiting payment cancelled
   * (`grant_revoked`), each in its own short transaction. Safe to run again: closed carts and orders are skipped.
   */
  async releaseHolder(holder: string): Promise<{ carts: number; orders: number }> {
    // '' is a whole channel's holder (static tokens, stdio), never a grant.
    if (holder === '') return { carts: 0, orders: 0 };
    const carts = await this.readWith((r) => step(r.openCartsOf(holder)));
    for (const cart of carts) {
      await this.transact((e) => op.releaseCart(e, { channel: cart.channel, holder }, { cartId: cart.id }));
    }
    const awaiting = await this.readWith((r) => step(r.awaitingOrdersOf(holder)));
    const admin = { channel: 'admin', admin: true };
    for (const orderId of awaiting) {
      const cancel = { orderId, restock: false, reason: 'grant_revoked' as const };
      await this.cancelOrder(admin, cancel);
    }
    return { carts: carts.length, orders: awaiting.length };
  }

  /**
   * The OAuth store whose every revocation also releases the grant's holds (releaseHolder), right after the
   * revoke commits: by `token revoke`, the console, the revocation endpoint, or a reused code or refresh token.
   */
  protected releasingOnRevoke(oauth: OAuthStore): OAuthStore {
    return {
      ...oauth,
      revokeGrant: async (id, now, reason) => {
        const revoked = await oauth.revokeGrant(id, now, reason);
        // Also when it was revoked already: a release cut short before is finished now.
        await this.releaseHolder(id);
        return revoked;
      },
      redeemCode: async (codeHash, now, grant, tokens) => {
        const outcome = await oauth.redeemCode(codeHash, now, grant, tokens);
        const used = outcome === 'reused' ? await oauth.getCode(codeHash) : undefined;
        if (used?.grant_id) await this.releaseHolder(used.grant_id);
        return outcome;
      },
      rotateRefresh: async (refreshHash, now, tokens) => {
        const outcome = await oauth.rotateRefresh(refreshHash, now, tokens);
        const spent = outcome === 'reused' ? await oauth.getRefresh(refreshHash) : undefined;
        if (spent) await this.releaseHolder(spent.grant.id);
        return outcome;
      },
    };
  }

  async releaseCart(ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult> {
    if (input.sku !== undefined) assertSku(input.sku);
    return this.transact((e) => op.releaseCart(e, ctx, input));
  }

  async restock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 1, MAX_STOCK);
    return this.transact((e) => op.restock(e, ctx, change));
  }

  async setStock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 0, MAX_STOCK);
    return this.transact((e) => op.setStock(e, ctx, change));
  }

  async upsertProduct(_ctx: CallContext, product: ProductInput): Promise<ProductView> {
    assertProduct(product);
    return this.transact((e) => op.upsertProduct(e, product));
  }

  async importProducts(
    ctx: CallContext,
    rows: ImportRow[],
    options: ImportOptions = { setStock: false },
  ): Promise<ImportResult> {
    assertImportRows(rows);
    return this.transact((e) => op.importProducts(e, ctx, rows, options));
  }

  async sweepExpired(batchSize = 100): Promise<SweepResult> {
    const total: SweepResult = { carts: 0, units: 0 };
    for (;;) {
      const batch = await this.transact((e) => op.sweepBatch(e, batchSize));
      total.carts += batch.carts;
      total.units += batch.units;
      // Fewer than a batch: none left, or (PostgreSQL) another sweeper has the rest locked and is releasing them.
      if (batch.carts < batchSize) return total;
      await this.betweenSweepBatches();
    }
  }

  async checkStock(skus: string[]): Promise<{ products: ProductView[]; unknown_skus: string[] }> {
    const wanted = [...new Set(skus)];
    const rows = await this.productRows(wanted);
    const found = new Map(rows.filter((row) => row.active).map((row) => [row.sku, row]));
    const products: ProductView[] = [];
    const unknown: string[] = [];
    for (const sku of wanted) {
      const row = found.get(sku);
      if (row) products.push(productView(row, row.expired_held));
      else unknown.push(sku);
    }
    return { products, unknown_skus: unknown };
  }

  async stockLevels(skus?: string[]): Promise<StockLevel[]> {
    const rows = await this.productRows(skus && skus.length > 0 ? skus : undefined);
    return rows.map((row) => stockLevel(row, row.expired_held));
  }

  async createToken(channel: string, admin: boolean, label?: string): Promise<IssuedToken> {
    const token = newTokenSecret();
    const id = newId('tok_', 10);
    const now = this.now();
    await this.insertToken({ id, hash: hashToken(token), channel, admin, label: label ?? null, now });
    return issuedToken(token, { id, channel, admin, label: label ?? null }, now);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.tokenRows()).map(tokenRecord);
  }

  async revokeToken(id: string): Promise<boolean> {
    return this.revokeTokenRow(id);
  }

  async verifyToken(token: string): Promise<TokenRecord | undefined> {
    const row = await this.tokenByHash(hashToken(token));
    if (!row) return undefined;
    const now = this.now();
    if (row.last_used_at === null || now - row.last_used_at > TOKEN_TOUCH_MS)
      await this.touchToken(row.id, now);
    return tokenRecord(row);
  }
}
