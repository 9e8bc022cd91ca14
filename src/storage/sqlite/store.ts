// The SQLite store: every stock write is one synchronous better-sqlite3 transaction begun IMMEDIATE.
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import {
  addToCartHoldSkus,
  assertCurrencyChange,
  assertTrackingSwitch,
  changeOnHand,
  checkChannelCap,
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
import {
  assertCount,
  assertImportRows,
  assertProduct,
  assertSku,
  MAX_QUANTITY,
  MAX_STOCK,
  newId,
} from '../../domain/rules.js';
import type {
  AuditReport,
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
  TokenRecord,
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
import { type AuditQuery, type AuditRows, auditQueries, auditReport, TIMED_AUDIT_QUERIES } from '../audit.js';
import {
  fingerprint,
  hashToken,
  issuedToken,
  newTokenSecret,
  type StoredToken,
  searchTerms,
  tokenRecord,
} from '../shared.js';
import type {
  AddToCartInput,
  CheckoutInput,
  InventoryStore,
  IssuedToken,
  ReleaseInput,
  SearchQuery,
  StockChange,
  StoreOptions,
} from '../store.js';
import { prepareStatements, type Statements } from './statements.js';
import { WriterQueue } from './writer-queue.js';

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/sqlite', import.meta.url));

/** SQLite's own busy handler sleeps in steps up to 100 ms; we let it wait only briefly, then retry off-thread. */
const SQLITE_BUSY_TIMEOUT_MS = 5;
/** Pages per backup step: all of them, so the copy is one snapshot and never restarts on a write. */
const BACKUP_ALL_PAGES = 0x7fffffff;

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Turns SQLite's terse open-time failures into one line that names the file and what to do. */
function openError(path: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error;
  if (code === 'SQLITE_NOTADB')
    return new Error(`Cannot open database ${path}: the file is not a SQLite database.`);
  if (code.startsWith('SQLITE_READONLY')) {
    return new Error(
      `Cannot open database ${path} for writing (${code}): stocklock needs write access to the file and to its directory, where SQLite keeps the -wal and -shm files.`,
    );
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new Error(
      `Cannot open database ${path} (${code}): check that it is a file, not a directory, and that this user may create files in its directory.`,
    );
  }
  if (isBusy(error)) {
    return new Error(`Cannot open database ${path}: another process kept it locked (${code}); try again.`);
  }
  return error;
}

export function openSqliteStore(path: string, options: StoreOptions): SqliteStore {
  if (path !== ':memory:') {
    const file = resolve(path);
    const dir = dirname(file);
    if (!existsSync(dir)) {
      throw new Error(`Cannot open database ${path}: directory ${dir} does not exist.`);
    }
    // SQLite opens a file it may not write read-only without a word, and every write would fail later.
    try {
      if (existsSync(file)) accessSync(file, constants.R_OK | constants.W_OK);
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'EACCES';
      throw new Error(
        `Cannot open database ${path} for writing (${code}): the file is read-only to this user; stocklock needs write access to it and to its directory.`,
      );
    }
  }
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (error) {
    throw openError(path, error);
  }
  try {
    // Migration may wait for another process that is migrating the same file.
    db.pragma('busy_timeout = 10000');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    db.pragma('foreign_keys = ON');
    migrate(drizzle(db), { migrationsFolder: MIGRATIONS });
    db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    const writers = options.queueWriters === false ? undefined : WriterQueue.open(path);
    return new SqliteStore(db, options, writers);
  } catch (error) {
    db.close();
    throw openError(path, error);
  }
}

export class SqliteStore implements InventoryStore {
  readonly dialect = 'sqlite' as const;
  private readonly s: Statements;
  private readonly tx;
  private readonly auditStatements: Record<AuditQuery, Database.Statement>;

  constructor(
    private readonly db: Database.Database,
    readonly options: StoreOptions,
    private readonly writers?: WriterQueue,
  ) {
    const q = (sql: string) => db.prepare(sql);
    this.auditStatements = Object.fromEntries(
      Object.entries(auditQueries('sqlite')).map(([key, sql]) => [key, q(sql)]),
    ) as Record<AuditQuery, Database.Statement>;
    this.s = prepareStatements(db);

    // Each transaction reads the clock once BEGIN IMMEDIATE has the lock, so a writer that waited decides with
    // the time it got the lock at, never one read before another writer's commit.
    const immediate = <A extends unknown[], R>(fn: (...args: A) => R) => db.transaction(fn).immediate;
    this.tx = {
      addToCart: immediate((ctx: CallContext, input: AddToCartInput) =>
        this.addToCartLocked(ctx, input, this.now()),
      ),
      checkout: immediate((ctx: CallContext, input: CheckoutInput) =>
        this.checkoutLocked(ctx, input, this.now()),
      ),
      release: immediate((ctx: CallContext, input: ReleaseInput) =>
        this.releaseLocked(ctx, input, this.now()),
      ),
      restock: immediate((ctx: CallContext, change: StockChange) => {
        const now = this.now();
        const writes = this.writesFor([this.requireProduct(change.sku, false)]);
        changeOnHand(writes, change.sku, 'restock', change.quantity, ctx.channel, change.note ?? null);
        this.apply(writes, now);
        return this.level(change.sku, now);
      }),
      setStock: immediate((ctx: CallContext, change: StockChange) => {
        const now = this.now();
        this.setOnHand(ctx.channel, change.sku, change.quantity, 'adjust', change.note ?? null, now);
        return this.level(change.sku, now);
      }),
      upsert: immediate((product: ProductInput) => {
        const now = this.now();
        this.upsertLocked(product, now);
        return productView(this.requireProduct(product.sku, false), this.expiredHeld(product.sku, now));
      }),
      import: immediate((ctx: CallContext, rows: ImportRow[]) => {
        const now = this.now();
        const result: ImportResult = { created: 0, updated: 0 };
        rows.forEach((row, index) => {
          try {
            const existed = this.upsertLocked(row, now);
            result[existed ? 'updated' : 'created'] += 1;
            this.setOnHand(ctx.channel, row.sku, row.stock, 'import', 'catalog import', now);
          } catch (error) {
            // DESIGN: import errors name the line, also when a row fails only inside the transaction.
            throw inRow(error, index);
          }
        });
        return result;
      }),
      sweepBatch: immediate((batchSize: number) => {
        const now = this.now();
        const carts = (this.s.expiredCarts.all(now, batchSize) as { id: string; channel: string }[]).map(
          (cart) => ({ ...cart, lines: this.s.lines.all(cart.id) as StoredLine[] }),
        );
        const { writes, units } = decideSweep(carts, new Map());
        this.apply(writes, now);
        for (const cart of carts) this.s.closeCart.run('expired', now, cart.id);
        return { carts: carts.length, units };
      }),
      prune: immediate(
        (olderThanMs: number) => this.s.pruneIdempotency.run(this.now() - olderThanMs).changes,
      ),
      revoke: immediate((id: string, now: number) => this.s.revokeToken.run(now, id).changes > 0),
    };
  }

  // ---------------------------------------------------------------- the write path

  /**
   * Runs a locked transaction. Writers of this file queue for their turn first (writer-queue.ts), then take
   * SQLite's lock; a lock still held by a process outside the queue is retried off the event loop, and past
   * --lock-timeout the call is refused with STORE_BUSY. Each attempt reads the clock afresh, so a call that
   * waited decides with the time it got the lock.
   */
  private async write<R>(transaction: () => R): Promise<R> {
    return this.withRetries(transaction, this.writers);
  }

  /** Reads need no lock under WAL, but a checkpoint or recovery can still report busy for a moment. */
  private async read<R>(fn: () => R): Promise<R> {
    return this.withRetries(fn, undefined);
  }

  private async withRetries<R>(fn: () => R, queue: WriterQueue | undefined): Promise<R> {
    const started = performance.now();
    const timeoutMs = this.options.lockTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (queue) {
        const remaining = Math.max(0, timeoutMs - (performance.now() - started));
        const turn = queue.take(remaining, () => refuse.busy(Math.round(performance.now() - started)));
        if (turn) await turn;
      }
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw error;
      } finally {
        // Given back before any wait: the turn is never held across an await.
        queue?.give();
      }
      const waited = performance.now() - started;
      if (waited >= timeoutMs) throw refuse.busy(Math.round(waited));
      // Jittered, capped backoff so processes outside the queue do not retry in lockstep with us.
      await sleep(Math.random() * Math.min(2 + attempt, 10));
    }
  }

  private now(): number {
    return this.options.clock.now();
  }

  private requireProduct(sku: string, activeOnly = true): ProductRow {
    const product = this.s.product.get(sku) as ProductRow | undefined;
    if (!product || (activeOnly && !product.active)) throw refuse.unknownSku(sku);
    return product;
  }

  private expiredHeld(sku: string, now: number): number {
    return (this.s.expiredHeldSum.get(sku, now) as { held: number }).held;
  }

  /** The rows a decision needs, keyed by SKU (rows that do not exist are left out). */
  private productsOf(skus: Iterable<string>): Map<string, ProductRow> {
    const rows = new Map<string, ProductRow>();
    for (const sku of skus) {
      const row = this.s.product.get(sku) as ProductRow | undefined;
      if (row) rows.set(sku, row);
    }
    return rows;
  }

  private writesFor(rows: ProductRow[]): Writes {
    return new Writes(new Map(rows.map((row) => [row.sku, row])));
  }

  private expiredOf(skus: Iterable<string>, now: number): ExpiredHolds {
    const holds = new Map<string, Hold[]>();
    for (const sku of skus) holds.set(sku, this.s.expiredHolds.all(sku, now) as Hold[]);
    return holds;
  }

  /** Applies a decision's writes: counts, holds, channel counters, then the ledger. */
  private apply(writes: Writes, now: number): void {
    for (const [sku, delta] of writes.stock) {
      if (delta.touched) this.s.addStock.run(delta.onHand, delta.reserved, now, sku);
      else if (delta.reserved !== 0) this.s.addReserved.run(delta.reserved, sku);
    }
    for (const line of writes.held.values()) this.s.setHeld.run(line.held, line.cart_id, line.sku);
    for (const [channel, delta] of writes.channels) this.s.addChannelHeld.run(channel, delta);
    for (const movement of writes.movements) this.s.movement.run({ at: now, ...movement });
  }

  private loadCart(ctx: CallContext, cartId: string): StoredCart {
    const cart = this.s.cart.get(cartId, ctx.channel) as StoredCart | undefined;
    if (!cart) throw refuse.cartNotFound(cartId);
    return cart;
  }

  private replay(ctx: CallContext, tool: string, key: string | undefined, print: string): unknown {
    if (key === undefined) return undefined;
    const record = this.s.idempotency.get(ctx.channel, tool, key) as
      | { fingerprint: string; result: string }
      | undefined;
    if (!record) return undefined;
    if (record.fingerprint !== print) throw refuse.idempotencyConflict(key);
    return JSON.parse(record.result);
  }

  private remember(
    ctx: CallContext,
    tool: string,
    key: string | undefined,
    print: string,
    result: unknown,
    now: number,
  ) {
    if (key !== undefined)
      this.s.saveIdempotency.run(ctx.channel, tool, key, print, JSON.stringify(result), now);
  }

  private addToCartLocked(ctx: CallContext, input: AddToCartInput, now: number): CartView {
    const print = fingerprint([input.sku, input.quantity, input.cartId ?? null]);
    const replayed = this.replay(ctx, 'add_to_cart', input.idempotencyKey, print);
    if (replayed) return replayed as CartView;

    const cart =
      input.cartId === undefined
        ? undefined
        : (this.s.cart.get(input.cartId, ctx.channel) as StoredCart | undefined);
    const open = cart !== undefined && cart.status !== 'checked_out' && cart.status !== 'released';
    const lines = open ? (this.s.lines.all(cart.id) as StoredLine[]) : [];
    const reviving = open && effectiveStatus(cart, now) === 'expired';
    const products = this.productsOf([
      input.sku,
      ...lines.filter((line) => reviving || line.held < line.quantity).map((line) => line.sku),
    ]);
    const state = {
      now,
      ttlMs: this.options.reservationTtlMs,
      limits: this.options.limits,
      channel: ctx.channel,
      sku: input.sku,
      quantity: input.quantity,
      cart,
      cartId: input.cartId,
      lines,
      products,
      newCartId: newId('cart_'),
    };
    const decision = decideAddToCart({ ...state, expired: this.expiredOf(addToCartHoldSkus(state), now) });
    const { cart: after, line } = decision;
    // The channel's counter before this write, less what its other expired carts still hold.
    checkChannelCap(this.options.limits, {
      counted: (this.s.channelHeld.get(ctx.channel) as { held: number } | undefined)?.held ?? 0,
      expiredElsewhere: (this.s.channelExpiredHeld.get(ctx.channel, now, after.id) as { held: number }).held,
      adding: decision.adding,
      reviving: decision.reviving,
    });
    if (decision.isNew) {
      this.s.insertCart.run(after.id, ctx.channel, after.currency, now, now, after.expires_at);
    }
    this.apply(decision.writes, now);
    this.s.upsertLine.run(after.id, line.sku, line.quantity, line.held);
    if (!decision.isNew) this.s.touchCart.run('open', after.currency, now, after.expires_at, after.id);

    const view = this.cartViewOf(after, now, null);
    this.remember(ctx, 'add_to_cart', input.idempotencyKey, print, view, now);
    return view;
  }

  private checkoutLocked(ctx: CallContext, input: CheckoutInput, now: number): OrderView {
    const print = fingerprint([input.cartId]);
    const replayed = this.replay(ctx, 'checkout', input.idempotencyKey, print);
    if (replayed) return replayed as OrderView;

    const cart = this.loadCart(ctx, input.cartId);
    if (cart.status === 'checked_out') {
      // Checkout is idempotent on the cart: a repeat returns the order it made.
      const order = this.orderOf(cart.id);
      this.remember(ctx, 'checkout', input.idempotencyKey, print, order, now);
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
    this.remember(ctx, 'checkout', input.idempotencyKey, print, view, now);
    return view;
  }

  private releaseLocked(ctx: CallContext, input: ReleaseInput, now: number): ReleaseResult {
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
  private setOnHand(
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
  private upsertLocked(input: ProductInput, now: number): boolean {
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

  private cartViewOf(cart: CartRow, now: number, orderId: string | null): CartView {
    return cartView(cart, this.s.lineViews.all(cart.id) as LineRow[], now, orderId);
  }

  private orderOf(cartId: string): OrderView {
    const order = this.s.orderForCart.get(cartId) as
      | { id: string; cart_id: string; currency: string; created_at: number }
      | undefined;
    if (!order) throw new Error(`checked-out cart ${cartId} has no order`);
    return orderView(order, this.s.orderLines.all(order.id) as LineRow[]);
  }

  private level(sku: string, now: number): StockLevel {
    return stockLevel(this.requireProduct(sku, false), this.expiredHeld(sku, now));
  }

  // ---------------------------------------------------------------- InventoryStore

  async searchProducts(query: SearchQuery): Promise<ProductView[]> {
    const now = this.now();
    return this.read(() => {
      const rows = this.s.search.all({
        terms: JSON.stringify(searchTerms(query.query)),
        whole: query.query.trim(),
        now,
        in_stock_only: query.inStockOnly ? 1 : 0,
        limit: query.limit,
      }) as (ProductRow & { expired_held: number })[];
      return rows.map((row) => productView(row, row.expired_held));
    });
  }

  async checkStock(skus: string[]): Promise<{ products: ProductView[]; unknown_skus: string[] }> {
    const now = this.now();
    const wanted = [...new Set(skus)];
    return this.read(() => {
      const rows = (this.s.productsIn.all(JSON.stringify(wanted)) as ProductRow[]).filter(
        (row) => row.active,
      );
      const found = new Map(rows.map((row) => [row.sku, row]));
      const products: ProductView[] = [];
      const unknown: string[] = [];
      for (const sku of wanted) {
        const row = found.get(sku);
        if (row) products.push(productView(row, row.track_stock ? this.expiredHeld(sku, now) : 0));
        else unknown.push(sku);
      }
      return { products, unknown_skus: unknown };
    });
  }

  async addToCart(ctx: CallContext, input: AddToCartInput): Promise<CartView> {
    assertSku(input.sku);
    assertCount(input.quantity, 'quantity', 1, MAX_QUANTITY);
    return this.write(() => this.tx.addToCart(ctx, input));
  }

  async getCart(ctx: CallContext, cartId: string): Promise<CartView> {
    const now = this.now();
    return this.read(() => {
      const cart = this.loadCart(ctx, cartId);
      if (cart.status !== 'checked_out') return this.cartViewOf(cart, now, null);
      // A sold cart shows what was sold, at the prices of the sale.
      const order = this.orderOf(cart.id);
      return cartView(cart, order.lines, now, order.order_id);
    });
  }

  async checkout(ctx: CallContext, input: CheckoutInput): Promise<OrderView> {
    return this.write(() => this.tx.checkout(ctx, input));
  }

  async releaseCart(ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult> {
    if (input.sku !== undefined) assertSku(input.sku);
    return this.write(() => this.tx.release(ctx, input));
  }

  async restock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 1, MAX_STOCK);
    return this.write(() => this.tx.restock(ctx, change));
  }

  async setStock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 0, MAX_STOCK);
    return this.write(() => this.tx.setStock(ctx, change));
  }

  async upsertProduct(_ctx: CallContext, product: ProductInput): Promise<ProductView> {
    assertProduct(product);
    return this.write(() => this.tx.upsert(product));
  }

  async importProducts(ctx: CallContext, rows: ImportRow[]): Promise<ImportResult> {
    assertImportRows(rows);
    return this.write(() => this.tx.import(ctx, rows));
  }

  async stockLevels(skus?: string[]): Promise<StockLevel[]> {
    const now = this.now();
    return this.read(() => {
      const rows = (
        skus && skus.length > 0 ? this.s.productsIn.all(JSON.stringify(skus)) : this.s.allProducts.all()
      ) as ProductRow[];
      return rows.map((row) => stockLevel(row, row.track_stock ? this.expiredHeld(row.sku, now) : 0));
    });
  }

  async sweepExpired(batchSize = 100): Promise<SweepResult> {
    const total: SweepResult = { carts: 0, units: 0 };
    for (;;) {
      const batch = await this.write(() => this.tx.sweepBatch(batchSize));
      total.carts += batch.carts;
      total.units += batch.units;
      if (batch.carts < batchSize) return total;
      // Let waiting requests have the lock between batches.
      await new Promise((done) => setImmediate(done));
    }
  }

  async pruneIdempotency(olderThanMs: number): Promise<number> {
    return this.write(() => this.tx.prune(olderThanMs));
  }

  async audit(): Promise<AuditReport> {
    // One read transaction: a consistent snapshot while writers carry on.
    return this.read(() =>
      this.db.transaction(() => {
        const rows = {} as AuditRows;
        const timed: readonly AuditQuery[] = TIMED_AUDIT_QUERIES;
        for (const key of Object.keys(this.auditStatements) as AuditQuery[]) {
          if (!timed.includes(key)) rows[key] = this.auditStatements[key].all();
        }
        // Read once the snapshot exists: a hold released before it was released at an earlier time.
        const now = this.now();
        for (const key of timed) rows[key] = this.auditStatements[key].all({ now });
        return auditReport(rows);
      })(),
    );
  }

  async isEmpty(): Promise<boolean> {
    return this.read(() => this.s.anyProduct.get() === undefined);
  }

  async createToken(channel: string, admin: boolean, label?: string): Promise<IssuedToken> {
    const token = newTokenSecret();
    const id = newId('tok_', 10);
    const now = this.now();
    await this.write(() =>
      this.s.insertToken.run(id, hashToken(token), channel, admin ? 1 : 0, label ?? null, now),
    );
    return issuedToken(token, { id, channel, admin, label: label ?? null }, now);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return this.read(() => (this.s.tokens.all() as StoredToken[]).map(tokenRecord));
  }

  async revokeToken(id: string): Promise<boolean> {
    return this.write(() => this.tx.revoke(id, this.now()));
  }

  async verifyToken(token: string): Promise<TokenRecord | undefined> {
    const row = await this.read(() => this.s.tokenByHash.get(hashToken(token)) as StoredToken | undefined);
    if (!row) return undefined;
    const now = this.now();
    // last_used_at is advisory: refreshing it at most once a minute keeps auth off the write lock.
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      try {
        // One try, no waiting: authentication must not queue behind another process's write lock.
        this.s.touchToken.run(now, row.id);
      } catch {
        // The next request refreshes it.
      }
    }
    return tokenRecord(row);
  }

  /**
   * An online, consistent copy of the database at `path`, taken while other connections keep writing.
   * SQLite's backup API copies every page in one step, and under WAL one step reads one snapshot without
   * blocking writers. The copy is written beside `path` and renamed over it (with any stale -wal/-shm
   * removed), so `path` never holds half a backup.
   */
  async backup(path: string): Promise<void> {
    const target = resolve(path);
    if (this.db.name !== ':memory:' && target === resolve(this.db.name)) {
      throw new Error(`Cannot back up the database onto itself (${path}).`);
    }
    const dir = dirname(target);
    if (!existsSync(dir)) throw new Error(`Cannot write backup ${path}: directory ${dir} does not exist.`);
    const partial = `${target}.partial-${randomBytes(6).toString('hex')}`;
    try {
      await this.db.backup(partial, { progress: () => BACKUP_ALL_PAGES });
      for (const stale of [`${target}-wal`, `${target}-shm`]) rmSync(stale, { force: true });
      renameSync(partial, target);
    } catch (error) {
      rmSync(partial, { force: true });
      rmSync(`${partial}-journal`, { force: true });
      throw error;
    }
  }

  async close(): Promise<void> {
    this.writers?.close();
    if (this.db.open) this.db.close();
  }
}
