// A year of sales written straight into a store's tables in one transaction: rows the audit balances, made in seconds.
// Every table the write path fills gets its share: sold, released, expired and open carts with their ledger
// movements, orders, channel hold counters, idempotency records, OAuth clients, grants, tokens and spent codes.

export interface HistorySize {
  orders: number;
  skus: number;
}

/** The shape of a shop at `orders` orders a year: a SKU per 40 orders (25,000 at a million), 1,000 at least. */
export function historySize(orders: number): HistorySize {
  return { orders, skus: Math.max(1_000, Math.round(orders / 40)) };
}

const DAY = 86_400_000;
const SPAN = 365 * DAY;
const CHANNELS = ['web', 'chatgpt', 'claude', 'telegram'];
/** Units each SKU was imported with: far more than a year sells of it. */
const IMPORTED = 1_000_000;

export type Dialect = 'sqlite' | 'postgres';

/** A series s(i) of 64-bit integers 1..n: a recursive CTE on SQLite, generate_series on PostgreSQL (faster there). */
const seriesOf = (dialect: Dialect) => (n: number) =>
  dialect === 'sqlite'
    ? `WITH RECURSIVE s(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM s WHERE i < ${n})`
    : `WITH s(i) AS (SELECT generate_series(CAST(1 AS BIGINT), ${n}))`;
const channelOf = (x: string) =>
  `CASE ${x} % 4 ${CHANNELS.map((c, k) => `WHEN ${k} THEN '${c}'`).join(' ')} END`;

/**
 * The statements, in order, for a history ending at `now`. Sold cart i buys (1 + i % 3) of one SKU, and
 * odd i one more SKU besides; a fifth as many carts were released and as many expired; a few hundred are
 * open now. The ledger holds each cart's reserve and its sale, release or expiry, in time order, and the
 * products' levels are the ledger's sums, so the audit finds the books balanced.
 */
export function historyStatements(size: HistorySize, now: number, dialect: Dialect): string[] {
  const series = seriesOf(dialect);
  const { orders: n, skus } = size;
  const start = now - SPAN;
  const at = (i: string, count: number) => `${start} + (${i} * ${SPAN - DAY}) / ${count}`;
  const k1 = `((i * 7919) % ${skus})`;
  const k2 = `((i * 7919 + 1) % ${skus})`;
  const price = (k: string) => `(500 + ((${k}) % 50) * 100)`;
  const qty = '(1 + i % 3)';
  const released = Math.max(1, Math.floor(n / 5));
  const expired = released;
  const open = Math.min(500, Math.max(1, Math.floor(n / 20)));
  const idempotency = Math.max(1, Math.floor(n / 10));
  const grants = Math.max(10, Math.floor(n / 100));
  const codes = Math.max(5, Math.floor(grants / 365));
  const result = `'${JSON.stringify({ cart_id: 'c', status: 'open', lines: [{ sku: 'Y', quantity: 1 }], note: 'x'.repeat(200) })}'`;
  return [
    `${series(skus)} INSERT INTO products (sku, name, description, price_minor, currency, on_hand, reserved,
       track_stock, active, created_at, updated_at)
     SELECT 'Y-' || (i - 1), 'Year product ' || (i - 1), NULL, ${price('i - 1')}, 'EUR', ${IMPORTED}, 0, TRUE, TRUE,
       ${start}, ${start} FROM s`,
    // Sold carts and their orders.
    `${series(n)} INSERT INTO carts (id, channel, customer_ref, status, currency, created_at, updated_at, expires_at, holder)
     SELECT 'c' || i, ${channelOf('i')}, NULL, 'checked_out', 'EUR', ${at('i', n)} - 120000, ${at('i', n)},
       ${at('i', n)} + 780000, '' FROM s`,
    `${series(n)} INSERT INTO cart_lines (cart_id, sku, quantity, held)
     SELECT 'c' || i, 'Y-' || ${k1}, ${qty}, 0 FROM s
     UNION ALL SELECT 'c' || i, 'Y-' || ${k2}, 1, 0 FROM s WHERE i % 2 = 1`,
    `${series(n)} INSERT INTO orders (id, cart_id, channel, total_minor, currency, created_at)
     SELECT 'o' || i, 'c' || i, ${channelOf('i')},
       ${qty} * ${price(k1)} + CASE WHEN i % 2 = 1 THEN ${price(k2)} ELSE 0 END, 'EUR', ${at('i', n)} FROM s`,
    `${series(n)} INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor)
     SELECT 'o' || i, 'Y-' || ${k1}, 'Year product ' || ${k1}, ${qty}, ${price(k1)} FROM s
     UNION ALL SELECT 'o' || i, 'Y-' || ${k2}, 'Year product ' || ${k2}, 1, ${price(k2)} FROM s WHERE i % 2 = 1`,
    // Carts let go: released by the shopper after five minutes, or expired after fifteen.
    `${series(released)} INSERT INTO carts (id, channel, customer_ref, status, currency, created_at, updated_at, expires_at, holder)
     SELECT 'r' || i, ${channelOf('i')}, NULL, 'released', 'EUR', ${at('i', released)} + 7000,
       ${at('i', released)} + 307000, ${at('i', released)} + 907000, '' FROM s`,
    `${series(expired)} INSERT INTO carts (id, channel, customer_ref, status, currency, created_at, updated_at, expires_at, holder)
     SELECT 'x' || i, ${channelOf('i')}, NULL, 'expired', 'EUR', ${at('i', expired)} + 11000,
       ${at('i', expired)} + 911000, ${at('i', expired)} + 911000, '' FROM s`,
    `${series(released)} INSERT INTO cart_lines (cart_id, sku, quantity, held)
     SELECT 'r' || i, 'Y-' || ((i * 104729) % ${skus}), 1, 0 FROM s
     UNION ALL SELECT 'x' || i, 'Y-' || ((i * 15485863) % ${skus}), 1, 0 FROM s`,
    // Carts open now, holding what they ask for.
    `${series(open)} INSERT INTO carts (id, channel, customer_ref, status, currency, created_at, updated_at, expires_at, holder)
     SELECT 'live' || i, ${channelOf('i')}, NULL, 'open', 'EUR', ${now - 60_000}, ${now - 60_000}, ${now + 840_000}, '' FROM s`,
    `${series(open)} INSERT INTO cart_lines (cart_id, sku, quantity, held)
     SELECT 'live' || i, 'Y-' || ((i * 31) % ${skus}), 1 + i % 2, 1 + i % 2 FROM s`,
    // The ledger, in time order: imports, then every cart's reserve and its end.
    `INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
     SELECT at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note FROM (
       SELECT ${start} AS at, sku, 'import' AS kind, ${IMPORTED} AS quantity, ${IMPORTED} AS on_hand_delta,
         0 AS reserved_delta, NULL AS cart_id, NULL AS order_id, 'cli' AS channel, 'opening stock' AS note FROM products
       UNION ALL SELECT c.created_at, l.sku, 'reserve', l.quantity, 0, l.quantity, c.id, NULL, c.channel, NULL
         FROM carts c JOIN cart_lines l ON l.cart_id = c.id
       UNION ALL SELECT o.created_at, l.sku, 'sale', l.quantity, -l.quantity, -l.quantity, o.cart_id, o.id, o.channel, NULL
         FROM orders o JOIN order_lines l ON l.order_id = o.id
       UNION ALL SELECT c.updated_at, l.sku, CASE c.status WHEN 'released' THEN 'release' ELSE 'expire' END,
         l.quantity, 0, -l.quantity, c.id, NULL, c.channel, NULL
         FROM carts c JOIN cart_lines l ON l.cart_id = c.id WHERE c.status IN ('released', 'expired')
     ) m ORDER BY at, kind`,
    `UPDATE products SET
       on_hand = (SELECT SUM(m.on_hand_delta) FROM stock_movements m WHERE m.sku = products.sku),
       reserved = (SELECT SUM(m.reserved_delta) FROM stock_movements m WHERE m.sku = products.sku)`,
    `INSERT INTO channel_holds (channel, held)
     SELECT c.channel, SUM(l.held) FROM carts c JOIN cart_lines l ON l.cart_id = c.id
     WHERE c.status = 'open' GROUP BY c.channel`,
    // A day of idempotency records (the sweeper drops older ones), a little over a day's worth.
    `${series(idempotency)} INSERT INTO idempotency_records (channel, tool, key, fingerprint, result, created_at)
     SELECT ${channelOf('i')}, 'add_to_cart', 'key-' || i, 'fp-' || i, ${result},
       ${now} - (i * ${26 * 3_600_000}) / ${idempotency} FROM s`,
    // OAuth: a few clients, a grant per hundred orders (a tenth revoked), their tokens, the last day's spent codes.
    `${series(20)} INSERT INTO oauth_clients (client_id, kind, metadata, secret_hash, created_at, fetched_at)
     SELECT 'https://client' || i || '.example/oauth.json', 'cimd', '{"client_name":"Client ' || i || '"}', NULL,
       ${start}, ${start} FROM s`,
    `${series(grants)} INSERT INTO oauth_grants (id, client_id, channel, scope, resource, redirect_host, created_at,
       last_used_at, revoked_at, revoke_reason)
     SELECT 'gr_' || i, 'https://client' || (1 + i % 20) || '.example/oauth.json',
       CASE i % 2 WHEN 0 THEN 'chatgpt' ELSE 'claude' END, 'stock:shop', 'http://127.0.0.1/mcp',
       CASE i % 2 WHEN 0 THEN 'chatgpt.com' ELSE 'claude.ai' END, ${at('i', grants)}, ${at('i', grants)} + 3600000,
       CASE WHEN i % 10 = 0 THEN ${at('i', grants)} + 7200000 ELSE NULL END,
       CASE WHEN i % 10 = 0 THEN 'revoked in the console' ELSE NULL END FROM s`,
    `${series(grants)} INSERT INTO oauth_tokens (token_hash, grant_id, kind, created_at, expires_at, used_at)
     SELECT 'refresh-' || i, 'gr_' || i, 'refresh', ${now - DAY}, ${now + 29 * DAY}, CAST(NULL AS BIGINT) FROM s WHERE i % 10 != 0
     UNION ALL SELECT 'access-' || i, 'gr_' || i, 'access', ${now - 600_000}, ${now + 3_000_000}, NULL FROM s
       WHERE i % 10 != 0`,
    `${series(codes)} INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge, scope, resource, channel,
       created_at, expires_at, used_at, grant_id)
     SELECT 'code-' || i, 'https://client' || (1 + i % 20) || '.example/oauth.json', 'https://chatgpt.com/cb',
       'challenge', 'stock:shop', 'http://127.0.0.1/mcp', 'chatgpt', ${now} - (i * ${DAY}) / ${codes},
       ${now} - (i * ${DAY}) / ${codes} + 60000, ${now} - (i * ${DAY}) / ${codes} + 5000, 'gr_' || i FROM s`,
  ];
}
