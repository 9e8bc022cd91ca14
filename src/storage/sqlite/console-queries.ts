// The console's reads on SQLite: its own read-only connection to the store's file, and PRAGMA data_version for changes.

import { setTimeout as sleep } from 'node:timers/promises';
import type BetterSqlite3 from 'better-sqlite3';
import type { Clock } from '../../domain/clock.js';
import type { StoredOrder, StoredOrderLine } from '../../domain/orders.js';
import type { CallContext, OrderView } from '../../domain/types.js';
import {
  type ConsoleChannelActivity,
  type ConsoleGrant,
  type ConsoleHold,
  type ConsoleMovement,
  type ConsoleOrderFilter,
  type ConsoleQueries,
  type ConsoleSessionStore,
  type ConsoleStockRow,
  DAY_MS,
  GRANTS_ORDER,
  groupHolds,
  type HoldSqlRow,
  type LedgerFilter,
  likePattern,
  orderListSql,
  orderViews,
  ownerOf,
  type StoredConsoleSession,
} from '../console-queries.js';
import { auditInWorker } from './audit-worker.js';
import { Database } from './driver.js';

const GRANTS_LIMIT = 500;
/** A session write waits this long inside SQLite for the store's write lock, then yields and retries. */
const SESSION_BUSY_MS = 20;
const SESSION_WRITE_DEADLINE_MS = 5_000;

/** How often data_version is read while a console listens: well inside the one-second promise. */
const WATCH_INTERVAL_MS = 150;

interface StockSqlRow {
  sku: string;
  name: string;
  price_minor: number;
  currency: string;
  on_hand: number;
  reserved: number;
  track_stock: number;
  active: number;
  expired_held: number;
}

export function openSqliteConsoleQueries(path: string, clock: Clock): ConsoleQueries {
  if (path === ':memory:') {
    throw new Error('the console needs a database file: an in-memory database has no second connection');
  }
  // The store has already created and migrated the file; this connection only reads.
  const db = new Database(path, { fileMustExist: true });
  db.pragma('busy_timeout = 1000');
  db.pragma('query_only = ON');

  const stockQuery = db.prepare(
    `SELECT p.sku, p.name, p.price_minor, p.currency, p.on_hand, p.reserved, p.track_stock, p.active,
       COALESCE((SELECT SUM(l.held) FROM cart_lines l JOIN carts c ON c.id = l.cart_id
                 WHERE l.sku = p.sku AND l.held > 0 AND c.status = 'open' AND c.expires_at <= @now), 0) AS expired_held
     FROM products p
     WHERE p.sku LIKE @pattern ESCAPE '\\' OR p.name LIKE @pattern ESCAPE '\\'
     ORDER BY p.sku LIMIT @limit`,
  );
  const holdsQuery = db.prepare(
    `WITH open_carts AS (SELECT * FROM carts WHERE status = 'open' ORDER BY expires_at, id LIMIT @limit)
     SELECT c.id, c.channel, c.holder, json_extract(oc.metadata, '$.client_name') AS client_name,
       g.client_id, g.redirect_host, c.customer_ref, c.created_at, c.expires_at, l.sku, p.name, l.quantity, l.held
     FROM open_carts c JOIN cart_lines l ON l.cart_id = c.id JOIN products p ON p.sku = l.sku
     LEFT JOIN oauth_grants g ON g.id = c.holder LEFT JOIN oauth_clients oc ON oc.client_id = g.client_id
     ORDER BY c.expires_at, c.id, l.sku`,
  );
  const grantsQuery = db.prepare(
    `SELECT g.id, g.channel, g.scope, g.client_id, oc.kind AS client_kind,
       json_extract(oc.metadata, '$.client_name') AS client_name, g.redirect_host, g.created_at, g.last_used_at,
       (SELECT MAX(t.expires_at) FROM oauth_tokens t
        WHERE t.grant_id = g.id AND t.kind = 'refresh' AND t.used_at IS NULL) AS expires_at,
       g.revoked_at, g.revoke_reason
     FROM oauth_grants g LEFT JOIN oauth_clients oc ON oc.client_id = g.client_id
     ${GRANTS_ORDER} LIMIT ${GRANTS_LIMIT}`,
  );
  const sessionGet = db.prepare('SELECT * FROM console_sessions WHERE id_hash = ?');
  const sessionsExisting = db
    .prepare('SELECT id_hash FROM console_sessions WHERE id_hash IN (SELECT value FROM json_each(?))')
    .pluck();
  // Units held by live carts and by orders awaiting payment (a payment checkout moves a cart's holds to its order).
  const heldQuery = db.prepare(
    `SELECT channel, SUM(held) AS units FROM (
       SELECT c.channel, l.held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
       WHERE c.status = 'open' AND c.expires_at > @now AND l.held > 0
       UNION ALL
       SELECT o.channel, l.held FROM orders o JOIN order_lines l ON l.order_id = o.id
       WHERE o.status = 'awaiting_payment' AND o.pay_by > @now AND l.held > 0)
     GROUP BY channel ORDER BY channel`,
  );
  const salesQuery = db.prepare(
    `SELECT channel, created_at / ${DAY_MS} AS day, currency, COUNT(*) AS orders, SUM(total_minor) AS revenue_minor
     FROM orders WHERE status = 'paid' AND created_at >= @since
     GROUP BY channel, day, currency ORDER BY channel, day, currency`,
  );
  const orderLinesQuery = db.prepare(
    `SELECT order_id, sku, name, quantity, unit_price_minor, held FROM order_lines
     WHERE order_id IN (SELECT value FROM json_each(?)) ORDER BY order_id, sku`,
  );
  const cartOwnerQuery = db.prepare('SELECT channel, holder FROM carts WHERE id = ?');
  const dataVersion = db.prepare('PRAGMA data_version').pluck();

  const listeners = new Set<() => void>();
  let timer: NodeJS.Timeout | undefined;
  let lastVersion = 0;

  function startWatching(): void {
    lastVersion = dataVersion.get() as number;
    // data_version changes whenever another connection (this process's store, the CLI, another server) commits.
    timer = setInterval(() => {
      let version: number;
      try {
        version = dataVersion.get() as number;
      } catch {
        return; // a busy moment; the next tick asks again
      }
      if (version === lastVersion) return;
      lastVersion = version;
      for (const listener of [...listeners]) listener();
    }, WATCH_INTERVAL_MS);
    timer.unref();
  }

  const sessions = sqliteSessionStore(path, sessionGet, sessionsExisting);

  return {
    sessions,

    async now(): Promise<number> {
      return clock.now();
    },

    async stock(search: string, limit: number): Promise<ConsoleStockRow[]> {
      const rows = stockQuery.all({ now: clock.now(), pattern: likePattern(search), limit }) as StockSqlRow[];
      return rows.map((row) => {
        const reserved = row.reserved - row.expired_held;
        return {
          sku: row.sku,
          name: row.name,
          price_minor: row.price_minor,
          currency: row.currency,
          on_hand: row.on_hand,
          reserved,
          available: row.track_stock ? row.on_hand - reserved : null,
          track_stock: Boolean(row.track_stock),
          active: Boolean(row.active),
        };
      });
    },

    async holds(limit: number): Promise<ConsoleHold[]> {
      const now = clock.now();
      return groupHolds(holdsQuery.all({ limit }) as HoldSqlRow[], now);
    },

    async grants(): Promise<ConsoleGrant[]> {
      return grantsQuery.all() as ConsoleGrant[];
    },

    async channelActivity(days: number): Promise<ConsoleChannelActivity> {
      const now = clock.now();
      const today = Math.floor(now / DAY_MS);
      const fromDay = today - days + 1;
      return {
        held: heldQuery.all({ now }) as { channel: string; units: number }[],
        sales: salesQuery.all({ since: fromDay * DAY_MS }) as ConsoleChannelActivity['sales'],
        from_day: fromDay,
        today,
      };
    },

    async orders(filter: ConsoleOrderFilter): Promise<OrderView[]> {
      const now = clock.now();
      const { sql, params } = orderListSql(filter, now, 'needs_refund = 1');
      const orders = db.prepare(sql).all(...params) as StoredOrder[];
      if (orders.length === 0) return [];
      const ids = JSON.stringify(orders.map((order) => order.id));
      return orderViews(orders, orderLinesQuery.all(ids) as (StoredOrderLine & { order_id: string })[], now);
    },

    async ledger(filter: LedgerFilter): Promise<ConsoleMovement[]> {
      const where: string[] = [];
      const params: (string | number)[] = [];
      if (filter.sku) {
        where.push('sku = ?');
        params.push(filter.sku);
      }
      if (filter.channel) {
        where.push('channel = ?');
        params.push(filter.channel);
      }
      if (filter.kind) {
        where.push('kind = ?');
        params.push(filter.kind);
      }
      if (filter.beforeId !== undefined) {
        where.push('id < ?');
        params.push(filter.beforeId);
      }
      const sql = `SELECT id, at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note
        FROM stock_movements ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
      return db.prepare(sql).all(...params, filter.limit) as ConsoleMovement[];
    },

    audit: (options) =>
      auditInWorker(path, { now: () => clock.now(), incremental: options?.full !== true, checkpoint: true }),

    async cartOwner(cartId: string): Promise<CallContext | undefined> {
      const row = cartOwnerQuery.get(cartId) as { channel: string; holder: string } | undefined;
      return row && ownerOf(row);
    },

    watch(listener: () => void): () => void {
      listeners.add(listener);
      if (!timer) startWatching();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },

    async close(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = undefined;
      listeners.clear();
      sessions.close();
      db.close();
    },
  };
}

/**
 * Session writes go through a second connection of their own (the read connection is query_only). They
 * are short single statements; a busy file is waited for in short slices so the event loop keeps running.
 */
function sqliteSessionStore(
  path: string,
  getStatement: BetterSqlite3.Statement,
  existingStatement: BetterSqlite3.Statement,
): ConsoleSessionStore & { close(): void } {
  let writer: BetterSqlite3.Database | undefined;
  const statements = () => {
    if (!writer) {
      writer = new Database(path, { fileMustExist: true });
      writer.pragma(`busy_timeout = ${SESSION_BUSY_MS}`);
    }
    const w = writer;
    return {
      insert: w.prepare(
        `INSERT INTO console_sessions (id_hash, csrf_hash, token_id, channel, created_at, last_seen_at, expires_at)
         VALUES (@id_hash, @csrf_hash, @token_id, @channel, @created_at, @last_seen_at, @expires_at)`,
      ),
      touch: w.prepare('UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ? AND last_seen_at < ?'),
      delete: w.prepare('DELETE FROM console_sessions WHERE id_hash = ?'),
      deleteByToken: w.prepare('DELETE FROM console_sessions WHERE token_id = ?'),
      pruneEnded: w.prepare('DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at <= ?'),
      pruneOldest: w.prepare(
        `DELETE FROM console_sessions WHERE id_hash NOT IN
           (SELECT id_hash FROM console_sessions ORDER BY created_at DESC LIMIT ?)`,
      ),
    };
  };
  let prepared: ReturnType<typeof statements> | undefined;
  async function write(run: (s: ReturnType<typeof statements>) => void): Promise<void> {
    prepared ??= statements();
    const deadline = performance.now() + SESSION_WRITE_DEADLINE_MS;
    for (;;) {
      try {
        run(prepared);
        return;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code !== 'SQLITE_BUSY' || performance.now() > deadline) throw error;
        await sleep(5 + Math.random() * 20);
      }
    }
  }
  return {
    prune: (now, idleBefore, keep) =>
      write((s) => {
        s.pruneEnded.run(now, idleBefore);
        s.pruneOldest.run(keep);
      }),
    insert: (session) => write((s) => void s.insert.run(session)),
    get: async (idHash) => getStatement.get(idHash) as StoredConsoleSession | undefined,
    touch: (idHash, at) => write((s) => void s.touch.run(at, idHash, at)),
    delete: (idHash) => write((s) => void s.delete.run(idHash)),
    deleteByToken: (tokenId) => write((s) => void s.deleteByToken.run(tokenId)),
    existing: async (idHashes) =>
      new Set(idHashes.length ? (existingStatement.all(JSON.stringify(idHashes)) as string[]) : []),
    close() {
      writer?.close();
      writer = undefined;
      prepared = undefined;
    },
  };
}
