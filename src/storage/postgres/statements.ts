// Every SQL statement of the PostgreSQL store, named so that each connection parses and plans it once.
import { databaseNow } from '../audit.js';

const PRODUCT_COLUMNS =
  'sku, name, description, price_minor, currency, on_hand, reserved, track_stock, active';

/** SQLite's LIKE and lower() fold ASCII letters only; this does the same, so both stores match alike. */
const asciiLower = (expr: string) =>
  `translate(${expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`;
export const asciiLowerJs = (text: string) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Locks rows with `locking` (a SELECT … FOR UPDATE), then reads the time, after the locks, into `now`. */
const thenNow = (locking: string, fixedAt: string, offsetMs: string) =>
  `WITH locked AS MATERIALIZED (${locking}) SELECT locked.*, ${databaseNow(fixedAt, offsetMs)} AS now FROM locked`;

/** Expired holds of one SKU: free stock that no sweep has released yet (p is the products row). */
const EXPIRED_HELD = `(SELECT COALESCE(SUM(l.held), 0)::bigint FROM carts c JOIN cart_lines l ON l.cart_id = c.id
  WHERE l.sku = p.sku AND c.status = 'open' AND c.expires_at <= $NOW)`;

/** An order row as domain/orders.ts reads it (StoredOrder). */
const ORDER_COLUMNS = `id, cart_id, channel, holder, status, currency, total_minor, created_at, pay_by, paid_at,
  cancelled_at, cancel_reason, payment_url, payment_instructions, payment_reference, needs_refund`;

export interface Statement {
  name: string;
  text: string;
}

function statements<K extends string>(texts: Record<K, string>): Record<K, Statement> {
  const out = {} as Record<K, Statement>;
  for (const key of Object.keys(texts) as K[]) out[key] = { name: `stocklock_${key}`, text: texts[key] };
  return out;
}

// Every statement is named, so each connection parses and plans it once: the hot path builds no SQL.
export const S = statements({
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
  // Units the channel's other expired carts and its orders past pay_by still hold: not counted against its cap.
  channelExpiredHeld: `SELECT ((SELECT COALESCE(SUM(l.held), 0) FROM carts c JOIN cart_lines l ON l.cart_id = c.id
      WHERE c.channel = $1 AND c.status = 'open' AND c.expires_at <= $2 AND c.id <> $3)
    + (SELECT COALESCE(SUM(l.held), 0) FROM orders o JOIN order_lines l ON l.order_id = o.id
      WHERE o.channel = $1 AND o.status = 'awaiting_payment' AND o.pay_by <= $2))::bigint AS held`,
  // A decision's row changes in one round trip: products' counts (returning the rows) and lines' holds.
  applyRows: `WITH stock AS (
      UPDATE products p SET on_hand = p.on_hand + d.on_hand, reserved = p.reserved + d.reserved,
        updated_at = CASE WHEN d.touched THEN $1 ELSE p.updated_at END
      FROM unnest($2::text[], $3::integer[], $4::integer[], $5::boolean[]) AS d(sku, on_hand, reserved, touched)
      WHERE p.sku = d.sku
      RETURNING ${PRODUCT_COLUMNS.replace(/(\w+)/g, 'p.$1')}),
    held AS (
      UPDATE cart_lines l SET held = d.held
      FROM unnest($6::text[], $7::text[], $8::integer[]) AS d(cart_id, sku, held)
      WHERE l.cart_id = d.cart_id AND l.sku = d.sku),
    order_held AS (
      UPDATE order_lines l SET held = d.held
      FROM unnest($9::text[], $10::text[], $11::integer[]) AS d(order_id, sku, held)
      WHERE l.order_id = d.order_id AND l.sku = d.sku)
    SELECT * FROM stock`,
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
  cart: `SELECT id, channel, status, currency, created_at, updated_at, expires_at, ${databaseNow('$4', '$5')} AS now
    FROM carts WHERE id = $1 AND channel = $2 AND holder = $3`,
  lockCart: thenNow(
    'SELECT id, channel, status, currency, created_at, updated_at, expires_at FROM carts WHERE id = $1 AND channel = $2 AND holder = $3 FOR UPDATE',
    '$4',
    '$5',
  ),
  // A new cart and its first line in one statement (the line's foreign key is checked at its end).
  insertCartWithLine: `WITH cart AS (
      INSERT INTO carts (id, channel, holder, status, currency, created_at, updated_at, expires_at)
      VALUES ($1, $2, $9, 'open', $3, $4, $4, $5))
    INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES ($1, $6, $7, $8)`,
  // One OAuth holder's add_to_cart calls take turns, so its cap is decided on holds no other call is changing.
  holderLock: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 1))',
  // Units one holder's live carts hold: open and unexpired, or the cart being written (reviving counts it again).
  holderHeld: `SELECT COALESCE(SUM(l.held), 0)::bigint AS held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
    WHERE c.channel = $1 AND c.holder = $2 AND c.status = 'open' AND (c.expires_at > $3 OR c.id = $4)`,
  touchCart: 'UPDATE carts SET status = $1, currency = $2, updated_at = $3, expires_at = $4 WHERE id = $5',
  closeCarts: 'UPDATE carts SET status = $1, updated_at = $2 WHERE id = ANY($3::text[])',
  lines: 'SELECT sku, quantity, held FROM cart_lines WHERE cart_id = $1 ORDER BY sku COLLATE "C"',
  upsertLine: `INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES ($1, $2, $3, $4)
    ON CONFLICT (cart_id, sku) DO UPDATE
      SET quantity = cart_lines.quantity + excluded.quantity, held = cart_lines.held + excluded.held`,
  deleteLine: 'DELETE FROM cart_lines WHERE cart_id = $1 AND sku = $2',
  lineViews: `SELECT l.sku, p.name, l.quantity, p.price_minor AS unit_price_minor
    FROM cart_lines l JOIN products p ON p.sku = l.sku WHERE l.cart_id = $1 ORDER BY l.sku COLLATE "C"`,
  orderForCart: `SELECT ${ORDER_COLUMNS} FROM orders WHERE cart_id = $1`,
  order: `SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1`,
  orderByReference: `SELECT ${ORDER_COLUMNS} FROM orders WHERE payment_reference = $1
    ORDER BY created_at DESC LIMIT 1`,
  // The order row locked, the first lock of its transaction; a customer's only in its own channel and holder
  // (an admin passes no channel).
  lockOrder: thenNow(
    `SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1 AND ($2::text IS NULL OR (channel = $2 AND holder = $3))
     FOR UPDATE`,
    '$4',
    '$5',
  ),
  // An order past pay_by not yet swept reads as cancelled, so the filter uses the status it reads as.
  orders: `SELECT ${ORDER_COLUMNS} FROM orders
    WHERE ($1::text IS NULL OR CASE WHEN status = 'awaiting_payment' AND pay_by <= $4 THEN 'cancelled'
                                    ELSE status END = $1::text)
      AND ($2::text IS NULL OR channel = $2::text)
    ORDER BY created_at DESC, id DESC LIMIT $3`,
  orderLines:
    'SELECT sku, name, quantity, unit_price_minor, held FROM order_lines WHERE order_id = $1 ORDER BY sku COLLATE "C"',
  linesOfOrders: `SELECT order_id, sku, name, quantity, unit_price_minor, held FROM order_lines
    WHERE order_id = ANY($1::text[]) ORDER BY order_id, sku COLLATE "C"`,
  insertOrder: `INSERT INTO orders (id, cart_id, channel, holder, status, total_minor, currency, created_at, pay_by, paid_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
  insertOrderLines: `INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor, held)
    SELECT $1, l.sku, l.name, l.quantity, l.unit_price_minor, l.held
    FROM unnest($2::text[], $3::text[], $4::integer[], $5::bigint[], $6::integer[])
      AS l(sku, name, quantity, unit_price_minor, held)`,
  saveOrder: `UPDATE orders SET status = $2, paid_at = $3, cancelled_at = $4, cancel_reason = $5, payment_url = $6,
    payment_instructions = $7, payment_reference = $8, needs_refund = $9 WHERE id = $1`,
  // Several sweepers at once each take different orders: a locked order belongs to whoever locked it.
  overdueOrders: `SELECT ${ORDER_COLUMNS} FROM orders WHERE status = 'awaiting_payment' AND pay_by <= $1
    ORDER BY pay_by LIMIT $2 FOR UPDATE SKIP LOCKED`,
  holderAwaiting: `SELECT COALESCE(SUM(l.held), 0)::bigint AS held FROM orders o JOIN order_lines l ON l.order_id = o.id
    WHERE o.channel = $1 AND o.holder = $2 AND o.status = 'awaiting_payment' AND o.pay_by > $3`,
  channelMode: 'SELECT checkout FROM channels WHERE channel = $1',
  channelModes: 'SELECT channel, checkout FROM channels ORDER BY channel COLLATE "C"',
  saveChannelMode: `INSERT INTO channels (channel, checkout, updated_at) VALUES ($1, $2, $3)
    ON CONFLICT (channel) DO UPDATE SET checkout = excluded.checkout, updated_at = excluded.updated_at`,
  hostRules: 'SELECT host, channel FROM oauth_hosts',
  tokenChannels: 'SELECT DISTINCT channel FROM api_tokens WHERE revoked_at IS NULL',
  openCartsOf: "SELECT id, channel FROM carts WHERE holder = $1 AND status = 'open' ORDER BY id",
  awaitingOrdersOf: "SELECT id FROM orders WHERE holder = $1 AND status = 'awaiting_payment' ORDER BY id",
  // Calls with one idempotency key queue here, so the second finds the first's record instead of a duplicate key.
  keyLock: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))',
  idempotency:
    'SELECT fingerprint, result FROM idempotency_records WHERE channel = $1 AND tool = $2 AND key = $3',
  saveIdempotency: `INSERT INTO idempotency_records (channel, tool, key, fingerprint, result, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)`,
  pruneIdempotency: `DELETE FROM idempotency_records WHERE created_at < ${databaseNow('$2', '$3')} - $1::bigint`,
  now: `SELECT ${databaseNow('$1', '$2')} AS now`,
  // add_to_cart's hot path as one autocommit statement (drizzle/postgres/0004, one-statement.ts).
  reserveNewCart: 'SELECT * FROM stocklock_reserve_new_cart($1, $2, $3, $4, $5, $6, $7, $8, $9)',
  // A backend gone from pg_stat_activity has ended its transaction: committed, or never will.
  backendAlive: 'SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1) AS alive',
  cartExists: 'SELECT EXISTS (SELECT 1 FROM carts WHERE id = $1) AS found',
  // checkout's hot path as one autocommit statement, in the channel's mode (drizzle/postgres/0008, one-statement.ts).
  checkoutCart: 'SELECT * FROM stocklock_checkout_cart($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
  orderExists: 'SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1) AS found',
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
