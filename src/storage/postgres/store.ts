// The PostgreSQL store: every stock write is one READ COMMITTED transaction that locks its rows before it reads them.
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { DatabaseTime } from '../../domain/clock.js';
import type { StoredCart } from '../../domain/decisions.js';
import { refuse, StockError } from '../../domain/errors.js';
import { newId } from '../../domain/rules.js';
import type { AuditReport, CallContext, CartView, OrderView, ProductView } from '../../domain/types.js';
import { cartView, productView } from '../../domain/views.js';
import { type AuditQuery, type AuditRows, auditQueries, auditReport, TIMED_AUDIT_QUERIES } from '../audit.js';
import { redactUrl } from '../database-url.js';
import type { OAuthStore } from '../oauth.js';
import { holderOf, type StoredToken, searchTerms } from '../shared.js';
import type { AddToCartInput, CheckoutInput, InventoryStore, SearchQuery, StoreOptions } from '../store.js';
import { type Engine, type Operation, type Reader, runAsync } from '../workflow/engine.js';
import { readOrderForCart } from '../workflow/orders.js';
import { type NewToken, type ProductWithExpired, StockStore } from '../workflow/stock-store.js';
import { PostgresEngine, PostgresReader } from './engine.js';
import {
  isConnectionLost,
  isDefiniteRollback,
  isLockWait,
  isRetryable,
  pgCode,
  readOnlyRefusal,
} from './errors.js';
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
import { Tx } from './tx.js';

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/postgres', import.meta.url));

/** Session advisory lock that serialises migration when several servers start at once ("stocklok" in ASCII). */
const MIGRATION_LOCK = '8319396884454862699';

/** Deadlocks and serialization failures are retried this many times (within the lock budget), then STORE_BUSY. */
const MAX_ATTEMPTS = 8;

// The lock order and the time every write transaction keeps: see engine.ts.

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

export class PostgresStore extends StockStore implements InventoryStore {
  readonly dialect = 'postgres' as const;
  private closed = false;
  readonly oauth: OAuthStore;
  /** The reads get_cart shares with the write path, on pooled connections. */
  private readonly reader: PostgresReader;

  constructor(
    private readonly pool: pg.Pool,
    readonly options: StoreOptions,
    private readonly tuning: PostgresTuning = {},
  ) {
    super();
    this.reader = new PostgresReader((statement, values) => this.query(statement, values));
    this.oauth = this.releasingOnRevoke(postgresOAuthStore(pool));
  }

  // ---------------------------------------------------------------- the write path

  /**
   * Runs `fn` in one transaction. Every wait of the call shares one deadline, --lock-timeout after it began: the
   * pool, each lock, and the retries of deadlocks, serialization failures and lost connections (which run the
   * whole transaction again, with jitter, a bounded number of times). Past it the call is STORE_BUSY. A
   * connection lost during COMMIT is OUTCOME_UNKNOWN: the commit may have happened.
   */
  private async write<R>(fn: (e: PostgresEngine) => Promise<R>, started = performance.now()): Promise<R> {
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
        const engine = new PostgresEngine(tx, this.options.limits);
        const result = await fn(engine);
        await engine.flush();
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

  protected readWith<R>(body: (r: Reader) => Operation<R>): Promise<R> {
    return runAsync(body(this.reader));
  }

  protected transact<R>(body: (e: Engine) => Operation<R>, started?: number): Promise<R> {
    return this.write((e) => runAsync(body(e)), started);
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
    const rows = await this.query<ProductWithExpired>(S.search, [
      searchTerms(query.query).map(asciiLowerJs),
      asciiLowerJs(query.query.trim()),
      time.fixedAt,
      query.inStockOnly,
      query.limit,
      time.offsetMs,
    ]);
    return rows.map((row) => productView(row, row.expired_held));
  }

  protected productRows(skus: string[] | undefined): Promise<ProductWithExpired[]> {
    // One statement, so every figure comes from one snapshot.
    const { fixedAt, offsetMs } = this.databaseTime();
    return skus
      ? this.query<ProductWithExpired>(S.productsIn, [skus, fixedAt, offsetMs])
      : this.query<ProductWithExpired>(S.allProducts, [fixedAt, offsetMs]);
  }

  /** A new cart without a key or an OAuth holder: one statement (one-statement.ts), unless tests turn it off. */
  protected addToCartFast(
    ctx: CallContext,
    input: AddToCartInput,
    started: number,
  ): Promise<CartView | undefined> | undefined {
    if (this.tuning.oneStatement === false || !fitsOneStatement(ctx, input, this.options.limits)) return;
    const cartId = newId('cart_');
    const { reservationTtlMs: ttlMs, limits } = this.options;
    return this.oneStatement<OneStatementRow, CartView>({
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
    const time = this.databaseTime();
    const values = [cartId, ctx.channel, holderOf(ctx), time.fixedAt, time.offsetMs];
    const [cart] = await this.query<StoredCart & { now: number }>(S.cart, values);
    if (!cart) throw refuse.cartNotFound(cartId);
    const { now } = cart;
    if (cart.status !== 'checked_out') return cartView(cart, await this.reader.lineViews(cart.id), now, null);
    // A sold cart shows what was sold, at the prices of the sale.
    const order = await this.reader.orderForCart(cart.id);
    if (!order) throw new Error(`checked-out cart ${cart.id} has no order`);
    return cartView(cart, await this.reader.orderLines(order.id), now, order.id);
  }

  /** A cart sold without a key: one statement (one-statement.ts), unless tests turn it off. */
  protected checkoutFast(
    ctx: CallContext,
    input: CheckoutInput,
    started: number,
  ): Promise<OrderView | undefined> | undefined {
    // The statement (migration 0004) writes an order with neither holder nor paid_at: an OAuth holder's order
    // must keep its holder, so only static tokens' checkouts take it.
    if (this.tuning.oneStatement === false || input.idempotencyKey !== undefined || ctx.holder) return;
    return this.checkoutInOneStatement(ctx, input, started);
  }

  /** The one statement sells: a channel whose orders await payment takes the general path. */
  private async checkoutInOneStatement(
    ctx: CallContext,
    input: CheckoutInput,
    started: number,
  ): Promise<OrderView | undefined> {
    if (!(await this.checksOutDirect(ctx.channel))) return undefined;
    const orderId = newId('ord_');
    return this.oneStatement<CheckoutRow, OrderView>({
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
      recover: () => this.readWith((r) => readOrderForCart(r, input.cartId, this.now())),
    });
  }

  async pruneIdempotency(olderThanMs: number): Promise<number> {
    const { fixedAt, offsetMs } = this.databaseTime();
    return this.write((e) => e.tx.run(S.pruneIdempotency, [olderThanMs, fixedAt, offsetMs]));
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

  protected async insertToken(token: NewToken): Promise<void> {
    const { id, hash, channel, admin, label, now } = token;
    await this.write((e) => e.tx.run(S.insertToken, [id, hash, channel, admin, label, now]));
  }

  protected tokenRows(): Promise<StoredToken[]> {
    return this.query<StoredToken>(S.tokens, []);
  }

  protected async tokenByHash(hash: string): Promise<StoredToken | undefined> {
    return (await this.query<StoredToken>(S.tokenByHash, [hash]))[0];
  }

  protected revokeTokenRow(id: string): Promise<boolean> {
    const now = this.now();
    return this.write(async (e) => (await e.tx.run(S.revokeToken, [now, id])) > 0);
  }

  protected async touchToken(id: string, now: number): Promise<void> {
    await this.query(S.touchToken, [now, id]).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
