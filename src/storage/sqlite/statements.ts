// Every SQL statement of the SQLite store, prepared once when the store opens: the hot path builds no SQL.
import type Database from 'better-sqlite3';

/** An order row as domain/orders.ts reads it (StoredOrder). */
export const ORDER_COLUMNS = `id, cart_id, channel, holder, status, currency, total_minor, created_at, pay_by, paid_at,
  cancelled_at, cancel_reason, payment_url, payment_instructions, payment_reference, needs_refund`;

export function prepareStatements(db: Database.Database) {
  const q = (sql: string) => db.prepare(sql);
  return {
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
    // Units the channel's other expired carts and its orders past pay_by still hold: they no longer count against
    // its cap.
    channelExpiredHeld: q(
      `SELECT (SELECT COALESCE(SUM(l.held), 0) FROM carts c JOIN cart_lines l ON l.cart_id = c.id
         WHERE c.channel = @channel AND c.status = 'open' AND c.expires_at <= @now AND c.id != @cart)
       + (SELECT COALESCE(SUM(l.held), 0) FROM orders o JOIN order_lines l ON l.order_id = o.id
         WHERE o.channel = @channel AND o.status = 'awaiting_payment' AND o.pay_by <= @now) AS held`,
    ),
    // Units one holder's live carts hold: open and unexpired, or the cart being written (reviving counts it again).
    holderHeld: q(
      `SELECT COALESCE(SUM(l.held), 0) AS held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
       WHERE c.channel = ? AND c.holder = ? AND c.status = 'open' AND (c.expires_at > ? OR c.id = ?)`,
    ),
    movement: q(
      `INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
       VALUES (@at, @sku, @kind, @quantity, @on_hand_delta, @reserved_delta, @cart_id, @order_id, @channel, @note)`,
    ),
    cart: q(
      'SELECT id, channel, status, currency, created_at, updated_at, expires_at FROM carts WHERE id = ? AND channel = ? AND holder = ?',
    ),
    insertCart: q(
      `INSERT INTO carts (id, channel, holder, status, currency, created_at, updated_at, expires_at)
       VALUES (?, ?, ?, 'open', ?, ?, ?, ?)`,
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
    orderForCart: q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE cart_id = ?`),
    order: q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ?`),
    orderByReference: q(
      `SELECT ${ORDER_COLUMNS} FROM orders WHERE payment_reference = ? ORDER BY created_at DESC LIMIT 1`,
    ),
    // A customer's order: its own channel and holder only.
    orderOf: q(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ? AND channel = ? AND holder = ?`),
    // An order past pay_by not yet swept reads as cancelled, so the filter uses the status it reads as.
    orders: q(
      `SELECT ${ORDER_COLUMNS} FROM orders
       WHERE (@status IS NULL OR CASE WHEN status = 'awaiting_payment' AND pay_by <= @now THEN 'cancelled'
                                      ELSE status END = @status)
         AND (@channel IS NULL OR channel = @channel)
       ORDER BY created_at DESC, id DESC LIMIT @limit`,
    ),
    orderLines: q(
      'SELECT sku, name, quantity, unit_price_minor, held FROM order_lines WHERE order_id = ? ORDER BY sku',
    ),
    linesOfOrders: q(
      `SELECT order_id, sku, name, quantity, unit_price_minor, held FROM order_lines
       WHERE order_id IN (SELECT value FROM json_each(?)) ORDER BY order_id, sku`,
    ),
    insertOrder: q(
      `INSERT INTO orders (id, cart_id, channel, holder, status, total_minor, currency, created_at, pay_by, paid_at)
       VALUES (@id, @cart_id, @channel, @holder, @status, @total_minor, @currency, @created_at, @pay_by, @paid_at)`,
    ),
    insertOrderLine: q(
      'INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor, held) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    saveOrder: q(
      `UPDATE orders SET status = @status, paid_at = @paid_at, cancelled_at = @cancelled_at,
         cancel_reason = @cancel_reason, payment_url = @payment_url, payment_instructions = @payment_instructions,
         payment_reference = @payment_reference, needs_refund = @needs_refund WHERE id = @id`,
    ),
    setOrderHeld: q('UPDATE order_lines SET held = ? WHERE order_id = ? AND sku = ?'),
    overdueOrders: q(
      `SELECT ${ORDER_COLUMNS} FROM orders WHERE status = 'awaiting_payment' AND pay_by <= ?
       ORDER BY pay_by LIMIT ?`,
    ),
    // Units one holder's orders awaiting payment hold, those past pay_by left out (they are going back on sale).
    holderAwaiting: q(
      `SELECT COALESCE(SUM(l.held), 0) AS held FROM orders o JOIN order_lines l ON l.order_id = o.id
       WHERE o.channel = ? AND o.holder = ? AND o.status = 'awaiting_payment' AND o.pay_by > ?`,
    ),
    channelMode: q('SELECT checkout FROM channels WHERE channel = ?'),
    channelModes: q('SELECT channel, checkout FROM channels ORDER BY channel'),
    saveChannelMode: q(
      `INSERT INTO channels (channel, checkout, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (channel) DO UPDATE SET checkout = excluded.checkout, updated_at = excluded.updated_at`,
    ),
    hostRules: q('SELECT host, channel FROM oauth_hosts'),
    tokenChannels: q('SELECT DISTINCT channel FROM api_tokens WHERE revoked_at IS NULL ORDER BY channel'),
    openCartsOf: q("SELECT id, channel FROM carts WHERE holder = ? AND status = 'open' ORDER BY id"),
    awaitingOrdersOf: q("SELECT id FROM orders WHERE holder = ? AND status = 'awaiting_payment' ORDER BY id"),
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
}

export type Statements = ReturnType<typeof prepareStatements>;
