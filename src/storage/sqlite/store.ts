// The SQLite store: every stock write is one synchronous better-sqlite3 transaction begun IMMEDIATE.
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { inRow, refuse, type ShortLine } from '../../domain/errors.js';
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
import { type AuditQuery, type AuditRows, auditQueries, auditReport, TIMED_AUDIT_QUERIES } from '../audit.js';
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
import { WriterQueue } from './writer-queue.js';

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/sqlite', import.meta.url));

/** SQLite's own busy handler sleeps in steps up to 100 ms; we let it wait only briefly, then retry off-thread. */
const SQLITE_BUSY_TIMEOUT_MS = 5;
/** Pages per backup step: all of them, so the copy is one snapshot and never restarts on a write. */
const BACKUP_ALL_PAGES = 0x7fffffff;

interface StoredCart extends CartRow {
  updated_at: number;
}

interface StoredLine {
  sku: string;
  quantity: number;
  held: number;
}

interface MovementParams {
  at: number;
  sku: string;
  kind: MovementKind;
  quantity: number;
  on_hand_delta: number;
  reserved_delta: number;
  cart_id: string | null;
  order_id: string | null;
  channel: string | null;
  note: string | null;
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * A write the disk or the file refused, said plainly (STORE_READ_ONLY), or OUTCOME_UNKNOWN when COMMIT itself failed
 * after its commit frame may have reached the WAL file (a failed fsync): SQLite rolls the transaction back in
 * memory, but a restart that recovers the WAL could still find it. A failed write (SQLITE_IOERR_WRITE,
 * SQLITE_FULL) stops before the commit frame, which SQLite writes last, so nothing was committed.
 */
function writeFailure(error: unknown, atCommit: boolean): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error;
  if (code === 'SQLITE_FULL') {
    return refuse.readOnly('disk_full', 'the disk holding the database file is full', error);
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    return refuse.readOnly(
      'read_only_file',
      `the database file or its directory cannot be written any more (${code})`,
      error,
    );
  }
  if (code.startsWith('SQLITE_IOERR')) {
    if (atCommit && code !== 'SQLITE_IOERR_WRITE') {
      return refuse.outcomeUnknown(`Writing the database file failed (${code})`, error);
    }
    return refuse.readOnly(
      'write_failed',
      `writing the database file failed (${code}): its disk failed or its filesystem turned read-only`,
      error,
    );
  }
  return error;
}

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
  private readonly s;
  private readonly tx;
  private readonly auditStatements: Record<AuditQuery, Database.Statement>;
  /** Set when a transaction's body has returned: an error after that came from its COMMIT. */
  private committing = false;

  constructor(
    private readonly db: Database.Database,
    readonly options: StoreOptions,
    private readonly writers?: WriterQueue,
  ) {
    const q = (sql: string) => db.prepare(sql);
    this.auditStatements = Object.fromEntries(
      Object.entries(auditQueries('sqlite')).map(([key, sql]) => [key, q(sql)]),
    ) as Record<AuditQuery, Database.Statement>;
    // Every statement is prepared once: the hot path builds no SQL.
    this.s = {
      product: q(
        'SELECT sku, name, description, price_minor, currency, on_hand, reserved, track_stock, active FROM products WHERE sku = ?',
      ),
      // Expired holds of one SKU, found through the (status, expires_at) index of carts.
      // CROSS JOIN keeps SQLite from starting at cart_lines_sku_held, which would visit every open hold of a
      // hot SKU on every reserve (O(open carts)); expired open carts are few, each line one primary-key probe.
      expiredHolds: q(
        `SELECT l.cart_id, l.held, c.channel FROM carts c CROSS JOIN cart_lines l ON l.cart_id = c.id AND l.sku = ?
         WHERE c.status = 'open' AND c.expires_at <= ? AND l.held > 0`,
      ),
      expiredHeldSum: q(
        `SELECT COALESCE(SUM(l.held), 0) AS held FROM carts c JOIN cart_lines l ON l.cart_id = c.id AND l.sku = ?
         WHERE c.status = 'open' AND c.expires_at <= ?`,
      ),
      addReserved: q('UPDATE products SET reserved = reserved + ? WHERE sku = ?'),
      addStock: q(
        'UPDATE products SET on_hand = on_hand + ?, reserved = reserved + ?, updated_at = ? WHERE sku = ?',
      ),
      setHeld: q('UPDATE cart_lines SET held = ? WHERE cart_id = ? AND sku = ?'),
      addChannelHeld: q(
        'INSERT INTO channel_holds (channel, held) VALUES (?, ?) ON CONFLICT (channel) DO UPDATE SET held = held + excluded.held',
      ),
      channelHeld: q('SELECT held FROM channel_holds WHERE channel = ?'),
      // Units the channel's other expired carts still hold: they no longer count against its cap.
      channelExpiredHeld: q(
        `SELECT COALESCE(SUM(l.held), 0) AS held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
         WHERE c.channel = ? AND c.status = 'open' AND c.expires_at <= ? AND c.id != ?`,
      ),
      movement: q(
        `INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
         VALUES (@at, @sku, @kind, @quantity, @on_hand_delta, @reserved_delta, @cart_id, @order_id, @channel, @note)`,
      ),
      cart: q(
        'SELECT id, channel, status, currency, created_at, updated_at, expires_at FROM carts WHERE id = ? AND channel = ?',
      ),
      insertCart: q(
        `INSERT INTO carts (id, channel, status, currency, created_at, updated_at, expires_at)
         VALUES (?, ?, 'open', ?, ?, ?, ?)`,
      ),
      touchCart: q('UPDATE carts SET status = ?, currency = ?, updated_at = ?, expires_at = ? WHERE id = ?'),
      closeCart: q('UPDATE carts SET status = ?, updated_at = ? WHERE id = ?'),
      lines: q('SELECT sku, quantity, held FROM cart_lines WHERE cart_id = ? ORDER BY sku'),
      upsertLine: q(
        `INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES (?, ?, ?, ?)
         ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = quantity + excluded.quantity, held = held + excluded.held`,
      ),
      deleteLine: q('DELETE FROM cart_lines WHERE cart_id = ? AND sku = ?'),
      // Carts that may still sell this SKU: open ones, and expired ones a later call can revive.
      cartsWithSku: q(
        `SELECT COUNT(*) AS carts FROM cart_lines l JOIN carts c ON c.id = l.cart_id
         WHERE l.sku = ? AND c.status IN ('open', 'expired')`,
      ),
      // Carts that are open and unexpired with a line of this SKU.
      liveCartsWithSku: q(
        `SELECT COUNT(*) AS carts FROM cart_lines l JOIN carts c ON c.id = l.cart_id
         WHERE l.sku = ? AND c.status = 'open' AND c.expires_at > ?`,
      ),
      lineViews: q(
        `SELECT l.sku, p.name, l.quantity, p.price_minor AS unit_price_minor
         FROM cart_lines l JOIN products p ON p.sku = l.sku WHERE l.cart_id = ? ORDER BY l.sku`,
      ),
      orderForCart: q('SELECT id, cart_id, currency, created_at FROM orders WHERE cart_id = ?'),
      orderLines: q(
        'SELECT sku, name, quantity, unit_price_minor FROM order_lines WHERE order_id = ? ORDER BY sku',
      ),
      insertOrder: q(
        'INSERT INTO orders (id, cart_id, channel, total_minor, currency, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertOrderLine: q(
        'INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor) VALUES (?, ?, ?, ?, ?)',
      ),
      idempotency: q(
        'SELECT fingerprint, result FROM idempotency_records WHERE channel = ? AND tool = ? AND key = ?',
      ),
      saveIdempotency: q(
        'INSERT INTO idempotency_records (channel, tool, key, fingerprint, result, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      pruneIdempotency: q('DELETE FROM idempotency_records WHERE created_at < ?'),
      expiredCarts: q(
        `SELECT id, channel FROM carts WHERE status = 'open' AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
      ),
      upsertProduct: q(
        `INSERT INTO products (sku, name, description, price_minor, currency, track_stock, active, created_at, updated_at)
         VALUES (@sku, @name, @description, @price_minor, @currency, @track_stock, @active, @now, @now)
         ON CONFLICT (sku) DO UPDATE SET name = excluded.name, description = excluded.description,
           price_minor = excluded.price_minor, currency = excluded.currency, track_stock = excluded.track_stock,
           active = excluded.active, updated_at = excluded.updated_at`,
      ),
      // Every term must match the SKU, name or description; expired holds count as available.
      search: q(
        `SELECT * FROM (
           SELECT p.sku, p.name, p.description, p.price_minor, p.currency, p.on_hand, p.reserved, p.track_stock,
             p.active, (SELECT COALESCE(SUM(l.held), 0) FROM carts c JOIN cart_lines l ON l.cart_id = c.id
               AND l.sku = p.sku WHERE c.status = 'open' AND c.expires_at <= @now) AS expired_held
           FROM products p
           WHERE p.active = 1 AND (SELECT COUNT(*) FROM json_each(@terms) t
             WHERE p.sku LIKE '%' || t.value || '%' ESCAPE '\\'
                OR p.name LIKE '%' || t.value || '%' ESCAPE '\\'
                OR COALESCE(p.description, '') LIKE '%' || t.value || '%' ESCAPE '\\') = json_array_length(@terms))
         WHERE @in_stock_only = 0 OR track_stock = 0 OR on_hand - reserved + expired_held > 0
         ORDER BY (lower(sku) = lower(@whole)) DESC, name, sku
         LIMIT @limit`,
      ),
      productsIn: q(
        `SELECT sku, name, description, price_minor, currency, on_hand, reserved, track_stock, active FROM products
         WHERE sku IN (SELECT value FROM json_each(?)) ORDER BY sku`,
      ),
      allProducts: q(
        'SELECT sku, name, description, price_minor, currency, on_hand, reserved, track_stock, active FROM products ORDER BY sku',
      ),
      anyProduct: q('SELECT 1 FROM products LIMIT 1'),
      insertToken: q(
        'INSERT INTO api_tokens (id, token_hash, channel, admin, label, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      tokens: q(
        'SELECT id, channel, admin, label, created_at, revoked_at, last_used_at FROM api_tokens ORDER BY created_at, id',
      ),
      tokenByHash: q(
        'SELECT id, channel, admin, label, created_at, revoked_at, last_used_at FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL',
      ),
      revokeToken: q('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      touchToken: q('UPDATE api_tokens SET last_used_at = ? WHERE id = ?'),
    };

    // Each transaction reads the clock once BEGIN IMMEDIATE has the lock, so a writer that waited decides with
    // the time it got the lock at, never one read before another writer's commit. The body's end is marked, so
    // a failure after it is known to come from COMMIT itself.
    const immediate = <A extends unknown[], R>(fn: (...args: A) => R) =>
      db.transaction((...args: A) => {
        const result = fn(...args);
        this.committing = true;
        return result;
      }).immediate;
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
        const product = this.requireProduct(change.sku, false);
        this.changeStock(product, 'restock', change.quantity, ctx.channel, change.note ?? null, now);
        return this.level(change.sku, now);
      }),
      setStock: immediate((ctx: CallContext, change: StockChange) => {
        const now = this.now();
        this.setOnHand(
          ctx,
          this.requireProduct(change.sku, false),
          change.quantity,
          'adjust',
          change.note,
          now,
        );
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
            this.setOnHand(
              ctx,
              this.requireProduct(row.sku, false),
              row.stock,
              'import',
              'catalog import',
              now,
            );
          } catch (error) {
            // DESIGN: import errors name the line, also when a row fails only inside the transaction.
            throw inRow(error, index);
          }
        });
        return result;
      }),
      sweepBatch: immediate((batchSize: number) => {
        const now = this.now();
        const carts = this.s.expiredCarts.all(now, batchSize) as { id: string; channel: string }[];
        let units = 0;
        for (const cart of carts) {
          for (const line of this.s.lines.all(cart.id) as StoredLine[]) {
            if (line.held > 0) {
              this.releaseHold(cart.id, cart.channel, line.sku, line.held, 'expire', now);
              units += line.held;
            }
          }
          this.s.closeCart.run('expired', now, cart.id);
        }
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
      this.committing = false;
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw writeFailure(error, this.committing);
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

  private isTracked(sku: string): boolean {
    return Boolean((this.s.product.get(sku) as ProductRow | undefined)?.track_stock);
  }

  private requireProduct(sku: string, activeOnly = true): ProductRow {
    const product = this.s.product.get(sku) as ProductRow | undefined;
    if (!product || (activeOnly && !product.active)) throw refuse.unknownSku(sku);
    return product;
  }

  private expiredHeld(sku: string, now: number): number {
    return (this.s.expiredHeldSum.get(sku, now) as { held: number }).held;
  }

  private recordMovement(m: Omit<MovementParams, 'note'> & { note?: string | null }): void {
    this.s.movement.run({ note: null, ...m });
  }

  private releaseHold(
    cartId: string,
    channel: string,
    sku: string,
    held: number,
    kind: 'release' | 'expire',
    now: number,
  ): void {
    this.s.setHeld.run(0, cartId, sku);
    this.s.addReserved.run(-held, sku);
    this.s.addChannelHeld.run(channel, -held);
    this.recordMovement({
      at: now,
      sku,
      kind,
      quantity: held,
      on_hand_delta: 0,
      reserved_delta: -held,
      cart_id: cartId,
      order_id: null,
      channel,
    });
  }

  /**
   * Frees the SKU's holds in expired carts (other than `keepCartId`) before deciding on that SKU. Returns
   * whether it freed any: only then is a product row read before the call stale.
   */
  private releaseExpired(sku: string, now: number, keepCartId?: string): boolean {
    const holds = this.s.expiredHolds.all(sku, now) as { cart_id: string; held: number; channel: string }[];
    let freed = false;
    for (const hold of holds) {
      if (hold.cart_id !== keepCartId) {
        this.releaseHold(hold.cart_id, hold.channel, sku, hold.held, 'expire', now);
        freed = true;
      }
    }
    return freed;
  }

  /** Reserves `units` more of a tracked product for a cart line, or reports how many there are. */
  private tryHold(product: ProductRow, units: number): ShortLine | undefined {
    const available = product.on_hand - product.reserved;
    if (available < units) return { sku: product.sku, requested: units, available: Math.max(0, available) };
    this.s.addReserved.run(units, product.sku);
    product.reserved += units;
    return undefined;
  }

  private loadCart(ctx: CallContext, cartId: string): StoredCart {
    const cart = this.s.cart.get(cartId, ctx.channel) as StoredCart | undefined;
    if (!cart) throw refuse.cartNotFound(cartId);
    return cart;
  }

  /**
   * Makes every tracked line of the cart hold its full quantity again (an expired cart being revived, or a
   * line whose hold was freed): all or nothing, naming every short line. `everyLine` (reviving, checkout)
   * checks every line's product is still sold; otherwise only lines that hold less than their quantity.
   */
  private holdAllLines(cart: StoredCart, ctx: CallContext, now: number, everyLine: boolean): number {
    const short: ShortLine[] = [];
    let added = 0;
    for (const line of this.s.lines.all(cart.id) as StoredLine[]) {
      if (!everyLine && line.held === line.quantity) continue;
      const product = this.requireProduct(line.sku);
      if (!product.track_stock || line.held === line.quantity) continue;
      const freed = this.releaseExpired(line.sku, now, cart.id);
      const need = line.quantity - line.held;
      // Re-read after releasing: the row read above still counts the holds just freed.
      const missing = this.tryHold(freed ? this.requireProduct(line.sku) : product, need);
      if (missing) {
        short.push({ sku: line.sku, requested: line.quantity, available: missing.available + line.held });
        continue;
      }
      this.s.setHeld.run(line.quantity, cart.id, line.sku);
      this.recordMovement({
        at: now,
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

  /**
   * A revived cart counts in full even when its holds were never released (revived 0): they were expired,
   * so they stopped counting, and reviving them must not slip past the cap.
   */
  private checkChannelCap(
    channel: string,
    adding: number,
    now: number,
    cartId: string,
    reviving = false,
  ): void {
    if (adding <= 0 && !reviving) return;
    const row = this.s.channelHeld.get(channel) as { held: number } | undefined;
    const expired = (this.s.channelExpiredHeld.get(channel, now, cartId) as { held: number }).held;
    assertChannelCap(this.options.limits, (row?.held ?? 0) - expired, adding);
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

    const product = this.requireProduct(input.sku);
    const { limits } = this.options;
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
      this.s.insertCart.run(cart.id, ctx.channel, product.currency, now, now, cart.expires_at);
    } else {
      cart = this.loadCart(ctx, input.cartId);
      if (cart.status === 'checked_out' || cart.status === 'released')
        throw refuse.cartClosed(cart.id, cart.status);
      if (cart.currency !== null && cart.currency !== product.currency) {
        throw refuse.currencyMismatch(product.sku, product.currency, cart.currency);
      }
    }

    // A cart made by this call has no lines yet: its line and unit counts are known without a read.
    const isNew = input.cartId === undefined;
    const lines = isNew ? [] : (this.s.lines.all(cart.id) as StoredLine[]);
    if (!isNew) {
      reviving = effectiveStatus(cart, now) === 'expired';
      // Reviving holds every line again; a live cart re-holds any line that lost its hold (a server whose
      // clock ran ahead released it), so an open cart never shows a line that holds nothing.
      if (reviving || lines.some((l) => l.held < l.quantity && this.isTracked(l.sku))) {
        revived = this.holdAllLines(cart, ctx, now, reviving);
      }
    }
    const line = lines.find((l) => l.sku === product.sku);
    const lineQuantity = (line?.quantity ?? 0) + input.quantity;
    const cartUnits = lines.reduce((sum, l) => sum + l.quantity, 0) + input.quantity;
    assertCartCaps(limits, lineQuantity, cartUnits);

    let held = 0;
    if (product.track_stock) {
      const freed = this.releaseExpired(product.sku, now, cart.id);
      // The row read above is stale if holds of it were just freed, or held again by re-holding the cart.
      const current = freed || revived > 0 ? this.requireProduct(product.sku) : product;
      const missing = this.tryHold(current, input.quantity);
      if (missing) throw refuse.outOfStock([missing]);
      held = input.quantity;
    }
    this.checkChannelCap(ctx.channel, held + revived, now, cart.id, reviving);
    if (held + revived > 0) this.s.addChannelHeld.run(ctx.channel, held + revived);
    this.s.upsertLine.run(cart.id, product.sku, input.quantity, held);
    this.recordMovement({
      at: now,
      sku: product.sku,
      kind: 'reserve',
      quantity: input.quantity,
      on_hand_delta: 0,
      reserved_delta: held,
      cart_id: cart.id,
      order_id: null,
      channel: ctx.channel,
    });
    if (!isNew) {
      // The insert already set all of this for a new cart.
      cart.status = 'open';
      cart.expires_at = now + this.options.reservationTtlMs;
      cart.currency = product.currency;
      this.s.touchCart.run('open', cart.currency, now, cart.expires_at, cart.id);
    }

    const view = this.cartViewOf(cart, now, null);
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
    if (lines.length === 0) throw refuse.cartEmpty(cart.id);

    // Re-holds whatever expiry (or a product becoming tracked) released; all or nothing.
    const revived = this.holdAllLines(cart, ctx, now, true);
    if (revived > 0) this.s.addChannelHeld.run(ctx.channel, revived);

    const orderId = newId('ord_');
    const sold: LineRow[] = [];
    let unitsReleased = 0;
    for (const line of lines) {
      const product = this.requireProduct(line.sku);
      if (cart.currency !== null && product.currency !== cart.currency) {
        throw refuse.currencyMismatch(product.sku, product.currency, cart.currency);
      }
      const tracked = Boolean(product.track_stock);
      // holdAllLines made every tracked line hold its full quantity.
      const held = tracked ? line.quantity : line.held;
      if (held > 0 || tracked) this.s.addStock.run(tracked ? -line.quantity : 0, -held, now, line.sku);
      if (held > 0) this.s.setHeld.run(0, cart.id, line.sku);
      unitsReleased += held;
      this.recordMovement({
        at: now,
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
    if (unitsReleased > 0) this.s.addChannelHeld.run(ctx.channel, -unitsReleased);
    // A cart takes its currency from its first line, so a cart with lines always has one.
    const currency = cart.currency as string;
    const total = sold.reduce((sum, line) => sum + line.quantity * line.unit_price_minor, 0);
    this.s.insertOrder.run(orderId, cart.id, ctx.channel, total, currency, now);
    for (const line of sold) {
      this.s.insertOrderLine.run(orderId, line.sku, line.name, line.quantity, line.unit_price_minor);
    }
    this.s.closeCart.run('checked_out', now, cart.id);

    const order = orderView({ id: orderId, cart_id: cart.id, currency, created_at: now }, sold);
    this.remember(ctx, 'checkout', input.idempotencyKey, print, order, now);
    return order;
  }

  private releaseLocked(ctx: CallContext, input: ReleaseInput, now: number): ReleaseResult {
    const cart = this.loadCart(ctx, input.cartId);
    if (cart.status === 'checked_out') throw refuse.cartClosed(cart.id, cart.status);
    // Releasing twice is a no-op, so a retried call is safe.
    if (cart.status === 'released') return { cart: this.cartViewOf(cart, now, null), released: [] };
    const released: { sku: string; quantity: number }[] = [];
    for (const line of this.s.lines.all(cart.id) as StoredLine[]) {
      if (input.sku !== undefined && line.sku !== input.sku) continue;
      if (line.held > 0) this.releaseHold(cart.id, ctx.channel, line.sku, line.held, 'release', now);
      released.push({ sku: line.sku, quantity: line.quantity });
      if (input.sku !== undefined) this.s.deleteLine.run(cart.id, line.sku);
    }
    if (input.sku === undefined) {
      cart.status = 'released';
      this.s.closeCart.run('released', now, cart.id);
    }
    return { cart: this.cartViewOf(cart, now, null), released };
  }

  private changeStock(
    product: ProductRow,
    kind: MovementKind,
    delta: number,
    channel: string | null,
    note: string | null,
    now: number,
  ): void {
    if (product.on_hand + delta > MAX_STOCK) {
      throw refuse.invalid('quantity', `on-hand of "${product.sku}" would exceed ${MAX_STOCK}`);
    }
    this.s.addStock.run(delta, 0, now, product.sku);
    this.recordMovement({
      at: now,
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

  private setOnHand(
    ctx: CallContext,
    product: ProductRow,
    onHand: number,
    kind: 'adjust' | 'import',
    note: string | undefined,
    now: number,
  ): void {
    this.releaseExpired(product.sku, now);
    const current = this.requireProduct(product.sku, false);
    if (onHand < current.reserved) throw refuse.belowReserved(product.sku, onHand, current.reserved);
    const delta = onHand - current.on_hand;
    if (delta !== 0 || kind === 'import')
      this.changeStock(current, kind, delta, ctx.channel, note ?? null, now);
  }

  /** Returns whether the product existed. */
  private upsertLocked(input: ProductInput, now: number): boolean {
    assertProduct(input);
    const existing = this.s.product.get(input.sku) as ProductRow | undefined;
    const trackStock = input.track_stock ?? (existing ? Boolean(existing.track_stock) : true);
    if (existing && Boolean(existing.track_stock) !== trackStock) {
      this.releaseExpired(input.sku, now);
      const reserved = this.requireProduct(input.sku, false).reserved;
      if (reserved > 0) {
        throw refuse.invalid(
          'track_stock',
          `cannot change while carts hold ${reserved} units of "${input.sku}"; wait for them to close`,
        );
      }
      // Their lines hold nothing, and a live cart must not show a tracked line that holds nothing.
      const live = (this.s.liveCartsWithSku.get(input.sku, now) as { carts: number }).carts;
      if (trackStock && live > 0) {
        throw refuse.invalid(
          'track_stock',
          `cannot change while ${live} open carts have "${input.sku}"; wait for them to close or expire`,
        );
      }
    }
    if (existing && existing.currency !== input.currency) {
      const carts = (this.s.cartsWithSku.get(input.sku) as { carts: number }).carts;
      if (carts > 0) {
        throw refuse.invalid(
          'currency',
          `cannot change while ${carts} open or revivable carts hold "${input.sku}"; wait for them to close`,
        );
      }
    }
    this.s.upsertProduct.run({
      sku: input.sku,
      name: input.name,
      // Fields left out keep their current value, so a price-only update does not wipe or reactivate.
      description: input.description === undefined ? (existing?.description ?? null) : input.description,
      price_minor: input.price_minor,
      currency: input.currency,
      track_stock: trackStock ? 1 : 0,
      active: (input.active ?? (existing ? Boolean(existing.active) : true)) ? 1 : 0,
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
      // One try, no waiting at all: authentication must not queue behind another process's write lock.
      this.db.pragma('busy_timeout = 0');
      try {
        this.s.touchToken.run(now, row.id);
      } catch {
        // The next request refreshes it.
      } finally {
        this.db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
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
