// The PostgreSQL store: every stock write is one READ COMMITTED transaction that locks its rows before it reads them.
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { DatabaseTime } from '../../domain/clock.js';
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
import { inRow, refuse, StockError } from '../../domain/errors.js';
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
import { type Hold, type Movement, type StoredLine, Writes } from '../../domain/writes.js';
import { type AuditQuery, type AuditRows, auditQueries, auditReport, TIMED_AUDIT_QUERIES } from '../audit.js';
import { redactUrl } from '../open.js';
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
import { asciiLowerJs, S, type Statement } from './statements.js';

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/postgres', import.meta.url));

/** Session advisory lock that serialises migration when several servers start at once ("stocklok" in ASCII). */
const MIGRATION_LOCK = '8319396884454862699';

/** Deadlocks and serialization failures are retried this many times (within the lock budget), then STORE_BUSY. */
const MAX_ATTEMPTS = 8;

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

/** Thrown inside a transaction to run it again from the start (a row another transaction just created). */
class RetryTransaction extends Error {}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

function pgCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Worth running the whole transaction again: nothing it did was kept. */
function isRetryable(error: unknown): boolean {
  if (error instanceof RetryTransaction) return true;
  const code = pgCode(error);
  if (code === '40P01' || code === '40001') return true;
  // A concurrent call with the same key committed first: the retry replays its record or refuses the key.
  return (
    code === '23505' &&
    (error as { constraint?: string }).constraint === 'idempotency_records_channel_tool_key_pk'
  );
}

/** The lock (or a pool connection) could not be had within the budget. */
function isLockWait(error: unknown): boolean {
  const code = pgCode(error);
  if (code === '55P03' || code === '57014') return true;
  return error instanceof Error && error.message.includes('timeout exceeded when trying to connect');
}

// int8 (COUNT, SUM, bigint columns) holds ms timestamps and minor units, all far below 2^53.
const typeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export async function openPostgresStore(url: string, options: StoreOptions): Promise<InventoryStore> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    types: typeParsers,
    application_name: 'stocklock',
    connectionTimeoutMillis: Math.max(10_000, options.lockTimeoutMs * 5),
  });
  // An idle connection the server dropped is discarded by the pool; the next query opens another.
  pool.on('error', () => undefined);
  try {
    const client = await pool.connect().catch((error: Error) => {
      throw new Error(`Cannot open database ${redactUrl(url)}: ${error.message}`, { cause: error });
    });
    let broken: Error | undefined;
    try {
      // Several servers starting at once: one migrates, the others wait here and then find nothing to do.
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      try {
        await migrate(drizzle(client), { migrationsFolder: MIGRATIONS });
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch((error: Error) => {
          broken = error;
        });
      }
    } finally {
      client.release(broken);
    }
    return new PostgresStore(pool, options);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

/** The URL without its password, fit for an error message or a log line. */

/** One write transaction: its client, the product rows it has locked, and what it writes at the end. */
class Tx {
  /** Product rows this transaction holds the lock on, kept current by every UPDATE … RETURNING. */
  readonly products = new Map<string, ProductRow>();
  /** Changes to channel_holds, written last in channel order (see the lock order above). */
  readonly channelDeltas = new Map<string, number>();
  readonly movements: Movement[] = [];
  private decidedAt: number | undefined;

  constructor(
    readonly client: pg.PoolClient,
    private readonly time: DatabaseTime,
  ) {}

  /** The time this transaction decides by: the database's, read once its first row lock was granted. */
  get now(): number {
    if (this.decidedAt === undefined) throw new Error('a write transaction decided before it read the time');
    return this.decidedAt;
  }

  /** Runs a locking statement built with thenNow(); the first one that finds rows sets the time. */
  async locked<T>(statement: Statement, values: unknown[]): Promise<T[]> {
    const rows = await this.rows<T & { now: number }>(statement, [
      ...values,
      this.time.fixedAt,
      this.time.offsetMs,
    ]);
    if (this.decidedAt === undefined && rows.length > 0) {
      this.decidedAt = Math.max(...rows.map((row) => row.now));
    }
    return rows;
  }

  /** The transaction's time, read now if no lock has set it (a transaction that found nothing to lock). */
  async clock(): Promise<number> {
    if (this.decidedAt === undefined) {
      const row = await this.row<{ now: number }>(S.now, [this.time.fixedAt, this.time.offsetMs]);
      this.decidedAt = row?.now ?? 0;
    }
    return this.decidedAt;
  }

  async rows<T>(statement: Statement, values: unknown[]): Promise<T[]> {
    const result = await this.client.query({ name: statement.name, text: statement.text, values });
    return result.rows as T[];
  }

  async row<T>(statement: Statement, values: unknown[]): Promise<T | undefined> {
    return (await this.rows<T>(statement, values))[0];
  }

  async run(statement: Statement, values: unknown[]): Promise<number> {
    const result = await this.client.query({ name: statement.name, text: statement.text, values });
    return result.rowCount ?? 0;
  }

  /** A channel whose holds changed at all keeps its row in the flush, even if the changes add up to zero. */
  addChannel(channel: string, delta: number): void {
    if (delta !== 0) this.channelDeltas.set(channel, (this.channelDeltas.get(channel) ?? 0) + delta);
  }
}

export class PostgresStore implements InventoryStore {
  readonly dialect = 'postgres' as const;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    readonly options: StoreOptions,
  ) {}

  // ---------------------------------------------------------------- the write path

  /**
   * Runs `fn` in one transaction; deadlocks and serialization failures run it again, with jitter, a bounded
   * number of times within the lock budget. A lock wait past the budget is STORE_BUSY.
   */
  private async write<R>(fn: (tx: Tx) => Promise<R>): Promise<R> {
    const started = performance.now();
    const budget = this.options.lockTimeoutMs;
    let pooled = 0;
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      const queued = performance.now();
      try {
        client = await this.pool.connect();
      } catch (error) {
        if (isLockWait(error)) throw refuse.busy(Math.round(performance.now() - started));
        throw error;
      }
      // Waiting for a free connection is the pool's queue (bounded by connectionTimeoutMillis), not a lock wait.
      pooled += performance.now() - queued;
      const remaining = Math.ceil(budget - (performance.now() - started - pooled));
      let broken: Error | undefined;
      try {
        if (remaining <= 0) throw refuse.busy(Math.round(performance.now() - started));
        // One round trip: each lock wait may use what is left of the budget, and no more.
        await client.query(
          `BEGIN; SET LOCAL lock_timeout = ${remaining}; SET LOCAL statement_timeout = ${budget + 5_000}`,
        );
        // Each attempt reads the database's time after its first lock (Tx.now): a call that waited for a
        // connection, a lock or a retry decides with the time it got the lock at.
        const tx = new Tx(client, this.databaseTime());
        const result = await fn(tx);
        await this.flush(tx);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        const waited = Math.round(performance.now() - started);
        if (error instanceof StockError) throw error;
        if (isLockWait(error)) throw refuse.busy(waited);
        if (!isRetryable(error)) throw error;
        if (attempt >= MAX_ATTEMPTS) throw refuse.busy(waited);
      } finally {
        client.release(broken);
      }
      // Jittered, growing backoff so the transactions that collided do not collide again in lockstep.
      await sleep(Math.random() * Math.min(2 ** attempt, 50));
    }
  }

  /**
   * Writes what a transaction deferred: the ledger rows and the channel counters, whose row locks come last
   * (see the lock order above). The per-channel cap is decided here, under the channel row's lock.
   */
  private async flush(
    tx: Tx,
    capCheck?: { channel: string; adding: number; cartId: string; reviving: boolean },
  ): Promise<void> {
    // A revived cart counts in full even if nothing was added (see checkChannelCap).
    const checking =
      capCheck !== undefined && (capCheck.adding > 0 || capCheck.reviving) ? capCheck : undefined;
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
    if (counted <= this.options.limits.maxChannelReserved) return;
    // Units the channel's other expired carts still hold no longer count against its cap.
    const expired =
      (await tx.row<{ held: number }>(S.channelExpiredHeld, [checking.channel, tx.now, checking.cartId]))
        ?.held ?? 0;
    checkChannelCap(this.options.limits, {
      counted: counted - checking.adding,
      expiredElsewhere: expired,
      adding: checking.adding,
      reviving: checking.reviving,
    });
  }

  private now(): number {
    return this.options.clock.now();
  }

  private databaseTime(): DatabaseTime {
    return this.options.clock.databaseTime?.() ?? { fixedAt: null, offsetMs: 0 };
  }

  private async query<T>(statement: Statement, values: unknown[]): Promise<T[]> {
    const result = await this.pool.query({ name: statement.name, text: statement.text, values });
    return result.rows as T[];
  }

  /** Locks the rows of these SKUs in SKU order; rows that do not exist are simply absent. */
  private async lockProducts(tx: Tx, skus: Iterable<string>): Promise<void> {
    const wanted = [...new Set(skus)].filter((sku) => !tx.products.has(sku));
    if (wanted.length === 0) return;
    const rows =
      wanted.length === 1
        ? await tx.locked<ProductRow>(S.lockProduct, [wanted[0]])
        : await tx.locked<ProductRow>(S.lockProducts, [wanted]);
    for (const row of rows) tx.products.set(row.sku, row);
  }

  /** The locked product row (locking it if this transaction has not yet). */
  private async requireProduct(tx: Tx, sku: string, activeOnly = true): Promise<ProductRow> {
    if (!tx.products.has(sku)) await this.lockProducts(tx, [sku]);
    const product = tx.products.get(sku);
    if (!product || (activeOnly && !product.active)) throw refuse.unknownSku(sku);
    return product;
  }

  private async updateProduct(
    tx: Tx,
    statement: Statement,
    values: unknown[],
  ): Promise<ProductRow | undefined> {
    const row = await tx.row<ProductRow>(statement, values);
    if (row) tx.products.set(row.sku, row);
    return row;
  }

  private async expiredHeld(tx: Tx, sku: string, now: number): Promise<number> {
    return (await tx.row<{ held: number }>(S.expiredHeldSum, [sku, now]))?.held ?? 0;
  }

  /**
   * Expired holds of other carts on these SKUs (whose rows this transaction has locked), each of those carts
   * locked with SKIP LOCKED: one another transaction has locked is left to it.
   */
  private async expiredOf(tx: Tx, skus: Iterable<string>, keepCartId?: string): Promise<ExpiredHolds> {
    const holds = new Map<string, Hold[]>();
    for (const sku of new Set(skus)) {
      holds.set(sku, await tx.rows<Hold>(S.expiredHolds, [sku, tx.now, keepCartId ?? null]));
    }
    return holds;
  }

  /** Applies a decision's row changes in one round trip; its ledger rows and counters wait for the flush. */
  private async apply(tx: Tx, writes: Writes): Promise<void> {
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
  private async loadCart(
    tx: Tx | undefined,
    ctx: CallContext,
    cartId: string,
  ): Promise<StoredCart & { now: number }> {
    const time = this.databaseTime();
    const [cart] = tx
      ? await tx.locked<StoredCart & { now: number }>(S.lockCart, [cartId, ctx.channel])
      : await this.query<StoredCart & { now: number }>(S.cart, [
          cartId,
          ctx.channel,
          time.fixedAt,
          time.offsetMs,
        ]);
    if (!cart) throw refuse.cartNotFound(cartId);
    return cart;
  }

  private async replay(
    tx: Tx,
    ctx: CallContext,
    tool: string,
    key: string | undefined,
    print: string,
  ): Promise<unknown> {
    if (key === undefined) return undefined;
    await tx.run(S.keyLock, [JSON.stringify([ctx.channel, tool, key])]);
    const record = await tx.row<{ fingerprint: string; result: string }>(S.idempotency, [
      ctx.channel,
      tool,
      key,
    ]);
    if (!record) return undefined;
    if (record.fingerprint !== print) throw refuse.idempotencyConflict(key);
    return JSON.parse(record.result);
  }

  private async remember(
    tx: Tx,
    ctx: CallContext,
    tool: string,
    key: string | undefined,
    print: string,
    result: unknown,
    now: number,
  ): Promise<void> {
    if (key === undefined) return;
    await tx.run(S.saveIdempotency, [ctx.channel, tool, key, print, JSON.stringify(result), now]);
  }

  private async addToCartTx(tx: Tx, ctx: CallContext, input: AddToCartInput): Promise<CartView> {
    const print = fingerprint([input.sku, input.quantity, input.cartId ?? null]);
    const replayed = await this.replay(tx, ctx, 'add_to_cart', input.idempotencyKey, print);
    if (replayed) return replayed as CartView;

    // The cart row is locked before any product row, and its lines read under that lock (their holds stand,
    // see the lock order above). An expired cart then locks every line's product at once, a live one those
    // of lines that hold less than their quantity.
    let cart: StoredCart | undefined;
    let lines: StoredLine[] = [];
    if (input.cartId !== undefined) {
      cart = (await tx.locked<StoredCart>(S.lockCart, [input.cartId, ctx.channel]))[0];
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
      products: tx.products,
      newCartId: newId('cart_'),
    };
    // Only a decision that gets as far as holding needs the expired holds: refusals come first.
    const decision = decideAddToCart({
      ...state,
      expired: tx.products.get(input.sku)?.active
        ? await this.expiredOf(tx, addToCartHoldSkus(state), cart?.id)
        : new Map(),
    });
    const { cart: after, line } = decision;
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
    await this.remember(tx, ctx, 'add_to_cart', input.idempotencyKey, print, view, now);
    return view;
  }

  private async checkoutTx(tx: Tx, ctx: CallContext, input: CheckoutInput): Promise<OrderView> {
    const print = fingerprint([input.cartId]);
    const replayed = await this.replay(tx, ctx, 'checkout', input.idempotencyKey, print);
    if (replayed) return replayed as OrderView;

    const cart = await this.loadCart(tx, ctx, input.cartId);
    const { now } = tx;
    if (cart.status === 'checked_out') {
      // Checkout is idempotent on the cart: a repeat returns the order it made.
      const order = await this.orderOf(tx, cart.id);
      await this.remember(tx, ctx, 'checkout', input.idempotencyKey, print, order, now);
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
    await this.remember(tx, ctx, 'checkout', input.idempotencyKey, print, view, now);
    return view;
  }

  private async releaseTx(tx: Tx, ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult> {
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

  private async sweepBatchTx(tx: Tx, batchSize: number): Promise<SweepResult> {
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
  private async setOnHand(
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
  private async upsertLocked(tx: Tx, input: ProductInput): Promise<boolean> {
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

  private async cartViewOf(
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

  private async orderOf(tx: Tx | undefined, cartId: string): Promise<OrderView> {
    type StoredOrder = { id: string; cart_id: string; currency: string; created_at: number };
    const order = tx
      ? await tx.row<StoredOrder>(S.orderForCart, [cartId])
      : (await this.query<StoredOrder>(S.orderForCart, [cartId]))[0];
    if (!order) throw new Error(`checked-out cart ${cartId} has no order`);
    const lines = tx
      ? await tx.rows<LineRow>(S.orderLines, [order.id])
      : await this.query<LineRow>(S.orderLines, [order.id]);
    return orderView(order, lines);
  }

  private async level(tx: Tx, sku: string, now: number): Promise<StockLevel> {
    return stockLevel(await this.requireProduct(tx, sku, false), await this.expiredHeld(tx, sku, now));
  }

  // ---------------------------------------------------------------- InventoryStore

  async searchProducts(query: SearchQuery): Promise<ProductView[]> {
    const time = this.databaseTime();
    const rows = await this.query<ProductRow & { expired_held: number }>(S.search, [
      searchTerms(query.query).map(asciiLowerJs),
      asciiLowerJs(query.query.trim()),
      time.fixedAt,
      query.inStockOnly,
      query.limit,
      time.offsetMs,
    ]);
    return rows.map((row) => productView(row, row.expired_held));
  }

  async checkStock(skus: string[]): Promise<{ products: ProductView[]; unknown_skus: string[] }> {
    const wanted = [...new Set(skus)];
    // One statement, so every figure comes from one snapshot.
    const time = this.databaseTime();
    const rows = await this.query<ProductRow & { expired_held: number }>(S.productsIn, [
      wanted,
      time.fixedAt,
      time.offsetMs,
    ]);
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

  async addToCart(ctx: CallContext, input: AddToCartInput): Promise<CartView> {
    assertSku(input.sku);
    assertCount(input.quantity, 'quantity', 1, MAX_QUANTITY);
    return this.write((tx) => this.addToCartTx(tx, ctx, input));
  }

  async getCart(ctx: CallContext, cartId: string): Promise<CartView> {
    const cart = await this.loadCart(undefined, ctx, cartId);
    const { now } = cart;
    if (cart.status !== 'checked_out') return this.cartViewOf(undefined, cart, now, null);
    // A sold cart shows what was sold, at the prices of the sale.
    const order = await this.orderOf(undefined, cart.id);
    return cartView(cart, order.lines, now, order.order_id);
  }

  async checkout(ctx: CallContext, input: CheckoutInput): Promise<OrderView> {
    return this.write((tx) => this.checkoutTx(tx, ctx, input));
  }

  async releaseCart(ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult> {
    if (input.sku !== undefined) assertSku(input.sku);
    return this.write((tx) => this.releaseTx(tx, ctx, input));
  }

  async restock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 1, MAX_STOCK);
    return this.write(async (tx) => {
      await this.requireProduct(tx, change.sku, false);
      const writes = new Writes(tx.products);
      changeOnHand(writes, change.sku, 'restock', change.quantity, ctx.channel, change.note ?? null);
      await this.apply(tx, writes);
      return this.level(tx, change.sku, tx.now);
    });
  }

  async setStock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 0, MAX_STOCK);
    return this.write(async (tx) => {
      await this.setOnHand(tx, ctx.channel, change.sku, change.quantity, 'adjust', change.note ?? null);
      return this.level(tx, change.sku, tx.now);
    });
  }

  async upsertProduct(_ctx: CallContext, product: ProductInput): Promise<ProductView> {
    assertProduct(product);
    return this.write(async (tx) => {
      await this.upsertLocked(tx, product);
      const { now } = tx;
      const row = await this.requireProduct(tx, product.sku, false);
      return productView(row, await this.expiredHeld(tx, product.sku, now));
    });
  }

  async importProducts(ctx: CallContext, rows: ImportRow[]): Promise<ImportResult> {
    assertImportRows(rows);
    return this.write(async (tx) => {
      // Existing rows are locked up front in SKU order; new ones are created as the rows come.
      await this.lockProducts(
        tx,
        rows.map((row) => row.sku),
      );
      const result: ImportResult = { created: 0, updated: 0 };
      for (const [index, row] of rows.entries()) {
        try {
          const existed = await this.upsertLocked(tx, row);
          result[existed ? 'updated' : 'created'] += 1;
          await this.setOnHand(tx, ctx.channel, row.sku, row.stock, 'import', 'catalog import');
        } catch (error) {
          // DESIGN: import errors name the line, also when a row fails only inside the transaction.
          throw inRow(error, index);
        }
      }
      return result;
    });
  }

  async stockLevels(skus?: string[]): Promise<StockLevel[]> {
    const { fixedAt, offsetMs } = this.databaseTime();
    const rows =
      skus && skus.length > 0
        ? await this.query<ProductRow & { expired_held: number }>(S.productsIn, [skus, fixedAt, offsetMs])
        : await this.query<ProductRow & { expired_held: number }>(S.allProducts, [fixedAt, offsetMs]);
    return rows.map((row) => stockLevel(row, row.expired_held));
  }

  async sweepExpired(batchSize = 100): Promise<SweepResult> {
    const total: SweepResult = { carts: 0, units: 0 };
    for (;;) {
      const batch = await this.write((tx) => this.sweepBatchTx(tx, batchSize));
      total.carts += batch.carts;
      total.units += batch.units;
      // Fewer than a batch: none left, or another sweeper has the rest locked and is releasing them.
      if (batch.carts < batchSize) return total;
    }
  }

  async pruneIdempotency(olderThanMs: number): Promise<number> {
    const { fixedAt, offsetMs } = this.databaseTime();
    return this.write((tx) => tx.run(S.pruneIdempotency, [olderThanMs, fixedAt, offsetMs]));
  }

  async audit(): Promise<AuditReport> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      // One snapshot for every check while writers carry on.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const queries = auditQueries('postgres');
      const rows = {} as AuditRows;
      const timed: readonly AuditQuery[] = TIMED_AUDIT_QUERIES;
      const { fixedAt, offsetMs } = this.databaseTime();
      for (const key of Object.keys(queries) as AuditQuery[]) {
        const values = timed.includes(key) ? [fixedAt, offsetMs] : [];
        rows[key] = (await client.query(queries[key], values)).rows;
      }
      const report = auditReport(rows);
      await client.query('COMMIT');
      return report;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async isEmpty(): Promise<boolean> {
    return (await this.query(S.anyProduct, [])).length === 0;
  }

  async createToken(channel: string, admin: boolean, label?: string): Promise<IssuedToken> {
    const token = newTokenSecret();
    const id = newId('tok_', 10);
    const now = this.now();
    await this.write((tx) =>
      tx.run(S.insertToken, [id, hashToken(token), channel, admin, label ?? null, now]),
    );
    return issuedToken(token, { id, channel, admin, label: label ?? null }, now);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.query<StoredToken>(S.tokens, [])).map(tokenRecord);
  }

  async revokeToken(id: string): Promise<boolean> {
    const now = this.now();
    return this.write(async (tx) => (await tx.run(S.revokeToken, [now, id])) > 0);
  }

  async verifyToken(token: string): Promise<TokenRecord | undefined> {
    const [row] = await this.query<StoredToken>(S.tokenByHash, [hashToken(token)]);
    if (!row) return undefined;
    const now = this.now();
    // last_used_at is advisory: refreshing it at most once a minute keeps auth off the write path.
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      await this.query(S.touchToken, [now, row.id]).catch(() => undefined);
    }
    return tokenRecord(row);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
