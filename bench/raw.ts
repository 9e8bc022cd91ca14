// The raw better-sqlite3 references the store is measured against: the smallest safe transaction (the limit),
// a careful raw reserve and checkout with the store's rows, and the connection settings they share with it.
import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import type { ImportRow } from '../src/domain/types.js';
import { Database } from '../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { benchCatalog, benchStoreOptions, type Sync } from './lib.js';

const CHANNEL = 'bench';
const TTL_MS = 15 * 60_000;

/**
 * The same pragmas openSqliteStore sets after migrating (WAL, the same synchronous mode, foreign keys, a short
 * busy timeout), so a raw reference pays for the same durability as the store.
 */
export function openRaw(
  path: string,
  sync: Sync,
  verbose?: (sql: string) => void,
  busyTimeoutMs = 5,
): BetterSqlite3.Database {
  const db = new Database(path, verbose ? { verbose: (sql) => verbose(String(sql)) } : {});
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${sync}`);
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  return db;
}

/** A migrated database holding the bench catalog (made through the store, so every side starts equal). */
export async function prepareDatabase(
  path: string,
  sync: Sync,
  catalog: ImportRow[] = benchCatalog(),
): Promise<void> {
  const store = openSqliteStore(path, benchStoreOptions(sync));
  await store.importProducts({ channel: 'cli' }, catalog);
  await store.close();
}

const LEDGER_INSERT = `INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/**
 * The limit: the smallest transaction that can reserve without overselling (one conditional UPDATE that
 * decides and holds, plus the ledger row), and its twin for selling a held unit. No cart, no line, no
 * counter: what SQLite can do for one unit with the lock taken first.
 */
export function smallestSafe(db: BetterSqlite3.Database, channel = CHANNEL) {
  const hold = db.prepare(
    'UPDATE products SET reserved = reserved + ? WHERE sku = ? AND on_hand - reserved >= ?',
  );
  const sell = db.prepare(
    'UPDATE products SET on_hand = on_hand - ?, reserved = reserved - ?, updated_at = ? WHERE sku = ? AND reserved >= ?',
  );
  const ledger = db.prepare(LEDGER_INSERT);
  const reserve = db.transaction((sku: string, now: number) => {
    if (hold.run(1, sku, 1).changes !== 1) throw new Error(`${sku} sold out`);
    ledger.run(now, sku, 'reserve', 1, 0, 1, null, null, channel, null);
  }).immediate;
  const sale = db.transaction((sku: string, now: number) => {
    if (sell.run(1, 1, now, sku, 1).changes !== 1) throw new Error(`${sku} holds nothing to sell`);
    ledger.run(now, sku, 'sale', 1, -1, -1, null, null, channel, null);
  }).immediate;
  return { reserve, sale };
}

/**
 * Issue 15's reference: a reserve into a new cart and the checkout of a one-line cart written carefully on
 * raw prepared statements, with the same rows the store writes (the cart, its line, the product, the channel
 * counter, the ledger) and the same expired-holds scan from the expiry index. The conditional UPDATE …
 * RETURNING decides, holds and reads the product in one statement; nothing is read back that is already
 * known. It keeps the per-channel cap on the counter's new value (the store also discounts other expired
 * carts' holds). A cart that needs reviving is outside this reference.
 */
export function carefulShop(db: BetterSqlite3.Database, channel = CHANNEL, maxChannelHeld = 1_000_000_000) {
  const q = (sql: string) => db.prepare(sql);
  const s = {
    expiredHolds: q(
      `SELECT l.cart_id, l.held, c.channel FROM carts c CROSS JOIN cart_lines l ON l.cart_id = c.id AND l.sku = ?
       WHERE c.status = 'open' AND c.expires_at <= ? AND l.held > 0`,
    ),
    release: q('UPDATE cart_lines SET held = 0 WHERE cart_id = ? AND sku = ?'),
    addReserved: q('UPDATE products SET reserved = reserved + ? WHERE sku = ?'),
    hold: q(
      `UPDATE products SET reserved = reserved + ? WHERE sku = ? AND active = 1 AND on_hand - reserved >= ?
       RETURNING name, price_minor, currency`,
    ),
    insertCart: q(
      `INSERT INTO carts (id, channel, status, currency, created_at, updated_at, expires_at) VALUES (?, ?, 'open', ?, ?, ?, ?)`,
    ),
    insertLine: q('INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES (?, ?, ?, ?)'),
    addChannelHeld: q(
      `INSERT INTO channel_holds (channel, held) VALUES (?, ?) ON CONFLICT (channel) DO UPDATE SET held = held + excluded.held
       RETURNING held`,
    ),
    ledger: q(LEDGER_INSERT),
    cart: q('SELECT status, currency, expires_at FROM carts WHERE id = ? AND channel = ?'),
    lines: q(
      `SELECT l.sku, l.quantity, l.held, p.name, p.price_minor FROM cart_lines l JOIN products p ON p.sku = l.sku
       WHERE l.cart_id = ? ORDER BY l.sku`,
    ),
    sell: q(
      'UPDATE products SET on_hand = on_hand - ?, reserved = reserved - ?, updated_at = ? WHERE sku = ?',
    ),
    insertOrder: q(
      'INSERT INTO orders (id, cart_id, channel, total_minor, currency, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertOrderLine: q(
      'INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor) VALUES (?, ?, ?, ?, ?)',
    ),
    closeCart: q(`UPDATE carts SET status = 'checked_out', updated_at = ? WHERE id = ?`),
  };
  type Hold = { cart_id: string; held: number; channel: string };
  type Line = { sku: string; quantity: number; held: number; name: string; price_minor: number };

  const reserve = db.transaction((sku: string, now: number) => {
    // Expired holds of this SKU go back before deciding, as the store does.
    for (const hold of s.expiredHolds.all(sku, now) as Hold[]) {
      s.release.run(hold.cart_id, sku);
      s.addReserved.run(-hold.held, sku);
      s.addChannelHeld.get(hold.channel, -hold.held);
      s.ledger.run(now, sku, 'expire', hold.held, 0, -hold.held, hold.cart_id, null, hold.channel, null);
    }
    const product = s.hold.get(1, sku, 1) as
      | { name: string; price_minor: number; currency: string }
      | undefined;
    if (!product) throw new Error(`${sku} unknown or sold out`);
    const id = `cart_${randomUUID()}`;
    s.insertCart.run(id, channel, product.currency, now, now, now + TTL_MS);
    s.insertLine.run(id, sku, 1, 1);
    const counter = s.addChannelHeld.get(channel, 1) as { held: number };
    if (counter.held > maxChannelHeld)
      throw new Error(`channel ${channel} holds more than ${maxChannelHeld}`);
    s.ledger.run(now, sku, 'reserve', 1, 0, 1, id, null, channel, null);
    return { id, lines: [{ sku, name: product.name, quantity: 1, unit_price_minor: product.price_minor }] };
  }).immediate;

  const checkout = db.transaction((cartId: string, now: number) => {
    const cart = s.cart.get(cartId, channel) as
      | { status: string; currency: string; expires_at: number }
      | undefined;
    if (cart?.status !== 'open') throw new Error(`cart ${cartId} is not open`);
    const lines = s.lines.all(cartId) as Line[];
    if (cart.expires_at <= now || lines.some((line) => line.held !== line.quantity)) {
      throw new Error(`cart ${cartId} needs reviving, which this reference does not do`);
    }
    const orderId = `ord_${randomUUID()}`;
    let units = 0;
    let total = 0;
    for (const line of lines) {
      s.sell.run(line.quantity, line.quantity, now, line.sku);
      s.release.run(cartId, line.sku);
      s.ledger.run(
        now,
        line.sku,
        'sale',
        line.quantity,
        -line.quantity,
        -line.quantity,
        cartId,
        orderId,
        channel,
        null,
      );
      units += line.quantity;
      total += line.quantity * line.price_minor;
    }
    s.addChannelHeld.get(channel, -units);
    s.insertOrder.run(orderId, cartId, channel, total, cart.currency, now);
    for (const line of lines)
      s.insertOrderLine.run(orderId, line.sku, line.name, line.quantity, line.price_minor);
    s.closeCart.run(now, cartId);
    return { orderId, total };
  }).immediate;

  return { reserve, checkout };
}

/**
 * The store's reserve as it was written by hand before the replay was captured from the store (it runs four
 * statements more than the store). Kept only as the processes scenario's SQLite-busy-handler baseline, where
 * what is compared is how each side waits for the lock, not the SQL.
 */
export function handWrittenReserve(db: BetterSqlite3.Database, channel = CHANNEL) {
  const q = (sql: string) => db.prepare(sql);
  const s = {
    product: q('SELECT sku, name, price_minor, currency, on_hand, reserved FROM products WHERE sku = ?'),
    insertCart: q(
      `INSERT INTO carts (id, channel, status, currency, created_at, updated_at, expires_at) VALUES (?, ?, 'open', ?, ?, ?, ?)`,
    ),
    expiredHolds: q(
      `SELECT l.cart_id, l.held, c.channel FROM carts c CROSS JOIN cart_lines l ON l.cart_id = c.id AND l.sku = ?
       WHERE c.status = 'open' AND c.expires_at <= ? AND l.held > 0`,
    ),
    addReserved: q('UPDATE products SET reserved = reserved + ? WHERE sku = ?'),
    channelHeld: q('SELECT held FROM channel_holds WHERE channel = ?'),
    addChannelHeld: q(
      'INSERT INTO channel_holds (channel, held) VALUES (?, ?) ON CONFLICT (channel) DO UPDATE SET held = held + excluded.held',
    ),
    upsertLine: q(
      `INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES (?, ?, ?, ?)
       ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = quantity + excluded.quantity, held = held + excluded.held`,
    ),
    ledger: q(LEDGER_INSERT),
    lineViews: q(
      `SELECT l.sku, p.name, l.quantity, p.price_minor AS unit_price_minor
       FROM cart_lines l JOIN products p ON p.sku = l.sku WHERE l.cart_id = ? ORDER BY l.sku`,
    ),
  };
  type Product = { currency: string; on_hand: number; reserved: number };
  const reserve = db.transaction((sku: string, now: number) => {
    const product = s.product.get(sku) as Product;
    const id = `cart_${randomUUID()}`;
    s.insertCart.run(id, channel, product.currency, now, now, now + TTL_MS);
    s.expiredHolds.all(sku, now);
    if (product.on_hand - product.reserved < 1) throw new Error(`${sku} sold out`);
    s.addReserved.run(1, sku);
    s.channelHeld.get(channel);
    s.addChannelHeld.run(channel, 1);
    s.upsertLine.run(id, sku, 1, 1);
    s.ledger.run(now, sku, 'reserve', 1, 0, 1, id, null, channel, null);
    return { id, lines: s.lineViews.all(id) };
  }).immediate;
  return { reserve };
}
