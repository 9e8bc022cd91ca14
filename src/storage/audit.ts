// The audit, written once: the queries that recompute the stock invariants and the report built from their rows.
import { iso } from '../domain/rules.js';
import type { AuditReport, AuditViolation } from '../domain/types.js';

type Dialect = 'sqlite' | 'postgres';

/**
 * The time on PostgreSQL: the database's clock, unless the store's clock fixes it ($1) or shifts it ($2);
 * see DatabaseTime in domain/clock.ts. Every server of one database decides expiry by it.
 */
export function databaseNow(fixedAt: string, offsetMs: string): string {
  return `COALESCE(${fixedAt}::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint + ${offsetMs}::bigint)`;
}

/**
 * One query per check; each returns only the rows that break its invariant. Parameters are named `@name` on
 * both dialects (`bindAudit` numbers them for PostgreSQL). The history checks (invariant 4) come in two forms:
 * over every order and cart, or only over those an incremental audit must look at again (`touched`).
 */
export function auditQueries(dialect: Dialect, scope: 'full' | 'incremental' = 'full') {
  const tracked = dialect === 'sqlite' ? 'p.track_stock = 1' : 'p.track_stock';
  // PostgreSQL's SUM over bigint is numeric; cast back so every store reads plain numbers.
  const int = dialect === 'postgres' ? '::bigint' : '';
  const bySku = dialect === 'postgres' ? 'ORDER BY p.sku COLLATE "C"' : 'ORDER BY p.sku';
  const incremental = scope === 'incremental';
  // Orders an incremental audit checks again: new since the checkpoint (with a margin for transactions that
  // began before it), awaiting payment, or named by a ledger movement after it.
  // (A NULL from the ledger's rows without an order or cart matches nothing.) The ledger's new rows are a range
  // of its primary key; SQLite would rather scan a whole covering index, so there it is told not to.
  const newRows = dialect === 'sqlite' ? 'stock_movements NOT INDEXED' : 'stock_movements';
  const touched = `touched AS (SELECT id FROM orders WHERE created_at >= @since
      UNION SELECT id FROM orders WHERE status = 'awaiting_payment'
      UNION SELECT order_id FROM ${newRows} WHERE id > @from)`;
  const touchedCarts = `touched_carts AS (SELECT cart_id AS id FROM orders WHERE id IN (SELECT id FROM touched)
      UNION SELECT id FROM carts WHERE status = 'open'
      UNION SELECT cart_id FROM ${newRows} WHERE id > @from)`;
  // An incremental audit's movements of a kind: those of touched orders (found by order, not by kind: `|| ''`
  // keeps the planner off the kind index, which would read every sale ever made), and new ones of no order.
  const moves = (kind: string, columns: string) =>
    incremental
      ? `SELECT ${columns} FROM stock_movements WHERE kind || '' = '${kind}' AND order_id IN (SELECT id FROM touched)
        UNION ALL
        SELECT ${columns} FROM stock_movements WHERE kind = '${kind}' AND order_id IS NULL AND id > @from`
      : `SELECT ${columns} FROM stock_movements WHERE kind = '${kind}'`;
  const onlyTouched = (column: string) => (incremental ? ` AND ${column} IN (SELECT id FROM touched)` : '');
  return {
    bounds: `SELECT p.sku, p.on_hand, p.reserved FROM products p
      WHERE ${tracked} AND (p.reserved < 0 OR p.reserved > p.on_hand OR p.on_hand < 0) ${bySku}`,
    // Holds not yet released: open carts' (expired ones included until swept) and orders awaiting payment's.
    // Lines holding nothing add nothing, so only the lines that hold are read (a partial index).
    holds: `SELECT p.sku, p.reserved, COALESCE(h.held, 0)${int} AS held FROM products p
      LEFT JOIN (SELECT sku, SUM(held) AS held FROM (
                   SELECT l.sku, l.held FROM cart_lines l JOIN carts c ON c.id = l.cart_id
                   WHERE l.held != 0 AND c.status = 'open'
                   UNION ALL
                   SELECT l.sku, l.held FROM order_lines l JOIN orders o ON o.id = l.order_id
                   WHERE l.held != 0 AND o.status = 'awaiting_payment') x GROUP BY sku) h ON h.sku = p.sku
      WHERE ${tracked} AND p.reserved != COALESCE(h.held, 0) ${bySku}`,
    closedHolds: `SELECT 'cart ' || l.cart_id AS holder, l.sku, c.status, l.held FROM cart_lines l
        JOIN carts c ON c.id = l.cart_id WHERE l.held != 0 AND c.status != 'open'
      UNION ALL
      SELECT 'order ' || l.order_id, l.sku, o.status, l.held FROM order_lines l JOIN orders o ON o.id = l.order_id
        WHERE l.held != 0 AND o.status != 'awaiting_payment'`,
    // Both ways: a counter that disagrees with its holds, and holds with no counter at all. An order's holds
    // count toward its channel like its cart's did.
    channelHolds: `SELECT COALESCE(ch.channel, h.channel) AS channel, COALESCE(ch.held, 0) AS counted,
        COALESCE(h.held, 0)${int} AS held
      FROM channel_holds ch
      FULL OUTER JOIN (SELECT channel, SUM(held) AS held FROM (
                         SELECT c.channel, l.held FROM cart_lines l JOIN carts c ON c.id = l.cart_id
                         WHERE l.held != 0
                         UNION ALL
                         SELECT o.channel, l.held FROM order_lines l JOIN orders o ON o.id = l.order_id
                         WHERE l.held != 0) x
                       GROUP BY channel) h ON h.channel = ch.channel
      WHERE COALESCE(ch.held, 0) != COALESCE(h.held, 0)`,
    cartOrders: `${incremental ? `WITH ${touched}, ${touchedCarts} ` : ''}SELECT c.id, c.status, COUNT(o.id) AS orders
      FROM carts c LEFT JOIN orders o ON o.cart_id = c.id
      ${incremental ? 'WHERE c.id IN (SELECT id FROM touched_carts)' : ''}
      GROUP BY c.id, c.status
      HAVING (c.status = 'checked_out' AND COUNT(o.id) != 1) OR (c.status != 'checked_out' AND COUNT(o.id) > 0)`,
    // Per order line: units ordered, sold and returned in the ledger. A paid order sold each line once and
    // returned nothing; one awaiting payment has sold nothing yet; a cancelled one sold nothing, or sold once
    // and returned all of it (restock) or none (written off). Sales of no order line are caught too.
    saleLines: `${incremental ? `WITH ${touched} ` : ''}SELECT x.order_id, x.sku, o.status, SUM(x.ordered)${int} AS ordered,
        SUM(x.sold)${int} AS sold, SUM(x.returned)${int} AS returned
      FROM (
        SELECT order_id, sku, quantity AS ordered, 0 AS sold, 0 AS returned FROM order_lines
        WHERE TRUE${onlyTouched('order_id')}
        UNION ALL
        ${moves('sale', 'order_id, sku, 0, quantity, 0')}
        UNION ALL
        ${moves('return', 'order_id, sku, 0, 0, quantity')}
      ) x LEFT JOIN orders o ON o.id = x.order_id
      GROUP BY x.order_id, x.sku, o.status
      HAVING CASE o.status
        WHEN 'paid' THEN SUM(x.sold) != SUM(x.ordered) OR SUM(x.returned) != 0
        WHEN 'awaiting_payment' THEN SUM(x.sold) != 0 OR SUM(x.returned) != 0
        WHEN 'cancelled' THEN NOT ((SUM(x.sold) = 0 AND SUM(x.returned) = 0)
          OR (SUM(x.sold) = SUM(x.ordered) AND (SUM(x.returned) = 0 OR SUM(x.returned) = SUM(x.sold))))
        ELSE TRUE END`,
    orderTotals: `${incremental ? `WITH ${touched} ` : ''}SELECT o.id, o.total_minor,
        COALESCE(SUM(l.quantity * l.unit_price_minor), 0)${int} AS lines_total
      FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
      WHERE TRUE${onlyTouched('o.id')}
      GROUP BY o.id, o.total_minor HAVING o.total_minor != COALESCE(SUM(l.quantity * l.unit_price_minor), 0)`,
    // An open cart never shows a line that holds nothing. Only a cart past its expiry may have lost holds.
    liveUnheld: `SELECT c.id AS cart_id, c.expires_at, l.sku, l.quantity, l.held
      FROM carts c JOIN cart_lines l ON l.cart_id = c.id JOIN products p ON p.sku = l.sku
      WHERE c.status = 'open' AND c.expires_at > @now AND ${tracked} AND l.held < l.quantity`,
    counts: `SELECT (SELECT COUNT(*) FROM products) AS products, (SELECT COUNT(*) FROM carts) AS carts,
      (SELECT COUNT(*) FROM orders) AS orders, (SELECT COUNT(*) FROM stock_movements) AS movements`,
  };
}

export type AuditQuery = keyof ReturnType<typeof auditQueries>;
// biome-ignore lint/suspicious/noExplicitAny: rows are shaped by the query they answer, checked below.
export type AuditRows = Record<AuditQuery, any[]>;

/** A SKU whose stock is not what its ledger movements add up to. */
export interface LedgerMismatch {
  sku: string;
  onHand: number;
  reserved: number;
  onSum: number;
  resSum: number;
}

/** Builds the report from the rows of every audit query, run in one consistent snapshot. */
export function auditReport(
  rows: AuditRows,
  ledger: LedgerMismatch[],
  checkpointProblems: string[] = [],
): AuditReport {
  const violations: AuditViolation[] = [];
  const add = (invariant: AuditViolation['invariant'], subject: string, message: string) =>
    violations.push({ invariant, subject, message });

  for (const p of rows.bounds) {
    add(1, p.sku, `on_hand ${p.on_hand}, reserved ${p.reserved}: must be 0 <= reserved <= on_hand`);
  }
  for (const p of rows.holds) {
    add(2, p.sku, `reserved ${p.reserved} but open carts and orders awaiting payment hold ${p.held}`);
  }
  for (const l of rows.closedHolds) add(2, l.sku, `${l.holder} is ${l.status} but still holds ${l.held}`);
  for (const l of rows.liveUnheld) {
    add(
      2,
      l.cart_id,
      `cart is open until ${iso(Number(l.expires_at))} but its line ${l.sku} holds ${l.held} of ${l.quantity}`,
    );
  }
  for (const c of rows.channelHolds) {
    add(
      2,
      `channel ${c.channel}`,
      `channel hold counter ${c.counted} but its carts and orders hold ${c.held}`,
    );
  }
  for (const p of ledger) {
    add(
      3,
      p.sku,
      `on_hand ${p.onHand} / reserved ${p.reserved} but the ledger sums to ${p.onSum} / ${p.resSum}`,
    );
  }
  for (const message of checkpointProblems) add(3, 'audit checkpoint', message);
  for (const c of rows.cartOrders) {
    add(4, c.id, `cart is ${c.status} and has ${c.orders} orders (a checked-out cart has exactly one)`);
  }
  for (const m of rows.saleLines) {
    add(
      4,
      m.order_id ?? '(no order)',
      `${m.sku}: ${m.status ?? 'no such order'}, ordered ${m.ordered} but the ledger sold ${m.sold} and returned ${m.returned}`,
    );
  }
  for (const o of rows.orderTotals) {
    add(4, o.id, `order total ${o.total_minor} but its lines add up to ${o.lines_total}`);
  }
  const [counts] = rows.counts;
  return {
    ok: violations.length === 0,
    checked: {
      products: Number(counts?.products ?? 0),
      carts: Number(counts?.carts ?? 0),
      orders: Number(counts?.orders ?? 0),
      movements: Number(counts?.movements ?? 0),
    },
    violations,
  };
}

/** The statement with its `@name` parameters as PostgreSQL's `$n`, and the names in their order. */
export function bindAudit(dialect: Dialect, sql: string): { sql: string; names: string[] } {
  if (dialect === 'sqlite')
    return { sql, names: [...new Set(sql.match(/@\w+/g) ?? [])].map((n) => n.slice(1)) };
  const names: string[] = [];
  const text = sql.replace(/@(\w+)/g, (_m, name: string) => {
    if (!names.includes(name)) names.push(name);
    return `$${names.indexOf(name) + 1}`;
  });
  return { sql: text, names };
}
