// The console's reads on PostgreSQL: a small pool of its own, and LISTEN on a channel that statement triggers NOTIFY.
import pg from 'pg';
import type { Clock } from '../../domain/clock.js';
import type { StoredOrder, StoredOrderLine } from '../../domain/orders.js';
import type { CallContext, OrderView } from '../../domain/types.js';
import { databaseNow } from '../audit.js';
import {
  type ConsoleChannelActivity,
  type ConsoleGrant,
  type ConsoleHold,
  type ConsoleMovement,
  type ConsoleOrderFilter,
  type ConsoleQueries,
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
import { redactUrl } from '../database-url.js';
import { auditOnOwnConnection } from './audit-connection.js';

/** The NOTIFY channel every write to the watched tables signals, whichever server or CLI made it. */
export const CHANGES_CHANNEL = 'stocklock_changes';
/**
 * Tables whose writes a console page shows (stock and the ledger, carts, orders, products, checkout modes, tokens,
 * grants and the host map), and console sessions: a sign-out on one server closes that session's pages on every server.
 */
const WATCHED_TABLES = [
  'stock_movements',
  'products',
  'carts',
  'orders',
  'channels',
  'api_tokens',
  'oauth_grants',
  'oauth_hosts',
  'console_sessions',
] as const;
const GRANTS_LIMIT = 500;
const TRIGGER_LOCK = 0x51c0_7501;
/** The application_name of a console's listening connection, which the trigger looks for. */
const LISTENER_NAME = 'stocklock-console-listen';
const RECONNECT_MS = 1_000;

// int8 (COUNT, SUM, bigint columns) holds ms timestamps and minor units, all far below 2^53.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/**
 * Statement-level triggers (one NOTIFY per writing statement while a console listens; PostgreSQL folds
 * identical notifications of one transaction into one), created once and idempotently: the first console on a database installs them,
 * under an advisory lock so servers starting together do not race on the DDL.
 */
async function installTriggers(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [TRIGGER_LOCK]);
    const existing = await client.query<{ tgname: string }>(
      `SELECT tgname FROM pg_trigger WHERE tgname LIKE 'stocklock_console_notify_%' AND NOT tgisinternal`,
    );
    const have = new Set(existing.rows.map((row) => row.tgname));
    // A NOTIFY queues at commit under a cluster-wide lock even when nobody listens, so the trigger
    // sends one only while a console's listening connection is open (pg_stat_activity is in memory).
    await client.query(
      `CREATE OR REPLACE FUNCTION stocklock_console_notify() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM pg_stat_activity
                    WHERE application_name = '${LISTENER_NAME}' AND datname = current_database()) THEN
           PERFORM pg_notify('${CHANGES_CHANNEL}', '');
         END IF;
         RETURN NULL;
       END $$`,
    );
    for (const table of WATCHED_TABLES) {
      const name = `stocklock_console_notify_${table}`;
      if (have.has(name)) continue;
      await client.query(
        `CREATE TRIGGER ${name} AFTER INSERT OR UPDATE OR DELETE ON ${table}
         FOR EACH STATEMENT EXECUTE FUNCTION stocklock_console_notify()`,
      );
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

interface StockSqlRow {
  sku: string;
  name: string;
  price_minor: number;
  currency: string;
  on_hand: number;
  reserved: number;
  track_stock: boolean;
  active: boolean;
  expired_held: number;
}

export async function openPostgresConsoleQueries(url: string, clock: Clock): Promise<ConsoleQueries> {
  // Idle connections close after a second: a console nobody looks at holds no connection of the server's.
  const pool = new pg.Pool({
    connectionString: url,
    max: 2,
    idleTimeoutMillis: 1_000,
    types,
    application_name: 'stocklock-console',
  });
  pool.on('error', () => undefined);
  try {
    await installTriggers(pool);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new Error(`Cannot prepare the console on ${redactUrl(url)}: ${(error as Error).message}`, {
      cause: error,
    });
  }

  const listeners = new Set<() => void>();
  let listener: pg.Client | undefined;
  let reconnect: NodeJS.Timeout | undefined;
  let closed = false;

  const notifyAll = () => {
    for (const fn of [...listeners]) fn();
  };

  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: url, application_name: LISTENER_NAME });
    listener = client;
    const retry = () => {
      if (listener !== client) return;
      listener = undefined;
      client.end().catch(() => undefined);
      if (closed || listeners.size === 0) return;
      reconnect = setTimeout(() => void listen(), RECONNECT_MS);
      reconnect.unref();
    };
    client.on('error', retry);
    client.on('end', retry);
    client.on('notification', notifyAll);
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGES_CHANNEL}`);
      // Whatever changed while no connection listened is shown now.
      notifyAll();
    } catch {
      retry();
    }
  }

  function stopListening(): void {
    if (reconnect) clearTimeout(reconnect);
    reconnect = undefined;
    const client = listener;
    listener = undefined;
    client?.end().catch(() => undefined);
  }

  /** Every server decides expiry by the database's clock (docs/decisions.md): so does the console. */
  async function now(): Promise<number> {
    const time = clock.databaseTime?.() ?? { fixedAt: null, offsetMs: 0 };
    const { rows } = await pool.query<{ now: number }>(`SELECT ${databaseNow('$1', '$2')} AS now`, [
      time.fixedAt,
      time.offsetMs,
    ]);
    return rows[0]?.now ?? clock.now();
  }

  return {
    now,

    sessions: {
      async prune(at, idleBefore, keep) {
        await pool.query('DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2', [
          at,
          idleBefore,
        ]);
        await pool.query(
          `DELETE FROM console_sessions WHERE id_hash NOT IN
             (SELECT id_hash FROM console_sessions ORDER BY created_at DESC LIMIT $1)`,
          [keep],
        );
      },
      async insert(s) {
        await pool.query(
          `INSERT INTO console_sessions (id_hash, csrf_hash, token_id, channel, created_at, last_seen_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [s.id_hash, s.csrf_hash, s.token_id, s.channel, s.created_at, s.last_seen_at, s.expires_at],
        );
      },
      async get(idHash) {
        const { rows } = await pool.query<StoredConsoleSession>(
          'SELECT * FROM console_sessions WHERE id_hash = $1',
          [idHash],
        );
        return rows[0];
      },
      async touch(idHash, at) {
        await pool.query(
          'UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1',
          [at, idHash],
        );
      },
      async delete(idHash) {
        await pool.query('DELETE FROM console_sessions WHERE id_hash = $1', [idHash]);
      },
      async deleteByToken(tokenId) {
        await pool.query('DELETE FROM console_sessions WHERE token_id = $1', [tokenId]);
      },
      async existing(idHashes) {
        if (idHashes.length === 0) return new Set();
        const { rows } = await pool.query<{ id_hash: string }>(
          'SELECT id_hash FROM console_sessions WHERE id_hash = ANY($1)',
          [idHashes],
        );
        return new Set(rows.map((row) => row.id_hash));
      },
    },

    async stock(search: string, limit: number): Promise<ConsoleStockRow[]> {
      const { rows } = await pool.query<StockSqlRow>(
        `SELECT p.sku, p.name, p.price_minor, p.currency, p.on_hand, p.reserved, p.track_stock, p.active,
           COALESCE((SELECT SUM(l.held) FROM cart_lines l JOIN carts c ON c.id = l.cart_id
                     WHERE l.sku = p.sku AND l.held > 0 AND c.status = 'open' AND c.expires_at <= $1), 0) AS expired_held
         FROM products p
         WHERE p.sku ILIKE $2 OR p.name ILIKE $2
         ORDER BY p.sku COLLATE "C" LIMIT $3`,
        [await now(), likePattern(search), limit],
      );
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
          track_stock: row.track_stock,
          active: row.active,
        };
      });
    },

    async holds(limit: number): Promise<ConsoleHold[]> {
      const at = await now();
      const { rows } = await pool.query<HoldSqlRow>(
        `WITH open_carts AS (SELECT * FROM carts WHERE status = 'open' ORDER BY expires_at, id LIMIT $1)
         SELECT c.id, c.channel, c.holder, (oc.metadata::jsonb ->> 'client_name') AS client_name,
           g.client_id, g.redirect_host, c.customer_ref, c.created_at, c.expires_at, l.sku, p.name, l.quantity, l.held
         FROM open_carts c JOIN cart_lines l ON l.cart_id = c.id JOIN products p ON p.sku = l.sku
         LEFT JOIN oauth_grants g ON g.id = c.holder LEFT JOIN oauth_clients oc ON oc.client_id = g.client_id
         ORDER BY c.expires_at, c.id, l.sku COLLATE "C"`,
        [limit],
      );
      return groupHolds(rows, at);
    },

    async grants(): Promise<ConsoleGrant[]> {
      const { rows } = await pool.query<ConsoleGrant>(
        `SELECT g.id, g.channel, g.scope, g.client_id, oc.kind AS client_kind,
           (oc.metadata::jsonb ->> 'client_name') AS client_name, g.redirect_host, g.created_at, g.last_used_at,
           (SELECT MAX(t.expires_at) FROM oauth_tokens t
            WHERE t.grant_id = g.id AND t.kind = 'refresh' AND t.used_at IS NULL) AS expires_at,
           g.revoked_at, g.revoke_reason
         FROM oauth_grants g LEFT JOIN oauth_clients oc ON oc.client_id = g.client_id
         ${GRANTS_ORDER} LIMIT ${GRANTS_LIMIT}`,
      );
      return rows;
    },

    async channelActivity(days: number): Promise<ConsoleChannelActivity> {
      const at = await now();
      const today = Math.floor(at / DAY_MS);
      const fromDay = today - days + 1;
      const [held, sales] = await Promise.all([
        pool.query<{ channel: string; units: number }>(
          // Live carts' holds and those of orders awaiting payment (a payment checkout moves them there).
          `SELECT channel, SUM(held)::int8 AS units FROM (
             SELECT c.channel, l.held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
             WHERE c.status = 'open' AND c.expires_at > $1 AND l.held > 0
             UNION ALL
             SELECT o.channel, l.held FROM orders o JOIN order_lines l ON l.order_id = o.id
             WHERE o.status = 'awaiting_payment' AND o.pay_by > $1 AND l.held > 0) held
           GROUP BY channel ORDER BY channel`,
          [at],
        ),
        pool.query<ConsoleChannelActivity['sales'][number]>(
          `SELECT channel, (created_at / ${DAY_MS})::int8 AS day, currency, COUNT(*)::int8 AS orders,
             SUM(total_minor)::int8 AS revenue_minor
           FROM orders WHERE status = 'paid' AND created_at >= $1
           GROUP BY channel, day, currency ORDER BY channel, day, currency`,
          [fromDay * DAY_MS],
        ),
      ]);
      return { held: held.rows, sales: sales.rows, from_day: fromDay, today };
    },

    async orders(filter: ConsoleOrderFilter): Promise<OrderView[]> {
      const at = await now();
      const { sql, params } = orderListSql(filter, at, 'needs_refund');
      let n = 0;
      const { rows: orders } = await pool.query<StoredOrder>(
        sql.replace(/\?/g, () => `$${++n}`),
        params,
      );
      if (orders.length === 0) return [];
      const { rows: lines } = await pool.query<StoredOrderLine & { order_id: string }>(
        `SELECT order_id, sku, name, quantity, unit_price_minor, held FROM order_lines
         WHERE order_id = ANY($1::text[]) ORDER BY order_id, sku COLLATE "C"`,
        [orders.map((order) => order.id)],
      );
      return orderViews(orders, lines, at);
    },

    async ledger(filter: LedgerFilter): Promise<ConsoleMovement[]> {
      const where: string[] = [];
      const params: (string | number)[] = [];
      const add = (clause: string, value: string | number) => {
        params.push(value);
        where.push(clause.replace('?', `$${params.length}`));
      };
      if (filter.sku) add('sku = ?', filter.sku);
      if (filter.channel) add('channel = ?', filter.channel);
      if (filter.kind) add('kind = ?', filter.kind);
      if (filter.beforeId !== undefined) add('id < ?', filter.beforeId);
      params.push(filter.limit);
      const { rows } = await pool.query<ConsoleMovement>(
        `SELECT id, at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note
         FROM stock_movements ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY id DESC LIMIT $${params.length}`,
        params,
      );
      return rows;
    },

    audit: (options) =>
      auditOnOwnConnection(url, clock, { incremental: options?.full !== true, checkpoint: true }),

    async cartOwner(cartId: string): Promise<CallContext | undefined> {
      const { rows } = await pool.query<{ channel: string; holder: string }>(
        'SELECT channel, holder FROM carts WHERE id = $1',
        [cartId],
      );
      return rows[0] && ownerOf(rows[0]);
    },

    watch(fn: () => void): () => void {
      listeners.add(fn);
      if (!listener && !reconnect && !closed) void listen();
      return () => {
        listeners.delete(fn);
        if (listeners.size === 0) stopListening();
      };
    },

    async close(): Promise<void> {
      closed = true;
      listeners.clear();
      stopListening();
      await pool.end();
    },
  };
}
