// The SQLite store: every stock write runs synchronously under BEGIN IMMEDIATE, in its own savepoint of a group
// commit (group-commit.ts).
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { soldOutWithoutLock } from '../../domain/catalog-decisions.js';
import { refuse, type StockError } from '../../domain/errors.js';
import type { AuditReport, CallContext, CartView, ProductView } from '../../domain/types.js';
import { cartView, type ProductRow, productView } from '../../domain/views.js';
import { argsFor, auditFlow, checkpointParams, runAuditSync, saveCheckpointSql } from '../audit-flow.js';
import type { McpSessionStore } from '../mcp-sessions.js';
import type { OAuthStore } from '../oauth.js';
import { type StoredToken, searchTerms } from '../shared.js';
import type { AddToCartInput, AuditOptions, InventoryStore, SearchQuery, StoreOptions } from '../store.js';
import type { Engine, Operation, Reader } from '../workflow/engine.js';
import { runSync } from '../workflow/engine.js';
import { type NewToken, type ProductWithExpired, StockStore } from '../workflow/stock-store.js';
import { Database } from './driver.js';
import { SqliteEngine, SqliteReader } from './engine.js';
import { GroupCommit, type GroupCommitStats } from './group-commit.js';
import { sqliteLimiters } from './limits.js';
import { sqliteMcpSessionStore } from './mcp-sessions.js';
import { sqliteOAuthStore } from './oauth.js';
import { prepareStatements, type Statements } from './statements.js';
import { isBusy, sleep, writeFailure } from './write-errors.js';
import { WriterQueue } from './writer-queue.js';

const MIGRATIONS = fileURLToPath(new URL('../../../drizzle/sqlite', import.meta.url));

/** SQLite's own busy handler sleeps in steps up to 100 ms; we let it wait only briefly, then retry off-thread. */
const SQLITE_BUSY_TIMEOUT_MS = 5;
/** Pages per backup step: all of them, so the copy is one snapshot and never restarts on a write. */
const BACKUP_ALL_PAGES = 0x7fffffff;

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
  let db: BetterSqlite3.Database;
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

export class SqliteStore extends StockStore implements InventoryStore {
  readonly dialect = 'sqlite' as const;
  private readonly s: Statements;
  /** The reads get_cart shares with the write path. */
  private readonly reader: SqliteReader;
  readonly oauth: OAuthStore;
  readonly mcpSessions: McpSessionStore;
  readonly limiter: InventoryStore['limiter'];
  /** Runs reads in one deferred (read) transaction: one consistent snapshot, no lock. */
  private readonly snapshot: <R>(read: () => R) => R;
  private readonly group: GroupCommit;

  constructor(
    protected readonly db: BetterSqlite3.Database,
    readonly options: StoreOptions,
    /** This file's writers' turn (writer-queue.ts); left out by commands that only read. */
    protected readonly writers?: WriterQueue,
  ) {
    super();
    this.oauth = this.releasingOnRevoke(
      sqliteOAuthStore(db, { write: (fn) => this.write(fn), read: (fn) => this.read(fn) }),
    );
    this.mcpSessions = sqliteMcpSessionStore(db, {
      write: (fn) => this.write(fn),
      read: (fn) => this.read(fn),
    });
    this.limiter = sqliteLimiters(db);
    this.s = prepareStatements(db);
    this.reader = new SqliteReader(this.s);
    this.snapshot = db.transaction((read: () => unknown) => read()).deferred as <R>(read: () => R) => R;
    this.group = new GroupCommit(db, { lockTimeoutMs: options.lockTimeoutMs, writers });
  }

  // ---------------------------------------------------------------- the write path

  /**
   * Runs a write under the lock, in a transaction it shares with the writes queued beside it (group-commit.ts);
   * past --lock-timeout the call is refused with STORE_BUSY. Every body reads the clock itself, once BEGIN
   * IMMEDIATE has the lock, so a writer that waited decides with the time it got the lock at, never one read
   * before another writer's commit.
   */
  protected write<R>(body: () => R): Promise<R> {
    return this.group.submit(body);
  }

  /** How many writes shared a transaction so far. */
  groupCommitStats(): GroupCommitStats {
    return this.group.counters();
  }

  /**
   * Reads need no lock under WAL, but a checkpoint or recovery can still report busy for a moment: retried off
   * the event loop until --lock-timeout.
   */
  private async read<R>(fn: () => R): Promise<R> {
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw writeFailure(error, false);
      }
      const waited = performance.now() - started;
      if (waited >= this.options.lockTimeoutMs) throw refuse.busy(Math.round(waited));
      // Jittered, capped backoff so processes do not retry in lockstep.
      await sleep(Math.random() * Math.min(2 + attempt, 10));
    }
  }

  protected readWith<R>(body: (r: Reader) => Operation<R>): Promise<R> {
    return this.read(() => runSync(body(this.reader)));
  }

  /** Every operation runs synchronously in the write, its clock read once the lock is held. */
  protected transact<R>(body: (e: Engine) => Operation<R>): Promise<R> {
    return this.write(() => runSync(body(new SqliteEngine(this.s, this.options.limits, this.now()))));
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
      }) as ProductWithExpired[];
      return rows.map((row) => productView(row, row.expired_held));
    });
  }

  protected productRows(skus: string[] | undefined): Promise<ProductWithExpired[]> {
    const now = this.now();
    return this.read(() => {
      const rows = (
        skus ? this.s.productsIn.all(JSON.stringify(skus)) : this.s.allProducts.all()
      ) as ProductRow[];
      return rows.map((row) => ({
        ...row,
        expired_held: row.track_stock ? this.reader.expiredHeldAt(row.sku, now) : 0,
      }));
    });
  }

  /**
   * A sold-out add_to_cart refused from a consistent read, without queueing for the write lock, when the
   * domain says the locked decision could only refuse it the same way (decisions.ts, soldOutWithoutLock).
   * Under synchronous FULL a commit becomes visible to readers only once it is durable, so the refusal never
   * rests on a write a power loss could undo.
   */
  protected addToCartFast(_ctx: CallContext, input: AddToCartInput): undefined {
    const soldOut = this.soldOutWithoutLock(input);
    if (soldOut) throw soldOut;
    return undefined;
  }

  private soldOutWithoutLock(input: AddToCartInput): StockError | undefined {
    if (input.idempotencyKey !== undefined || input.cartId !== undefined) return undefined;
    try {
      const glance = this.s.product.get(input.sku) as ProductRow | undefined;
      // Enough free stock before counting expired holds: the usual case, decided under the lock as always.
      if (!glance || glance.on_hand - glance.reserved >= input.quantity) return undefined;
      return this.snapshot(() => {
        const product = this.s.product.get(input.sku) as ProductRow | undefined;
        // The clock is read once the snapshot exists, as audit() does.
        const expiredHeld = product ? this.reader.expiredHeldAt(input.sku, this.now()) : 0;
        return soldOutWithoutLock({ ...input, limits: this.options.limits }, { product, expiredHeld });
      });
    } catch {
      // A read that came back busy (a checkpoint, a recovery): the locked path decides.
      return undefined;
    }
  }

  async getCart(ctx: CallContext, cartId: string): Promise<CartView> {
    const now = this.now();
    return this.read(() => {
      const cart = this.reader.cart(ctx, cartId);
      if (!cart) throw refuse.cartNotFound(cartId);
      if (cart.status !== 'checked_out') return cartView(cart, this.reader.lineViews(cart.id), now, null);
      // A sold cart shows what was sold, at the prices of the sale.
      const order = this.reader.orderForCart(cart.id);
      if (!order) throw new Error(`checked-out cart ${cart.id} has no order`);
      return cartView(cart, this.reader.orderLines(order.id), now, order.id);
    });
  }

  /** Lets waiting requests have the lock between batches. */
  protected betweenSweepBatches(): Promise<void> {
    return new Promise((done) => setImmediate(done));
  }

  async pruneIdempotency(olderThanMs: number): Promise<number> {
    return this.write(() => this.s.pruneIdempotency.run(this.now() - olderThanMs).changes);
  }

  async audit(options: AuditOptions = {}): Promise<AuditReport> {
    // One read transaction: a consistent snapshot while writers carry on.
    const outcome = await this.read(() =>
      this.db.transaction(() =>
        runAuditSync(auditFlow('sqlite', options.incremental === true), (ask) => {
          if ('position' in ask) {
            return (
              this.db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM stock_movements').get() as {
                id: number;
              }
            ).id;
          }
          // Read once the snapshot exists: a hold released before it was released at an earlier time.
          if ('now' in ask) return this.now();
          return this.db.prepare(ask.sql).all(...argsFor('sqlite', ask.names, ask.params));
        }),
      )(),
    );
    if (options.checkpoint && outcome.checkpoint) {
      const save = saveCheckpointSql('sqlite');
      const args = argsFor('sqlite', save.names, checkpointParams(outcome.checkpoint));
      // Best effort: a read-only file is audited all the same, from scratch next time.
      await this.write(() => this.db.prepare(save.sql).run(...args)).catch(() => undefined);
    }
    return outcome.report;
  }

  async isEmpty(): Promise<boolean> {
    return this.read(() => this.s.anyProduct.get() === undefined);
  }

  protected async insertToken(token: NewToken): Promise<void> {
    const { id, hash, channel, admin, label, now } = token;
    await this.write(() => this.s.insertToken.run(id, hash, channel, admin ? 1 : 0, label, now));
  }

  protected tokenRows(): Promise<StoredToken[]> {
    return this.read(() => this.s.tokens.all() as StoredToken[]);
  }

  protected tokenByHash(hash: string): Promise<StoredToken | undefined> {
    return this.read(() => this.s.tokenByHash.get(hash) as StoredToken | undefined);
  }

  protected revokeTokenRow(id: string): Promise<boolean> {
    return this.write(() => this.s.revokeToken.run(this.now(), id).changes > 0);
  }

  protected async touchToken(id: string, now: number): Promise<void> {
    // One try, no waiting at all: authentication must not queue behind another process's write lock.
    this.db.pragma('busy_timeout = 0');
    try {
      this.s.touchToken.run(now, id);
    } catch {
      // The next request refreshes it.
    } finally {
      this.db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    }
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
    // Writes already submitted are written (or refused) first, as they were when every write ran at once.
    await this.group.drained();
    this.writers?.close();
    if (this.db.open) this.db.close();
  }
}
