// The PostgreSQL store: every stock write is one READ COMMITTED transaction that locks its rows before it reads them.
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { DatabaseTime } from '../../domain/clock.js';
import { checkChannelCap } from '../../domain/decisions.js';
import { refuse, StockError } from '../../domain/errors.js';
import type { ImportOptions } from '../../domain/import-stock.js';
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
import { cartView, type ProductRow, productView, stockLevel } from '../../domain/views.js';
import { type AuditQuery, type AuditRows, auditQueries, auditReport, TIMED_AUDIT_QUERIES } from '../audit.js';
import type { OAuthStore } from '../oauth.js';
import { redactUrl } from '../open.js';
import {
  hashToken,
  holderOf,
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
import {
  isConnectionLost,
  isDefiniteRollback,
  isLockWait,
  isRetryable,
  pgCode,
  readOnlyRefusal,
} from './errors.js';
import { postgresLimiters } from './limits.js';
import { postgresOAuthStore } from './oauth.js';
import {
  answerOf,
  CHANNEL_CAP_RECHECK,
  type CheckoutRow,
  checkoutAnswerOf,
  fitsOneStatement,
  type OneStatementRow,
} from './one-statement.js';
import { asciiLowerJs, S, type Statement } from './statements.js';
import { Transactions } from './transactions.js';
import { Tx } from './tx.js';

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/postgres', import.meta.url));

/** Session advisory lock that serialises migration when several servers start at once ("stocklok" in ASCII). */
const MIGRATION_LOCK = '8319396884454862699';

/** Deadlocks and serialization failures are retried this many times (within the lock budget), then STORE_BUSY. */
const MAX_ATTEMPTS = 8;

// The lock order and the time every write transaction keeps: see transactions.ts.

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const ignoreLostConnection = () => undefined;

// int8 (COUNT, SUM, bigint columns) holds ms timestamps and minor units, all far below 2^53.
const typeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** How the PostgreSQL store runs its hot path; the bench turns the one-statement reserve off to compare. */
export interface PostgresTuning {
  /** add_to_cart of a new cart in one autocommit statement (one-statement.ts); default on. */
  oneStatement?: boolean;
}

export async function openPostgresStore(
  url: string,
  options: StoreOptions,
  tuning: PostgresTuning = {},
): Promise<InventoryStore> {
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
    return new PostgresStore(pool, options, tuning);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

/** The URL without its password, fit for an error message or a log line. */

export class PostgresStore implements InventoryStore {
  readonly dialect = 'postgres' as const;
  private closed = false;
  readonly limiter: InventoryStore['limiter'];
  readonly oauth: OAuthStore;

  /** The transactions' bodies: lock, read, decide, apply (transactions.ts). */
  private readonly t: Transactions;

  constructor(
    private readonly pool: pg.Pool,
    readonly options: StoreOptions,
    private readonly tuning: PostgresTuning = {},
  ) {
    this.t = new Transactions(
      options,
      (tx, capCheck) => this.flush(tx, capCheck),
      (statement, values) => this.query(statement, values),
      () => this.databaseTime(),
    );
    this.oauth = postgresOAuthStore(pool);
    this.limiter = postgresLimiters(pool);
  }

  // ---------------------------------------------------------------- the write path

  /**
   * Runs `fn` in one transaction. Every wait of the call shares one deadline, --lock-timeout after it began: the
   * pool, each lock, and the retries of deadlocks, serialization failures and lost connections (which run the
   * whole transaction again, with jitter, a bounded number of times). Past it the call is STORE_BUSY. A
   * connection lost during COMMIT is OUTCOME_UNKNOWN: the commit may have happened.
   */
  private async write<R>(fn: (tx: Tx) => Promise<R>, started = performance.now()): Promise<R> {
    const deadline = started + this.options.lockTimeoutMs;
    const busy = () => refuse.busy(Math.round(performance.now() - started));
    for (let attempt = 1; ; attempt++) {
      const client = await this.acquire(deadline, busy);
      // A connection that dies between two statements emits 'error', which would crash the process unheard;
      // the next statement fails with it instead.
      client.on('error', ignoreLostConnection);
      let broken: Error | undefined;
      let committing = false;
      try {
        if (performance.now() >= deadline) throw busy();
        // Each attempt reads the database's time after its first lock (Tx.now): a call that waited for a
        // connection, a lock or a retry decides with the time it got the lock at.
        const tx = new Tx(client, this.databaseTime(), deadline);
        await tx.begin();
        const result = await fn(tx);
        await this.flush(tx);
        committing = true;
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        if (committing && !isDefiniteRollback(error))
          throw refuse.outcomeUnknown('The database connection failed', error);
        if (error instanceof StockError) throw error;
        if (isLockWait(error)) throw busy();
        const readOnly = readOnlyRefusal(error);
        if (readOnly) throw readOnly;
        if (!isRetryable(error) && !isConnectionLost(error)) throw error;
        if (attempt >= MAX_ATTEMPTS) throw busy();
      } finally {
        client.removeListener('error', ignoreLostConnection);
        client.release(broken);
      }
      // Jittered, growing backoff so the transactions that collided do not collide again in lockstep.
      const backoff = Math.random() * Math.min(2 ** attempt, 50);
      if (performance.now() + backoff >= deadline) throw busy();
      await sleep(backoff);
    }
  }

  /** A pooled connection, waited for no later than the call's deadline (then STORE_BUSY). */
  private acquire(deadline: number, busy: () => StockError): Promise<pg.PoolClient> {
    const remaining = deadline - performance.now();
    if (remaining <= 0) return Promise.reject(busy());
    return new Promise((resolve, reject) => {
      let gaveUp = false;
      let timer: NodeJS.Timeout;
      // The event loop's clock is coarse: a timer may fire a little before the deadline, so it checks.
      const giveUpAtDeadline = () => {
        const left = deadline - performance.now();
        if (left > 0) {
          timer = setTimeout(giveUpAtDeadline, Math.ceil(left));
          return;
        }
        gaveUp = true;
        reject(busy());
      };
      timer = setTimeout(giveUpAtDeadline, Math.ceil(remaining));
      this.pool.connect((error, client, release) => {
        // pg-pool cannot withdraw a queued request: a connection that comes too late goes straight back.
        if (gaveUp) {
          if (client) release();
          return;
        }
        clearTimeout(timer);
        if (client) resolve(client);
        else reject(isLockWait(error) ? busy() : error);
      });
    });
  }

  /**
   * Writes what a transaction deferred: the ledger rows and the channel counters, whose row locks come last
   * (see the lock order in transactions.ts). The per-channel cap is decided here, under the channel row's lock.
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
    const started = performance.now();
    if (this.tuning.oneStatement !== false && fitsOneStatement(ctx, input, this.options.limits)) {
      const cartId = newId('cart_');
      const { reservationTtlMs: ttlMs, limits } = this.options;
      const view = await this.oneStatement<OneStatementRow, CartView>({
        statement: S.reserveNewCart,
        values: ({ fixedAt, offsetMs }, remaining) => [
          input.sku,
          input.quantity,
          cartId,
          ctx.channel,
          ttlMs,
          limits.maxChannelReserved,
          fixedAt,
          offsetMs,
          remaining,
        ],
        started,
        answer: ([row]) => (row ? answerOf(row, { ctx, input, cartId, ttlMs, limits }) : undefined),
        // The cart's id is ours: if it exists, the call committed.
        committed: S.cartExists,
        key: cartId,
        recover: () => this.getCart(ctx, cartId),
      });
      if (view) return view;
    }
    return this.write((tx) => this.t.addToCartTx(tx, ctx, input), started);
  }

  /**
   * A hot path in one round trip: one statement in autocommit, its own transaction (one-statement.ts). Undefined
   * when the general path must decide; nothing was written then. The call's one lock budget covers both. A
   * connection lost under the statement is settled: once its backend has exited, its transaction either
   * committed (`committed` finds `key`, and `recover` reads the answer) or never will (the general path runs the
   * call, as a retry would). A backend still there at the deadline leaves the outcome unknown.
   */
  private async oneStatement<Row, R>(call: {
    statement: Statement;
    values: (time: DatabaseTime, remainingMs: number) => unknown[];
    started: number;
    answer: (rows: Row[]) => R | undefined;
    committed: Statement;
    key: string;
    recover: () => Promise<R>;
  }): Promise<R | undefined> {
    const deadline = call.started + this.options.lockTimeoutMs;
    const busy = () => refuse.busy(Math.round(performance.now() - call.started));
    const client = await this.acquire(deadline, busy);
    client.on('error', ignoreLostConnection);
    const backend = (client as pg.PoolClient & { processID?: number | null }).processID ?? undefined;
    let rows: Row[] | undefined;
    let failure: unknown;
    try {
      const remaining = Math.ceil(deadline - performance.now());
      if (remaining <= 0) throw busy();
      const { statement } = call;
      const values = call.values(this.databaseTime(), remaining);
      rows = (await client.query({ name: statement.name, text: statement.text, values })).rows as Row[];
    } catch (error) {
      failure = error;
    } finally {
      client.removeListener('error', ignoreLostConnection);
      client.release(isConnectionLost(failure) ? (failure as Error) : undefined);
    }
    if (failure === undefined) return call.answer(rows ?? []);
    if (failure instanceof StockError) throw failure;
    if (isConnectionLost(failure)) {
      await this.backendGone(backend, deadline, failure);
      const found = (await this.query<{ found: boolean }>(call.committed, [call.key]))[0]?.found;
      return found ? call.recover() : undefined;
    }
    // Rolled back whole: the general path decides (the channel cap exactly, a deadlock by retrying).
    if (pgCode(failure) === CHANNEL_CAP_RECHECK || isRetryable(failure)) return undefined;
    if (isLockWait(failure)) throw busy();
    throw readOnlyRefusal(failure) ?? failure;
  }

  /** Waits until a lost connection's backend has exited (so its transaction has ended), else OUTCOME_UNKNOWN. */
  private async backendGone(backend: number | undefined, deadline: number, failure: unknown): Promise<void> {
    const unknown = () => refuse.outcomeUnknown('The database connection failed', failure);
    if (backend === undefined) throw unknown();
    try {
      while ((await this.query<{ alive: boolean }>(S.backendAlive, [backend]))[0]?.alive) {
        if (performance.now() >= deadline) throw unknown();
        await sleep(5);
      }
    } catch (error) {
      if (error instanceof StockError) throw error;
      throw unknown();
    }
  }

  async getCart(ctx: CallContext, cartId: string): Promise<CartView> {
    const cart = await this.t.loadCart(undefined, ctx, cartId);
    const { now } = cart;
    if (cart.status !== 'checked_out') return this.t.cartViewOf(undefined, cart, now, null);
    // A sold cart shows what was sold, at the prices of the sale.
    const order = await this.t.orderOf(undefined, cart.id);
    return cartView(cart, order.lines, now, order.order_id);
  }

  async checkout(ctx: CallContext, input: CheckoutInput): Promise<OrderView> {
    const started = performance.now();
    if (this.tuning.oneStatement !== false && input.idempotencyKey === undefined) {
      const orderId = newId('ord_');
      const order = await this.oneStatement<CheckoutRow, OrderView>({
        statement: S.checkoutCart,
        values: ({ fixedAt, offsetMs }, remaining) => [
          input.cartId,
          ctx.channel,
          holderOf(ctx),
          orderId,
          fixedAt,
          offsetMs,
          remaining,
        ],
        started,
        answer: (rows) => checkoutAnswerOf(rows, { ctx, cartId: input.cartId, orderId }),
        committed: S.orderExists,
        key: orderId,
        recover: () => this.t.orderOf(undefined, input.cartId),
      });
      if (order) return order;
    }
    return this.write((tx) => this.t.checkoutTx(tx, ctx, input), started);
  }

  async releaseCart(ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult> {
    if (input.sku !== undefined) assertSku(input.sku);
    return this.write((tx) => this.t.releaseTx(tx, ctx, input));
  }

  async restock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 1, MAX_STOCK);
    return this.write((tx) => this.t.restock(tx, ctx, change));
  }

  async setStock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 0, MAX_STOCK);
    return this.write((tx) => this.t.setStock(tx, ctx, change));
  }

  async upsertProduct(_ctx: CallContext, product: ProductInput): Promise<ProductView> {
    assertProduct(product);
    return this.write((tx) => this.t.upsert(tx, product));
  }

  async importProducts(
    ctx: CallContext,
    rows: ImportRow[],
    options: ImportOptions = { setStock: false },
  ): Promise<ImportResult> {
    assertImportRows(rows);
    return this.write((tx) => this.t.importRows(tx, ctx, rows, options));
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
      const batch = await this.write((tx) => this.t.sweepBatchTx(tx, batchSize));
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
