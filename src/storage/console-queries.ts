// The merchant console's read side, as an interface: what its pages show, and a feed saying when any writer changed the data.
import { orderView, type StoredOrder, type StoredOrderLine } from '../domain/orders.js';
import type { AuditReport, CallContext, MovementKind, OrderStatus, OrderView } from '../domain/types.js';

export interface ConsoleStockRow {
  sku: string;
  name: string;
  price_minor: number;
  currency: string;
  on_hand: number;
  /** Units live carts hold; holds of expired carts not yet swept are left out, as the tools do. */
  reserved: number;
  /** null for untracked products. */
  available: number | null;
  track_stock: boolean;
  active: boolean;
}

export interface ConsoleHoldLine {
  sku: string;
  name: string;
  quantity: number;
  held: number;
}

/** Who holds a cart inside its channel: an OAuth grant (one shopper's connection) or the whole channel. */
export interface ConsoleHolder {
  /** The grant's id; null when the cart belongs to the whole channel (static tokens, stdio). */
  grant_id: string | null;
  /** The client's own name as registered (DCR client_name or its CIMD document's); null when none given. */
  client_name: string | null;
  client_id: string | null;
  /** The host the grant's client returns to (chatgpt.com, claude.ai, …). */
  redirect_host: string | null;
}

export interface ConsoleHold {
  cart_id: string;
  channel: string;
  holder: ConsoleHolder;
  customer_ref: string | null;
  created_at: number;
  expires_at: number;
  /** Past its expiry but not yet swept: it still counts in `reserved` on disk, not in what can be sold. */
  expired: boolean;
  lines: ConsoleHoldLine[];
}

/** Orders and revenue of one channel on one UTC day, in one currency. */
export interface ConsoleSalesRow {
  channel: string;
  /** Days since the Unix epoch, UTC. */
  day: number;
  currency: string;
  orders: number;
  revenue_minor: number;
}

export interface ConsoleChannelActivity {
  /** Units each channel's live carts and orders awaiting payment hold now. */
  held: { channel: string; units: number }[];
  /** Paid orders (the sales) per channel, day and currency in the window; unpaid and cancelled ones are no revenue. */
  sales: ConsoleSalesRow[];
  /** The first day of the window (days since the epoch, UTC). */
  from_day: number;
  today: number;
}

export interface LedgerFilter {
  sku?: string;
  channel?: string;
  kind?: MovementKind;
  /** Only movements with a smaller id: the next page. */
  beforeId?: number;
  limit: number;
}

export interface ConsoleMovement {
  id: number;
  at: number;
  sku: string;
  kind: string;
  quantity: number;
  on_hand_delta: number;
  reserved_delta: number;
  cart_id: string | null;
  order_id: string | null;
  channel: string | null;
  note: string | null;
}

/** Which orders the Orders page lists, newest first (by creation, then id), one page at a time. */
export interface ConsoleOrderFilter {
  /** The status an order reads as now: one past pay_by and not yet swept is cancelled. */
  status?: OrderStatus;
  channel?: string;
  /** Only orders flagged for a refund (a payment that arrived after their stock was gone). */
  needsRefund?: boolean;
  /** Created at or after this time (ms). */
  from?: number;
  /** Created before this time (ms). */
  to?: number;
  /** The last order of the previous page: the next page starts after it. */
  after?: { createdAt: number; id: string };
  limit: number;
}

/** An OAuth grant as the Channels page lists it: who signed in, where, as what; never a token or hash. */
export interface ConsoleGrant {
  id: string;
  channel: string;
  scope: string;
  client_id: string;
  /** 'cimd' (the client_id is its metadata document's URL) or 'dcr' (registered here); null if unknown. */
  client_kind: string | null;
  client_name: string | null;
  redirect_host: string;
  created_at: number;
  last_used_at: number | null;
  /** When its newest unspent refresh token expires: after that the client must sign in again. */
  expires_at: number | null;
  revoked_at: number | null;
  revoke_reason: string | null;
}

/** A console sign-in as stored: hashes only, so a copy of the database signs nobody in. */
export interface StoredConsoleSession {
  id_hash: string;
  csrf_hash: string;
  token_id: string;
  channel: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

/** Console sessions in the database every server shares: a session made on one server works on all. */
export interface ConsoleSessionStore {
  /** Drops ended sessions (past expiry, idle since before `idleBefore`) and keeps at most `keep` newest. */
  prune(now: number, idleBefore: number, keep: number): Promise<void>;
  insert(session: StoredConsoleSession): Promise<void>;
  get(idHash: string): Promise<StoredConsoleSession | undefined>;
  touch(idHash: string, at: number): Promise<void>;
  delete(idHash: string): Promise<void>;
  deleteByToken(tokenId: string): Promise<void>;
  /** Which of these sessions still exist. */
  existing(idHashes: string[]): Promise<Set<string>>;
}

export interface ConsoleQueries {
  /** The time the store decides expiry by: this machine's clock on SQLite, the database's on PostgreSQL. */
  now(): Promise<number>;
  /** Products whose SKU or name contains `search` (case-insensitive), by SKU, at most `limit`. */
  stock(search: string, limit: number): Promise<ConsoleStockRow[]>;
  /** Open carts (including expired ones not yet swept) with their lines, soonest expiry first. */
  holds(limit: number): Promise<ConsoleHold[]>;
  /** Every OAuth grant, live ones first, newest first. */
  grants(): Promise<ConsoleGrant[]>;
  /** Held units now and orders per day over the last `days` UTC days, today included. */
  channelActivity(days: number): Promise<ConsoleChannelActivity>;
  /** Orders newest first, with their lines, filtered and paged by keyset (each filter has its index). */
  orders(filter: ConsoleOrderFilter): Promise<OrderView[]>;
  /** The newest movements first. */
  ledger(filter: LedgerFilter): Promise<ConsoleMovement[]>;
  /**
   * Every invariant checked on one consistent snapshot, away from the store's hot path: on SQLite in a
   * worker thread with its own read connection, on PostgreSQL on a connection of its own.
   */
  /** The console's audit: incremental from the last checkpoint, run away from selling; saves its checkpoint. */
  audit(options?: { full?: boolean }): Promise<AuditReport>;
  /** The cart's channel and holder, to release it as its owner; undefined when no such cart. */
  cartOwner(cartId: string): Promise<CallContext | undefined>;
  /**
   * Calls `listener` (possibly a few times) after any writer, in any process, commits a change.
   * Detection runs only while at least one listener is subscribed. Returns the unsubscribe function.
   */
  watch(listener: () => void): () => void;
  sessions: ConsoleSessionStore;
  close(): Promise<void>;
}

export const DAY_MS = 86_400_000;

/** A cart's owner as a call context: the holder column's '' is the whole channel (no holder). */
export function ownerOf(row: { channel: string; holder: string }): CallContext {
  return row.holder === '' ? { channel: row.channel } : { channel: row.channel, holder: row.holder };
}

/** The order both dialects list grants in: live before revoked, newest first. */
export const GRANTS_ORDER = 'ORDER BY (g.revoked_at IS NOT NULL), g.created_at DESC, g.id';

/** Escapes LIKE's wildcards so a search for "50%" means the text "50%". */
export function likePattern(search: string): string {
  return `%${search.trim().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** One line of an open cart, as both dialects' holds query returns it (ordered by cart, then SKU). */
export interface HoldSqlRow {
  id: string;
  channel: string;
  holder: string;
  client_name: string | null;
  client_id: string | null;
  redirect_host: string | null;
  customer_ref: string | null;
  created_at: number;
  expires_at: number;
  sku: string;
  name: string;
  quantity: number;
  held: number;
}

/** Groups the holds query's rows into carts, in the query's order; `now` decides which read as expired. */
export function groupHolds(rows: HoldSqlRow[], now: number): ConsoleHold[] {
  const carts = new Map<string, ConsoleHold>();
  for (const row of rows) {
    let cart = carts.get(row.id);
    if (!cart) {
      cart = {
        cart_id: row.id,
        channel: row.channel,
        holder:
          row.holder === ''
            ? { grant_id: null, client_name: null, client_id: null, redirect_host: null }
            : {
                grant_id: row.holder,
                client_name: row.client_name,
                client_id: row.client_id,
                redirect_host: row.redirect_host,
              },
        customer_ref: row.customer_ref,
        created_at: row.created_at,
        expires_at: row.expires_at,
        expired: row.expires_at <= now,
        lines: [],
      };
      carts.set(row.id, cart);
    }
    cart.lines.push({ sku: row.sku, name: row.name, quantity: row.quantity, held: row.held });
  }
  return [...carts.values()];
}

const ORDER_COLUMNS = `id, cart_id, channel, holder, status, currency, total_minor, created_at, pay_by, paid_at,
  cancelled_at, cancel_reason, payment_url, payment_instructions, payment_reference, needs_refund`;

/**
 * The Orders page's query for either dialect, with `?` for each parameter (PostgreSQL numbers them). Each filter
 * is a plain term, so an index serves it: (status, created_at, id), (channel, created_at, id), the partial index
 * of orders needing a refund, or (created_at, id). `refundTerm` is the dialect's spelling of "needs a refund",
 * the same text as its partial index's WHERE.
 */
export function orderListSql(
  filter: ConsoleOrderFilter,
  now: number,
  refundTerm: string,
): { sql: string; params: (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  const add = (term: string, ...values: (string | number)[]) => {
    where.push(term);
    params.push(...values);
  };
  // An order past pay_by not yet swept reads as cancelled (payment_timeout), here as in every view of it.
  if (filter.status === 'awaiting_payment') add("status = 'awaiting_payment' AND pay_by > ?", now);
  else if (filter.status === 'cancelled') {
    add("(status = 'cancelled' OR (status = 'awaiting_payment' AND pay_by <= ?))", now);
  } else if (filter.status === 'paid') add("status = 'paid'");
  if (filter.channel !== undefined) add('channel = ?', filter.channel);
  if (filter.needsRefund) add(refundTerm);
  if (filter.from !== undefined) add('created_at >= ?', filter.from);
  if (filter.to !== undefined) add('created_at < ?', filter.to);
  if (filter.after) {
    const { createdAt, id } = filter.after;
    add('(created_at < ? OR (created_at = ? AND id < ?))', createdAt, createdAt, id);
  }
  params.push(filter.limit);
  return {
    sql: `SELECT ${ORDER_COLUMNS} FROM orders ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT ?`,
    params,
  };
}

/** Orders and their lines as the pages and tools show them, at `now`. */
export function orderViews(
  orders: StoredOrder[],
  lines: (StoredOrderLine & { order_id: string })[],
  now: number,
): OrderView[] {
  const byOrder = new Map<string, StoredOrderLine[]>();
  for (const line of lines) {
    const list = byOrder.get(line.order_id) ?? [];
    list.push(line);
    byOrder.set(line.order_id, list);
  }
  return orders.map((order) => orderView(order, byOrder.get(order.id) ?? [], now));
}
