// The PostgreSQL store: every stock write is one READ COMMITTED transaction that locks its rows before it reads them.
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { DatabaseTime } from '../../domain/clock.js';
import { inRow, refuse, type ShortLine, StockError } from '../../domain/errors.js';
import {
  assertCartCaps,
  assertChannelCap,
  assertCount,
  assertImportRows,
  assertProduct,
  assertSku,
  iso,
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
  MovementKind,
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
import {
  type AuditQuery,
  type AuditRows,
  auditQueries,
  auditReport,
  databaseNow,
  TIMED_AUDIT_QUERIES,
} from '../audit.js';
import { redactUrl } from '../open.js';
import {
  fingerprint,
  hashToken,
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

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/postgres', import.meta.url));

/** Session advisory lock that serialises migration when several servers start at once ("stocklok" in ASCII). */
const MIGRATION_LOCK = '8319396884454862699';

/** Deadlocks and serialization failures are retried this many times (within the lock budget), then STORE_BUSY. */
const MAX_ATTEMPTS = 8;

/**
 * A call's lock budget is one deadline. PostgreSQL's timeouts count per statement (lock_timeout even per lock),
 * so a transaction re-sends what is left of the budget before a statement once this long has passed since it
 * last did: calls that wait on nothing pay no extra round trip, and a lock wait ends at most this late.
 */
const BUDGET_RESYNC_MS = 20;
/**
 * statement_timeout is what is left of the budget plus this much: it bounds a statement that waits on several
 * locks in turn, while a statement doing work as the deadline passes still gets to finish it.
 */
const STATEMENT_GRACE_MS = 250;
/** Past the deadline a statement may not wait for a lock at all (0 would mean "no limit"), only do its work. */
const NO_WAIT_MS = 1;

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

const PRODUCT_COLUMNS =
  'sku, name, description, price_minor, currency, on_hand, reserved, track_stock, active';

/** SQLite's LIKE and lower() fold ASCII letters only; this does the same, so both stores match alike. */
const asciiLower = (expr: string) =>
  `translate(${expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`;
const asciiLowerJs = (text: string) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Locks rows with `locking` (a SELECT … FOR UPDATE), then reads the time, after the locks, into `now`. */
const thenNow = (locking: string, fixedAt: string, offsetMs: string) =>
  `WITH locked AS MATERIALIZED (${locking}) SELECT locked.*, ${databaseNow(fixedAt, offsetMs)} AS now FROM locked`;

/** Expired holds of one SKU: free stock that no sweep has released yet (p is the products row). */
const EXPIRED_HELD = `(SELECT COALESCE(SUM(l.held), 0)::bigint FROM carts c JOIN cart_lines l ON l.cart_id = c.id
  WHERE l.sku = p.sku AND c.status = 'open' AND c.expires_at <= $NOW)`;

interface Statement {
  name: string;
  text: string;
}

function statements<K extends string>(texts: Record<K, string>): Record<K, Statement> {
  const out = {} as Record<K, Statement>;
  for (const key of Object.keys(texts) as K[]) out[key] = { name: `stocklock_${key}`, text: texts[key] };
  return out;
}

// Every statement is named, so each connection parses and plans it once: the hot path builds no SQL.
const S = statements({
  // Carts that may still sell this SKU: open ones, and expired ones a later call can revive.
  cartsWithSku: `SELECT COUNT(*) AS carts FROM cart_lines l JOIN carts c ON c.id = l.cart_id
    WHERE l.sku = $1 AND c.status IN ('open', 'expired')`,
  lockProduct: thenNow(`SELECT ${PRODUCT_COLUMNS} FROM products WHERE sku = $1 FOR UPDATE`, '$2', '$3'),
  lockProducts: thenNow(
    `SELECT ${PRODUCT_COLUMNS} FROM products WHERE sku = ANY($1::text[]) ORDER BY sku COLLATE "C" FOR UPDATE`,
    '$2',
    '$3',
  ),
  // A cart someone else has locked is theirs to decide on (its owner may be extending it): skipped, not awaited.
  expiredHolds: `SELECT l.cart_id, l.held, c.channel FROM carts c JOIN cart_lines l ON l.cart_id = c.id
    WHERE l.sku = $1 AND c.status = 'open' AND c.expires_at <= $2 AND l.held > 0
      AND ($3::text IS NULL OR c.id <> $3::text)
    ORDER BY c.expires_at, c.id COLLATE "C"
    FOR UPDATE OF c SKIP LOCKED`,
  expiredHeldSum: `SELECT COALESCE(SUM(l.held), 0)::bigint AS held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
    WHERE l.sku = $1 AND c.status = 'open' AND c.expires_at <= $2`,
  releaseLines: 'UPDATE cart_lines SET held = 0 WHERE sku = $1 AND cart_id = ANY($2::text[])',
  addReserved: `UPDATE products SET reserved = reserved + $1::integer WHERE sku = $2 RETURNING ${PRODUCT_COLUMNS}`,
  // The database makes the decision again under the row lock: no row back means not enough stock.
  holdIfAvailable: `UPDATE products SET reserved = reserved + $1::integer
    WHERE sku = $2 AND on_hand - reserved >= $1::integer RETURNING ${PRODUCT_COLUMNS}`,
  addStock: `UPDATE products SET on_hand = on_hand + $1::integer, reserved = reserved + $2::integer, updated_at = $3
    WHERE sku = $4 RETURNING ${PRODUCT_COLUMNS}`,
  setHeld: 'UPDATE cart_lines SET held = $1 WHERE cart_id = $2 AND sku = $3',
  clearHeld: 'UPDATE cart_lines SET held = 0 WHERE cart_id = $1 AND sku = ANY($2::text[]) AND held > 0',
  channelExpiredHeld: `SELECT COALESCE(SUM(l.held), 0)::bigint AS held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
    WHERE c.channel = $1 AND c.status = 'open' AND c.expires_at <= $2 AND c.id <> $3`,
  // The end of every write, in one round trip: the ledger rows, then the channel counters in channel order.
  flush: `WITH ledger AS (
      INSERT INTO stock_movements
        (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
      SELECT $1, m.sku, m.kind, m.quantity, m.on_hand_delta, m.reserved_delta, m.cart_id, m.order_id, m.channel, m.note
      FROM unnest($2::text[], $3::text[], $4::integer[], $5::integer[], $6::integer[], $7::text[], $8::text[],
                  $9::text[], $10::text[])
        AS m(sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note))
    INSERT INTO channel_holds (channel, held)
    SELECT d.channel, d.delta FROM unnest($11::text[], $12::bigint[]) AS d(channel, delta) ORDER BY d.channel COLLATE "C"
    ON CONFLICT (channel) DO UPDATE SET held = channel_holds.held + excluded.held
    RETURNING channel, held`,
  cart: `SELECT id, channel, status, currency, created_at, updated_at, expires_at, ${databaseNow('$3', '$4')} AS now
    FROM carts WHERE id = $1 AND channel = $2`,
  lockCart: thenNow(
    'SELECT id, channel, status, currency, created_at, updated_at, expires_at FROM carts WHERE id = $1 AND channel = $2 FOR UPDATE',
    '$3',
    '$4',
  ),
  // A new cart and its first line in one statement (the line's foreign key is checked at its end).
  insertCartWithLine: `WITH cart AS (
      INSERT INTO carts (id, channel, status, currency, created_at, updated_at, expires_at)
      VALUES ($1, $2, 'open', $3, $4, $4, $5))
    INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES ($1, $6, $7, $8)`,
  touchCart: 'UPDATE carts SET status = $1, currency = $2, updated_at = $3, expires_at = $4 WHERE id = $5',
  closeCarts: 'UPDATE carts SET status = $1, updated_at = $2 WHERE id = ANY($3::text[])',
  lines: 'SELECT sku, quantity, held FROM cart_lines WHERE cart_id = $1 ORDER BY sku COLLATE "C"',
  upsertLine: `INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES ($1, $2, $3, $4)
    ON CONFLICT (cart_id, sku) DO UPDATE
      SET quantity = cart_lines.quantity + excluded.quantity, held = cart_lines.held + excluded.held`,
  deleteLine: 'DELETE FROM cart_lines WHERE cart_id = $1 AND sku = $2',
  lineViews: `SELECT l.sku, p.name, l.quantity, p.price_minor AS unit_price_minor
    FROM cart_lines l JOIN products p ON p.sku = l.sku WHERE l.cart_id = $1 ORDER BY l.sku COLLATE "C"`,
  orderForCart: 'SELECT id, cart_id, currency, created_at FROM orders WHERE cart_id = $1',
  orderLines:
    'SELECT sku, name, quantity, unit_price_minor FROM order_lines WHERE order_id = $1 ORDER BY sku COLLATE "C"',
  insertOrder:
    'INSERT INTO orders (id, cart_id, channel, total_minor, currency, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
  insertOrderLines: `INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor)
    SELECT $1, l.sku, l.name, l.quantity, l.unit_price_minor
    FROM unnest($2::text[], $3::text[], $4::integer[], $5::bigint[]) AS l(sku, name, quantity, unit_price_minor)`,
  // Calls with one idempotency key queue here, so the second finds the first's record instead of a duplicate key.
  keyLock: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))',
  idempotency:
    'SELECT fingerprint, result FROM idempotency_records WHERE channel = $1 AND tool = $2 AND key = $3',
  saveIdempotency: `INSERT INTO idempotency_records (channel, tool, key, fingerprint, result, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)`,
  pruneIdempotency: `DELETE FROM idempotency_records WHERE created_at < ${databaseNow('$2', '$3')} - $1::bigint`,
  now: `SELECT ${databaseNow('$1', '$2')} AS now`,
  // Open, unexpired carts with a line of this SKU.
  liveCartsWithSku: `SELECT COUNT(*) AS carts FROM cart_lines l JOIN carts c ON c.id = l.cart_id
    WHERE l.sku = $1 AND c.status = 'open' AND c.expires_at > $2`,
  // Several sweepers at once each take different carts: a locked cart belongs to whoever locked it.
  expiredCarts: `SELECT id, channel FROM carts WHERE status = 'open' AND expires_at <= $1
    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
  heldLinesOf: `SELECT cart_id, sku, held FROM cart_lines WHERE cart_id = ANY($1::text[]) AND held > 0
    ORDER BY sku COLLATE "C", cart_id COLLATE "C"`,
  insertProduct: `INSERT INTO products (sku, name, description, price_minor, currency, track_stock, active, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (sku) DO NOTHING RETURNING ${PRODUCT_COLUMNS}`,
  updateProduct: `UPDATE products SET name = $2, description = $3, price_minor = $4, currency = $5, track_stock = $6,
    active = $7, updated_at = $8 WHERE sku = $1 RETURNING ${PRODUCT_COLUMNS}`,
  // Every term must match the SKU, name or description; expired holds count as available.
  search: `SELECT * FROM (
      SELECT ${PRODUCT_COLUMNS.replace(/(\w+)/g, 'p.$1')}, ${EXPIRED_HELD.replace('$NOW', 'n.now')} AS expired_held
      FROM products p, (SELECT ${databaseNow('$3', '$6')} AS now) n
      WHERE p.active AND NOT EXISTS (
        SELECT 1 FROM unnest($1::text[]) AS t(term)
        WHERE NOT (${asciiLower('p.sku')} LIKE '%' || t.term || '%' ESCAPE '\\'
          OR ${asciiLower('p.name')} LIKE '%' || t.term || '%' ESCAPE '\\'
          OR ${asciiLower("COALESCE(p.description, '')")} LIKE '%' || t.term || '%' ESCAPE '\\'))
    ) s
    WHERE NOT $4::boolean OR NOT track_stock OR on_hand - reserved + expired_held > 0
    ORDER BY (${asciiLower('sku')} = $2::text) DESC, name COLLATE "C", sku COLLATE "C"
    LIMIT $5`,
  productsIn: `SELECT ${PRODUCT_COLUMNS.replace(/(\w+)/g, 'p.$1')},
      CASE WHEN p.track_stock THEN ${EXPIRED_HELD.replace('$NOW', 'n.now')} ELSE 0 END AS expired_held
    FROM products p, (SELECT ${databaseNow('$2', '$3')} AS now) n
    WHERE p.sku = ANY($1::text[]) ORDER BY p.sku COLLATE "C"`,
  allProducts: `SELECT ${PRODUCT_COLUMNS.replace(/(\w+)/g, 'p.$1')},
      CASE WHEN p.track_stock THEN ${EXPIRED_HELD.replace('$NOW', 'n.now')} ELSE 0 END AS expired_held
    FROM products p, (SELECT ${databaseNow('$1', '$2')} AS now) n ORDER BY p.sku COLLATE "C"`,
  anyProduct: 'SELECT 1 FROM products LIMIT 1',
  insertToken:
    'INSERT INTO api_tokens (id, token_hash, channel, admin, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
  tokens:
    'SELECT id, channel, admin, label, created_at, revoked_at, last_used_at FROM api_tokens ORDER BY created_at, id COLLATE "C"',
  tokenByHash: `SELECT id, channel, admin, label, created_at, revoked_at, last_used_at FROM api_tokens
    WHERE token_hash = $1 AND revoked_at IS NULL`,
  revokeToken: 'UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL',
  // Authentication never queues behind a lock on the token row (a revoke, another server's touch): skip it.
  touchToken: `UPDATE api_tokens SET last_used_at = $1
    WHERE id = (SELECT id FROM api_tokens WHERE id = $2 FOR UPDATE SKIP LOCKED)`,
});

interface StoredCart extends CartRow {
  updated_at: number;
}

interface StoredLine {
  sku: string;
  quantity: number;
  held: number;
}

interface Movement {
  sku: string;
  kind: MovementKind;
  quantity: number;
  on_hand_delta: number;
  reserved_delta: number;
  cart_id: string | null;
  order_id: string | null;
  channel: string | null;
  note?: string | null;
}

interface Hold {
  cart_id: string;
  held: number;
  channel: string;
}

/** Thrown inside a transaction to run it again from the start (a row another transaction just created). */
class RetryTransaction extends Error {}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const ignoreLostConnection = () => undefined;

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

/**
 * The connection died under the transaction (a restart, a failover, pg_terminate_backend, the network): whatever
 * it had not committed is gone, so before COMMIT the whole transaction can run again on another connection.
 */
function isConnectionLost(error: unknown): boolean {
  const code = pgCode(error);
  if (code !== undefined) {
    // 08: connection exception; 57P01–57P03: the server is shutting down or was told to end this session.
    return (
      code.startsWith('08') || /^57P0[123]$/.test(code) || ['ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code)
    );
  }
  return (
    error instanceof Error && /Connection terminated|not queryable|connection error/i.test(error.message)
  );
}

/** A COMMIT that failed with one of these was rolled back by the server; any other failure leaves it unknown. */
function isDefiniteRollback(error: unknown): boolean {
  const code = pgCode(error);
  // 23: a deferred constraint; 40: serialization failure or deadlock. Both roll back before the commit record.
  return code !== undefined && (code.startsWith('23') || code.startsWith('40'));
}

/** The server takes no writes (a standby, default_transaction_read_only, a full disk): say so, not "internal". */
function readOnlyRefusal(error: unknown): StockError | undefined {
  const code = pgCode(error);
  if (code === '25006') {
    return refuse.readOnly(
      'read_only_database',
      'the PostgreSQL server accepts no writes (a read-only standby, or default_transaction_read_only is on)',
      error,
    );
  }
  if (code === '53100')
    return refuse.readOnly('disk_full', 'the disk of the PostgreSQL server is full', error);
  return undefined;
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

  /** When the timeouts last sent to the server were computed (performance.now()). */
  private budgetSentAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly client: pg.PoolClient,
    private readonly time: DatabaseTime,
    /** The call's one deadline (performance.now() ms) for every lock wait, on every attempt. */
    readonly deadline: number,
  ) {}

  /** BEGIN, with the lock timeouts set to what is left of the call's budget, in one round trip. */
  async begin(): Promise<void> {
    await this.client.query(`BEGIN; ${this.budgetSettings()}`);
  }

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
    await this.keepBudget();
    const result = await this.client.query({ name: statement.name, text: statement.text, values });
    return result.rows as T[];
  }

  async row<T>(statement: Statement, values: unknown[]): Promise<T | undefined> {
    return (await this.rows<T>(statement, values))[0];
  }

  async run(statement: Statement, values: unknown[]): Promise<number> {
    await this.keepBudget();
    const result = await this.client.query({ name: statement.name, text: statement.text, values });
    return result.rowCount ?? 0;
  }

  /** Re-sends the remaining budget when time has passed (a wait, or long work), so no wait outlives the deadline. */
  private async keepBudget(): Promise<void> {
    if (performance.now() - this.budgetSentAt < BUDGET_RESYNC_MS) return;
    await this.client.query(this.budgetSettings());
  }

  private budgetSettings(): string {
    this.budgetSentAt = performance.now();
    const remaining = Math.ceil(this.deadline - this.budgetSentAt);
    // statement_timeout bounds a statement that meets several locked rows in turn; past the deadline it only
    // guards against a runaway statement, while lock_timeout forbids any further wait.
    const lock = remaining > 0 ? remaining : NO_WAIT_MS;
    const statement = remaining > 0 ? remaining + STATEMENT_GRACE_MS : STATEMENT_GRACE_MS * 20;
    return `SET LOCAL lock_timeout = ${lock}; SET LOCAL statement_timeout = ${statement}`;
  }

  /** A channel whose holds changed at all keeps its row in the flush, even if the changes add up to zero. */
  addChannel(channel: string, delta: number): void {
    if (delta !== 0) this.channelDeltas.set(channel, (this.channelDeltas.get(channel) ?? 0) + delta);
  }

  movement(m: Movement): void {
    this.movements.push(m);
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
   * Runs `fn` in one transaction. Every wait of the call shares one deadline, --lock-timeout after it began: the
   * pool, each lock, and the retries of deadlocks, serialization failures and lost connections (which run the
   * whole transaction again, with jitter, a bounded number of times). Past it the call is STORE_BUSY. A
   * connection lost during COMMIT is OUTCOME_UNKNOWN: the commit may have happened.
   */
  private async write<R>(fn: (tx: Tx) => Promise<R>): Promise<R> {
    const started = performance.now();
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
   * (see the lock order above). The per-channel cap is decided here, under the channel row's lock.
   */
  private async flush(
    tx: Tx,
    capCheck?: { channel: string; adding: number; cartId: string; reviving: boolean },
  ): Promise<void> {
    // A revived cart counts in full even when its expired holds were never released (nothing added):
    // they had stopped counting, and reviving them must not slip past the cap.
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
    const cap = this.options.limits.maxChannelReserved;
    // Expired holds only ever lower the figure: within the cap by the counter alone means within the cap.
    if (counted <= cap) return;
    // Units the channel's other expired carts still hold no longer count against its cap.
    const expired =
      (await tx.row<{ held: number }>(S.channelExpiredHeld, [checking.channel, tx.now, checking.cartId]))
        ?.held ?? 0;
    assertChannelCap(this.options.limits, counted - checking.adding - expired, checking.adding);
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

  private lockedProduct(tx: Tx, sku: string): ProductRow {
    const product = tx.products.get(sku);
    // A programming error, not a refusal: stock must never change without its row lock.
    if (!product) throw new Error(`product ${sku} changed without its row lock`);
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

  /** Releases holds of one SKU (whose row this transaction has locked): lines, `reserved`, counters, ledger. */
  private async releaseHolds(tx: Tx, sku: string, holds: Hold[], kind: 'release' | 'expire'): Promise<void> {
    if (holds.length === 0) return;
    this.lockedProduct(tx, sku);
    await tx.run(S.releaseLines, [sku, holds.map((h) => h.cart_id)]);
    const units = holds.reduce((sum, h) => sum + h.held, 0);
    await this.updateProduct(tx, S.addReserved, [-units, sku]);
    for (const hold of holds) {
      tx.addChannel(hold.channel, -hold.held);
      tx.movement({
        sku,
        kind,
        quantity: hold.held,
        on_hand_delta: 0,
        reserved_delta: -hold.held,
        cart_id: hold.cart_id,
        order_id: null,
        channel: hold.channel,
      });
    }
  }

  /** Frees the SKU's holds in expired carts (other than `keepCartId`) before deciding on that SKU. */
  private async releaseExpired(tx: Tx, sku: string, now: number, keepCartId?: string): Promise<void> {
    this.lockedProduct(tx, sku);
    const holds = await tx.rows<Hold>(S.expiredHolds, [sku, now, keepCartId ?? null]);
    await this.releaseHolds(tx, sku, holds, 'expire');
  }

  /** Reserves `units` more of a tracked, locked product, or reports how many there are. */
  private async tryHold(tx: Tx, product: ProductRow, units: number): Promise<ShortLine | undefined> {
    const held = await this.updateProduct(tx, S.holdIfAvailable, [units, product.sku]);
    if (held) return undefined;
    const current = this.lockedProduct(tx, product.sku);
    return { sku: product.sku, requested: units, available: Math.max(0, current.on_hand - current.reserved) };
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

  /**
   * Makes every tracked line of the cart hold its full quantity again (an expired cart being revived, or a
   * line whose hold was freed): all or nothing, naming every short line. `lines` were read under the cart's
   * lock. `everyLine` (reviving, checkout) checks every line's product is still sold; otherwise only the lines
   * that hold less than their quantity are looked at.
   */
  private async holdAllLines(
    tx: Tx,
    cart: StoredCart,
    ctx: CallContext,
    lines: StoredLine[],
    everyLine: boolean,
  ): Promise<number> {
    const { now } = tx;
    const short: ShortLine[] = [];
    let added = 0;
    for (const line of lines) {
      if (!everyLine && line.held === line.quantity) continue;
      const product = await this.requireProduct(tx, line.sku);
      if (!product.track_stock || line.held === line.quantity) continue;
      await this.releaseExpired(tx, line.sku, now, cart.id);
      const need = line.quantity - line.held;
      const missing = await this.tryHold(tx, product, need);
      if (missing) {
        short.push({ sku: line.sku, requested: line.quantity, available: missing.available + line.held });
        continue;
      }
      await tx.run(S.setHeld, [line.quantity, cart.id, line.sku]);
      tx.movement({
        sku: line.sku,
        kind: 'reserve',
        quantity: need,
        on_hand_delta: 0,
        reserved_delta: need,
        cart_id: cart.id,
        order_id: null,
        channel: ctx.channel,
        note: everyLine ? 'cart revived' : 'hold restored',
      });
      added += need;
    }
    if (short.length > 0) throw refuse.outOfStock(short);
    return added;
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

    const { limits } = this.options;
    // The cart row is locked before any product row, and its lines read under that lock (their holds stand,
    // see the lock order above). An expired cart then locks every line's product at once, a live one those
    // of lines that hold less than their quantity.
    let found: StoredCart | undefined;
    let lines: StoredLine[] = [];
    if (input.cartId !== undefined) {
      found = (await tx.locked<StoredCart>(S.lockCart, [input.cartId, ctx.channel]))[0];
      if (found && found.status !== 'checked_out' && found.status !== 'released') {
        lines = await tx.rows<StoredLine>(S.lines, [found.id]);
        const expired = effectiveStatus(found, tx.now) === 'expired';
        const short = lines.filter((line) => expired || line.held < line.quantity);
        await this.lockProducts(tx, [input.sku, ...short.map((line) => line.sku)]);
      }
    }
    const product = await this.requireProduct(tx, input.sku);
    const { now } = tx;

    let cart: StoredCart;
    let revived = 0;
    let reviving = false;
    if (input.cartId === undefined) {
      cart = {
        id: newId('cart_'),
        channel: ctx.channel,
        status: 'open',
        currency: product.currency,
        created_at: now,
        updated_at: now,
        expires_at: now + this.options.reservationTtlMs,
      };
    } else {
      if (!found) throw refuse.cartNotFound(input.cartId);
      cart = found;
      if (cart.status === 'checked_out' || cart.status === 'released')
        throw refuse.cartClosed(cart.id, cart.status);
      if (cart.currency !== null && cart.currency !== product.currency) {
        throw refuse.currencyMismatch(product.sku, product.currency, cart.currency);
      }
      reviving = effectiveStatus(cart, now) === 'expired';
      // Reviving holds every line again; a live cart re-holds any line that lost its hold, so an open cart
      // never shows a tracked line that holds nothing.
      const unheld = lines.some(
        (line) => line.held < line.quantity && Boolean(tx.products.get(line.sku)?.track_stock),
      );
      if (reviving || unheld) revived = await this.holdAllLines(tx, cart, ctx, lines, reviving);
    }
    const line = lines.find((l) => l.sku === product.sku);
    const cartUnits = lines.reduce((sum, l) => sum + l.quantity, 0) + input.quantity;

    const lineQuantity = (line?.quantity ?? 0) + input.quantity;
    assertCartCaps(limits, lineQuantity, cartUnits);

    let held = 0;
    if (product.track_stock) {
      await this.releaseExpired(tx, product.sku, now, cart.id);
      const fresh = await this.requireProduct(tx, product.sku);
      const missing = await this.tryHold(tx, fresh, input.quantity);
      if (missing) throw refuse.outOfStock([missing]);
      held = input.quantity;
    }
    tx.addChannel(ctx.channel, held + revived);
    if (input.cartId === undefined) {
      await tx.run(S.insertCartWithLine, [
        cart.id,
        ctx.channel,
        product.currency,
        now,
        cart.expires_at,
        product.sku,
        input.quantity,
        held,
      ]);
    } else {
      await tx.run(S.upsertLine, [cart.id, product.sku, input.quantity, held]);
    }
    tx.movement({
      sku: product.sku,
      kind: 'reserve',
      quantity: input.quantity,
      on_hand_delta: 0,
      reserved_delta: held,
      cart_id: cart.id,
      order_id: null,
      channel: ctx.channel,
    });

    let view: CartView;
    if (input.cartId === undefined) {
      // A new cart holds just this line; its row already has the status, currency and expiry set below.
      const only: LineRow = {
        sku: product.sku,
        name: product.name,
        quantity: input.quantity,
        unit_price_minor: product.price_minor,
      };
      view = cartView(cart, [only], now, null);
    } else {
      cart.status = 'open';
      cart.expires_at = now + this.options.reservationTtlMs;
      cart.currency = product.currency;
      await tx.run(S.touchCart, ['open', cart.currency, now, cart.expires_at, cart.id]);
      view = await this.cartViewOf(tx, cart, now, null);
    }
    // The per-channel cap is decided under the channel row's lock, taken last.
    await this.flush(tx, { channel: ctx.channel, adding: held + revived, cartId: cart.id, reviving });
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
    const skus = (await tx.rows<StoredLine>(S.lines, [cart.id])).map((line) => line.sku);
    if (skus.length === 0) throw refuse.cartEmpty(cart.id);
    await this.lockProducts(tx, skus);
    // Read again under the product locks: an expiry elsewhere may have released a hold meanwhile.
    const lines = await tx.rows<StoredLine>(S.lines, [cart.id]);

    // Re-holds whatever expiry released; all or nothing.
    const revived = await this.holdAllLines(tx, cart, ctx, lines, true);
    if (revived > 0) tx.addChannel(ctx.channel, revived);

    const orderId = newId('ord_');
    const sold: LineRow[] = [];
    const clear: string[] = [];
    let unitsReleased = 0;
    for (const line of lines) {
      const product = await this.requireProduct(tx, line.sku);
      if (cart.currency !== null && product.currency !== cart.currency) {
        throw refuse.currencyMismatch(product.sku, product.currency, cart.currency);
      }
      const tracked = Boolean(product.track_stock);
      // holdAllLines made every tracked line hold its full quantity.
      const held = tracked ? line.quantity : line.held;
      if (held > 0 || tracked) {
        await this.updateProduct(tx, S.addStock, [tracked ? -line.quantity : 0, -held, now, line.sku]);
      }
      if (held > 0) clear.push(line.sku);
      unitsReleased += held;
      tx.movement({
        sku: line.sku,
        kind: 'sale',
        quantity: line.quantity,
        on_hand_delta: tracked ? -line.quantity : 0,
        reserved_delta: -held,
        cart_id: cart.id,
        order_id: orderId,
        channel: ctx.channel,
      });
      sold.push({
        sku: line.sku,
        name: product.name,
        quantity: line.quantity,
        unit_price_minor: product.price_minor,
      });
    }
    if (clear.length > 0) await tx.run(S.clearHeld, [cart.id, clear]);
    if (unitsReleased > 0) tx.addChannel(ctx.channel, -unitsReleased);
    // A cart takes its currency from its first line, so a cart with lines always has one.
    const currency = cart.currency as string;
    const total = sold.reduce((sum, line) => sum + line.quantity * line.unit_price_minor, 0);
    await tx.run(S.insertOrder, [orderId, cart.id, ctx.channel, total, currency, now]);
    await tx.run(S.insertOrderLines, [
      orderId,
      sold.map((l) => l.sku),
      sold.map((l) => l.name),
      sold.map((l) => l.quantity),
      sold.map((l) => l.unit_price_minor),
    ]);
    await tx.run(S.closeCarts, ['checked_out', now, [cart.id]]);

    const order = orderView({ id: orderId, cart_id: cart.id, currency, created_at: now }, sold);
    await this.flush(tx);
    await this.remember(tx, ctx, 'checkout', input.idempotencyKey, print, order, now);
    return order;
  }

  private async releaseTx(tx: Tx, ctx: CallContext, input: ReleaseInput): Promise<ReleaseResult> {
    const cart = await this.loadCart(tx, ctx, input.cartId);
    const { now } = tx;
    if (cart.status === 'checked_out') throw refuse.cartClosed(cart.id, cart.status);
    // Releasing twice is a no-op, so a retried call is safe.
    if (cart.status === 'released') return { cart: await this.cartViewOf(tx, cart, now, null), released: [] };
    const targets = (await tx.rows<StoredLine>(S.lines, [cart.id])).filter(
      (line) => input.sku === undefined || line.sku === input.sku,
    );
    await this.lockProducts(
      tx,
      targets.filter((line) => line.held > 0).map((line) => line.sku),
    );
    const released: { sku: string; quantity: number }[] = [];
    // Read again under the product locks: an expiry elsewhere may have released a hold meanwhile.
    for (const line of await tx.rows<StoredLine>(S.lines, [cart.id])) {
      if (input.sku !== undefined && line.sku !== input.sku) continue;
      if (line.held > 0) {
        await this.releaseHolds(
          tx,
          line.sku,
          [{ cart_id: cart.id, held: line.held, channel: ctx.channel }],
          'release',
        );
      }
      released.push({ sku: line.sku, quantity: line.quantity });
      if (input.sku !== undefined) await tx.run(S.deleteLine, [cart.id, line.sku]);
    }
    if (input.sku === undefined) {
      cart.status = 'released';
      await tx.run(S.closeCarts, ['released', now, [cart.id]]);
    }
    return { cart: await this.cartViewOf(tx, cart, now, null), released };
  }

  private async sweepBatchTx(tx: Tx, batchSize: number): Promise<SweepResult> {
    // Read before the carts are locked: a cart another writer extends meanwhile is checked again under its
    // lock (FOR UPDATE re-reads the row), so an early time only ever sweeps less.
    const now = await tx.clock();
    const carts = await tx.rows<{ id: string; channel: string }>(S.expiredCarts, [now, batchSize]);
    if (carts.length === 0) return { carts: 0, units: 0 };
    const ids = carts.map((cart) => cart.id);
    const channelOf = new Map(carts.map((cart) => [cart.id, cart.channel]));
    // Lines that hold nothing cannot start holding without the cart lock, which this transaction has.
    const before = await tx.rows<{ cart_id: string; sku: string; held: number }>(S.heldLinesOf, [ids]);
    await this.lockProducts(
      tx,
      before.map((line) => line.sku),
    );
    const bySku = new Map<string, Hold[]>();
    let units = 0;
    for (const line of await tx.rows<{ cart_id: string; sku: string; held: number }>(S.heldLinesOf, [ids])) {
      const holds = bySku.get(line.sku) ?? [];
      holds.push({ cart_id: line.cart_id, held: line.held, channel: channelOf.get(line.cart_id) ?? '' });
      bySku.set(line.sku, holds);
      units += line.held;
    }
    for (const [sku, holds] of bySku) await this.releaseHolds(tx, sku, holds, 'expire');
    await tx.run(S.closeCarts, ['expired', now, ids]);
    return { carts: carts.length, units };
  }

  private async changeStock(
    tx: Tx,
    product: ProductRow,
    kind: MovementKind,
    delta: number,
    channel: string | null,
    note: string | null,
    now: number,
  ): Promise<void> {
    if (product.on_hand + delta > MAX_STOCK) {
      throw refuse.invalid('quantity', `on-hand of "${product.sku}" would exceed ${MAX_STOCK}`);
    }
    await this.updateProduct(tx, S.addStock, [delta, 0, now, product.sku]);
    tx.movement({
      sku: product.sku,
      kind,
      quantity: Math.abs(delta),
      on_hand_delta: delta,
      reserved_delta: 0,
      cart_id: null,
      order_id: null,
      channel,
      note,
    });
  }

  private async setOnHand(
    tx: Tx,
    ctx: CallContext,
    product: ProductRow,
    onHand: number,
    kind: 'adjust' | 'import',
    note: string | undefined,
    now: number,
  ): Promise<void> {
    await this.releaseExpired(tx, product.sku, now);
    const current = await this.requireProduct(tx, product.sku, false);
    if (onHand < current.reserved) throw refuse.belowReserved(product.sku, onHand, current.reserved);
    const delta = onHand - current.on_hand;
    if (delta !== 0 || kind === 'import') {
      await this.changeStock(tx, current, kind, delta, ctx.channel, note ?? null, now);
    }
  }

  /** Returns whether the product existed. */
  private async upsertLocked(tx: Tx, input: ProductInput): Promise<boolean> {
    assertProduct(input);
    await this.lockProducts(tx, [input.sku]);
    const now = await tx.clock();
    const existing = tx.products.get(input.sku);
    const trackStock = input.track_stock ?? (existing ? Boolean(existing.track_stock) : true);
    if (existing && Boolean(existing.track_stock) !== trackStock) {
      await this.releaseExpired(tx, input.sku, now);
      const reserved = this.lockedProduct(tx, input.sku).reserved;
      if (reserved > 0) {
        throw refuse.invalid(
          'track_stock',
          `cannot change while carts hold ${reserved} units of "${input.sku}"; wait for them to close`,
        );
      }
      // Their lines hold nothing, and a live cart must not show a tracked line that holds nothing.
      const live = (await tx.row<{ carts: number }>(S.liveCartsWithSku, [input.sku, now]))?.carts ?? 0;
      if (trackStock && live > 0) {
        throw refuse.invalid(
          'track_stock',
          `cannot change while ${live} open carts have "${input.sku}"; wait for them to close or expire`,
        );
      }
    }
    if (existing && existing.currency !== input.currency) {
      const carts = (await tx.row<{ carts: number }>(S.cartsWithSku, [input.sku]))?.carts ?? 0;
      if (carts > 0) {
        throw refuse.invalid(
          'currency',
          `cannot change while ${carts} open or revivable carts hold "${input.sku}"; wait for them to close`,
        );
      }
    }
    const values = [
      input.sku,
      input.name,
      // Fields left out keep their current value, so a price-only update does not wipe or reactivate.
      input.description === undefined ? (existing?.description ?? null) : input.description,
      input.price_minor,
      input.currency,
      trackStock,
      input.active ?? (existing ? Boolean(existing.active) : true),
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
      const product = await this.requireProduct(tx, change.sku, false);
      const { now } = tx;
      await this.changeStock(tx, product, 'restock', change.quantity, ctx.channel, change.note ?? null, now);
      return this.level(tx, change.sku, now);
    });
  }

  async setStock(ctx: CallContext, change: StockChange): Promise<StockLevel> {
    assertSku(change.sku);
    assertCount(change.quantity, 'quantity', 0, MAX_STOCK);
    return this.write(async (tx) => {
      const product = await this.requireProduct(tx, change.sku, false);
      const { now } = tx;
      await this.setOnHand(tx, ctx, product, change.quantity, 'adjust', change.note, now);
      return this.level(tx, change.sku, now);
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
      const now = await tx.clock();
      const result: ImportResult = { created: 0, updated: 0 };
      for (const [index, row] of rows.entries()) {
        try {
          const existed = await this.upsertLocked(tx, row);
          result[existed ? 'updated' : 'created'] += 1;
          const product = await this.requireProduct(tx, row.sku, false);
          await this.setOnHand(tx, ctx, product, row.stock, 'import', 'catalog import', now);
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
    return {
      token,
      record: {
        id,
        channel,
        admin,
        label: label ?? null,
        created_at: iso(now),
        revoked_at: null,
        last_used_at: null,
      },
    };
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
