// The PostgreSQL store: every stock write is one READ COMMITTED transaction that locks its rows before it reads them.
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { StoredCart } from '../../domain/decisions.js';
import { refuse } from '../../domain/errors.js';
import { newId } from '../../domain/rules.js';
import type { AuditReport, CallContext, CartView, OrderView, ProductView } from '../../domain/types.js';
import { cartView, productView } from '../../domain/views.js';
import { redactUrl } from '../database-url.js';
import type { McpSessionStore } from '../mcp-sessions.js';
import type { OAuthStore } from '../oauth.js';
import { holderOf, type StoredToken, searchTerms } from '../shared.js';
import type {
  AddToCartInput,
  AuditOptions,
  CheckoutInput,
  InventoryStore,
  SearchQuery,
  StoreOptions,
} from '../store.js';
import { type Engine, type Operation, type Reader, runAsync } from '../workflow/engine.js';
import { readOrderForCart } from '../workflow/orders.js';
import { type NewToken, type ProductWithExpired, StockStore } from '../workflow/stock-store.js';
import { auditOnClient } from './audit-connection.js';
import { PostgresReader } from './engine.js';
import { postgresLimiters } from './limits.js';
import { postgresMcpSessionStore } from './mcp-sessions.js';
import { postgresOAuthStore } from './oauth.js';
import {
  answerOf,
  type CheckoutRow,
  checkoutAnswerOf,
  fitsOneStatement,
  type OneStatementRow,
  PRESET_HOST_ARRAYS,
} from './one-statement.js';
import { asciiLowerJs, S } from './statements.js';
import { WritePath } from './write-path.js';

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/postgres', import.meta.url));

/** Session advisory lock that serialises migration when several servers start at once ("stocklok" in ASCII). */
const MIGRATION_LOCK = '8319396884454862699';

// The lock order and the time every write transaction keeps: see engine.ts.

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

export class PostgresStore extends StockStore implements InventoryStore {
  readonly dialect = 'postgres' as const;
  private closed = false;
  readonly limiter: InventoryStore['limiter'];
  readonly oauth: OAuthStore;
  readonly mcpSessions: McpSessionStore;
  /** Transactions, their lock budget and retries, and plain reads on pooled connections. */
  private readonly db: WritePath;
  /** The reads get_cart shares with the write path, on pooled connections. */
  private readonly reader: PostgresReader;

  constructor(
    private readonly pool: pg.Pool,
    readonly options: StoreOptions,
  ) {
    super();
    this.db = new WritePath(pool, options);
    this.reader = new PostgresReader((statement, values) => this.db.query(statement, values));
    this.oauth = this.releasingOnRevoke(postgresOAuthStore(pool));
    this.mcpSessions = postgresMcpSessionStore(pool);
    this.limiter = postgresLimiters(pool);
  }

  protected readWith<R>(body: (r: Reader) => Operation<R>): Promise<R> {
    return runAsync(body(this.reader));
  }

  protected transact<R>(body: (e: Engine) => Operation<R>, started?: number): Promise<R> {
    return this.db.write((e) => runAsync(body(e)), started);
  }

  // ---------------------------------------------------------------- InventoryStore

  async searchProducts(query: SearchQuery): Promise<ProductView[]> {
    const time = this.db.databaseTime();
    const rows = await this.db.query<ProductWithExpired>(S.search, [
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
    const { fixedAt, offsetMs } = this.db.databaseTime();
    return skus
      ? this.db.query<ProductWithExpired>(S.productsIn, [skus, fixedAt, offsetMs])
      : this.db.query<ProductWithExpired>(S.allProducts, [fixedAt, offsetMs]);
  }

  /** A new cart without a key or an OAuth holder: one statement (one-statement.ts), unless StoreOptions.oneStatement is false. */
  protected addToCartFast(
    ctx: CallContext,
    input: AddToCartInput,
    started: number,
  ): Promise<CartView | undefined> | undefined {
    if (this.options.oneStatement === false || !fitsOneStatement(ctx, input, this.options.limits)) return;
    const cartId = newId('cart_');
    const { reservationTtlMs: ttlMs, limits } = this.options;
    return this.db.oneStatement<OneStatementRow, CartView>({
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

  async getCart(ctx: CallContext, cartId: string): Promise<CartView> {
    const time = this.db.databaseTime();
    const values = [cartId, ctx.channel, holderOf(ctx), time.fixedAt, time.offsetMs];
    const [cart] = await this.db.query<StoredCart & { now: number }>(S.cart, values);
    if (!cart) throw refuse.cartNotFound(cartId);
    const { now } = cart;
    if (cart.status !== 'checked_out') return cartView(cart, await this.reader.lineViews(cart.id), now, null);
    // A sold cart shows what was sold, at the prices of the sale.
    const order = await this.reader.orderForCart(cart.id);
    if (!order) throw new Error(`checked-out cart ${cart.id} has no order`);
    return cartView(cart, await this.reader.orderLines(order.id), now, order.id);
  }

  /**
   * A checkout without a key: one statement (one-statement.ts), unless StoreOptions.oneStatement is false. The
   * statement reads the channel's checkout mode itself and writes the order as the general path would, holder
   * and all, in either mode.
   */
  protected checkoutFast(
    ctx: CallContext,
    input: CheckoutInput,
    started: number,
  ): Promise<OrderView | undefined> | undefined {
    if (this.options.oneStatement === false || input.idempotencyKey !== undefined) return;
    const orderId = newId('ord_');
    const paymentWindowMs = this.paymentWindowMs;
    return this.db.oneStatement<CheckoutRow, OrderView>({
      statement: S.checkoutCart,
      values: ({ fixedAt, offsetMs }, remaining) => [
        input.cartId,
        ctx.channel,
        holderOf(ctx),
        orderId,
        fixedAt,
        offsetMs,
        remaining,
        paymentWindowMs,
        ...PRESET_HOST_ARRAYS,
      ],
      started,
      answer: (rows) => checkoutAnswerOf(rows, { ctx, cartId: input.cartId, orderId, paymentWindowMs }),
      committed: S.orderExists,
      key: orderId,
      recover: () => this.readWith((r) => readOrderForCart(r, input.cartId, this.now())),
    });
  }

  async pruneIdempotency(olderThanMs: number): Promise<number> {
    const { fixedAt, offsetMs } = this.db.databaseTime();
    return this.db.write((e) => e.tx.run(S.pruneIdempotency, [olderThanMs, fixedAt, offsetMs]));
  }

  async audit(options: AuditOptions = {}): Promise<AuditReport> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      // One snapshot for every check while writers carry on.
      return await auditOnClient(client, this.db.databaseTime(), options);
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
    return (await this.db.query(S.anyProduct, [])).length === 0;
  }

  protected async insertToken(token: NewToken): Promise<void> {
    const { id, hash, channel, admin, label, now } = token;
    await this.db.write((e) => e.tx.run(S.insertToken, [id, hash, channel, admin, label, now]));
  }

  protected tokenRows(): Promise<StoredToken[]> {
    return this.db.query<StoredToken>(S.tokens, []);
  }

  protected async tokenByHash(hash: string): Promise<StoredToken | undefined> {
    return (await this.db.query<StoredToken>(S.tokenByHash, [hash]))[0];
  }

  protected revokeTokenRow(id: string): Promise<boolean> {
    const now = this.now();
    return this.db.write(async (e) => (await e.tx.run(S.revokeToken, [now, id])) > 0);
  }

  protected async touchToken(id: string, now: number): Promise<void> {
    await this.db.query(S.touchToken, [now, id]).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
