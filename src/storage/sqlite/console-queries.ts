// The console's reads on SQLite: its own read-only connection to the store's file, and PRAGMA data_version for changes.
import Database from 'better-sqlite3';
import type { Clock } from '../../domain/clock.js';
import type { CallContext } from '../../domain/types.js';
import {
  type ConsoleChannelActivity,
  type ConsoleHold,
  type ConsoleMovement,
  type ConsoleQueries,
  type ConsoleStockRow,
  DAY_MS,
  groupHolds,
  type HoldSqlRow,
  type LedgerFilter,
  likePattern,
  ownerOf,
} from '../console-queries.js';

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
     SELECT c.id, c.channel, c.customer_ref, c.created_at, c.expires_at, l.sku, p.name, l.quantity, l.held
     FROM open_carts c JOIN cart_lines l ON l.cart_id = c.id JOIN products p ON p.sku = l.sku
     ORDER BY c.expires_at, c.id, l.sku`,
  );
  const heldQuery = db.prepare(
    `SELECT c.channel, SUM(l.held) AS units FROM carts c JOIN cart_lines l ON l.cart_id = c.id
     WHERE c.status = 'open' AND c.expires_at > @now AND l.held > 0
     GROUP BY c.channel ORDER BY c.channel`,
  );
  const salesQuery = db.prepare(
    `SELECT channel, created_at / ${DAY_MS} AS day, currency, COUNT(*) AS orders, SUM(total_minor) AS revenue_minor
     FROM orders WHERE created_at >= @since
     GROUP BY channel, day, currency ORDER BY channel, day, currency`,
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

  return {
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
      db.close();
    },
  };
}
