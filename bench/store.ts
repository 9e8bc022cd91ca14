// Scenarios 1 and 2: the reserve and checkout transactions of SqliteStore against the same SQL on raw
// better-sqlite3 prepared statements in one BEGIN IMMEDIATE (the ceiling), under synchronous NORMAL and FULL.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ImportRow } from '../src/domain/types.js';
import { openSqliteStore, SqliteStore } from '../src/storage/sqlite/store.js';
import {
  benchCatalog,
  benchStoreOptions,
  fmt,
  HOT_SKU,
  interleaved,
  type RunSettings,
  type Section,
  type Sync,
  section,
  spreadSku,
  throughput,
} from './lib.js';

const CHANNEL = 'bench';
const CTX = { channel: CHANNEL };
const TTL_MS = 15 * 60_000;

/**
 * The statements SqliteStore runs for add_to_cart (new cart, one tracked line, no idempotency key) and for the
 * checkout of a one-line cart, in the same order, written straight on prepared statements: no validation, no
 * view building, no error mapping. What stocklock adds on top of this is what the ratio measures.
 */
export function rawShop(db: Database.Database, channel = CHANNEL) {
  const q = (sql: string) => db.prepare(sql);
  const s = {
    product: q(
      'SELECT sku, name, description, price_minor, currency, on_hand, reserved, track_stock, active FROM products WHERE sku = ?',
    ),
    insertCart: q(
      `INSERT INTO carts (id, channel, status, currency, created_at, updated_at, expires_at) VALUES (?, ?, 'open', ?, ?, ?, ?)`,
    ),
    line: q('SELECT sku, quantity, held FROM cart_lines WHERE cart_id = ? AND sku = ?'),
    cartUnits: q('SELECT COALESCE(SUM(quantity), 0) AS units FROM cart_lines WHERE cart_id = ?'),
    expiredHolds: q(
      `SELECT l.cart_id, l.held, c.channel FROM carts c CROSS JOIN cart_lines l ON l.cart_id = c.id AND l.sku = ?
       WHERE c.status = 'open' AND c.expires_at <= ? AND l.held > 0`,
    ),
    addReserved: q('UPDATE products SET reserved = reserved + ? WHERE sku = ?'),
    channelHeld: q('SELECT held FROM channel_holds WHERE channel = ?'),
    channelExpiredHeld: q(
      `SELECT COALESCE(SUM(l.held), 0) AS held FROM carts c JOIN cart_lines l ON l.cart_id = c.id
       WHERE c.channel = ? AND c.status = 'open' AND c.expires_at <= ? AND c.id != ?`,
    ),
    addChannelHeld: q(
      'INSERT INTO channel_holds (channel, held) VALUES (?, ?) ON CONFLICT (channel) DO UPDATE SET held = held + excluded.held',
    ),
    upsertLine: q(
      `INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES (?, ?, ?, ?)
       ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = quantity + excluded.quantity, held = held + excluded.held`,
    ),
    movement: q(
      `INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    touchCart: q('UPDATE carts SET status = ?, currency = ?, updated_at = ?, expires_at = ? WHERE id = ?'),
    lineViews: q(
      `SELECT l.sku, p.name, l.quantity, p.price_minor AS unit_price_minor
       FROM cart_lines l JOIN products p ON p.sku = l.sku WHERE l.cart_id = ? ORDER BY l.sku`,
    ),
    cart: q(
      'SELECT id, channel, status, currency, created_at, updated_at, expires_at FROM carts WHERE id = ? AND channel = ?',
    ),
    lines: q('SELECT sku, quantity, held FROM cart_lines WHERE cart_id = ? ORDER BY sku'),
    addStock: q(
      'UPDATE products SET on_hand = on_hand + ?, reserved = reserved + ?, updated_at = ? WHERE sku = ?',
    ),
    setHeld: q('UPDATE cart_lines SET held = ? WHERE cart_id = ? AND sku = ?'),
    insertOrder: q(
      'INSERT INTO orders (id, cart_id, channel, total_minor, currency, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertOrderLine: q(
      'INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor) VALUES (?, ?, ?, ?, ?)',
    ),
    closeCart: q('UPDATE carts SET status = ?, updated_at = ? WHERE id = ?'),
    // The field-notes floor: the smallest transaction that can reserve without overselling.
    holdIfAvailable: q(
      'UPDATE products SET reserved = reserved + 1 WHERE sku = ? AND on_hand - reserved >= 1',
    ),
  };
  type Product = {
    sku: string;
    name: string;
    price_minor: number;
    currency: string;
    on_hand: number;
    reserved: number;
  };
  type Line = { sku: string; quantity: number; held: number };

  const reserve = db.transaction((sku: string, now: number) => {
    const product = s.product.get(sku) as Product;
    const id = `cart_${randomUUID()}`;
    const expires = now + TTL_MS;
    s.insertCart.run(id, channel, product.currency, now, now, expires);
    s.line.get(id, sku);
    s.cartUnits.get(id);
    s.expiredHolds.all(sku, now);
    const fresh = s.product.get(sku) as Product;
    if (fresh.on_hand - fresh.reserved < 1) throw new Error(`${sku} sold out`);
    s.addReserved.run(1, sku);
    s.channelHeld.get(channel);
    s.channelExpiredHeld.get(channel, now, id);
    s.addChannelHeld.run(channel, 1);
    s.upsertLine.run(id, sku, 1, 1);
    s.movement.run(now, sku, 'reserve', 1, 0, 1, id, null, channel, null);
    s.touchCart.run('open', product.currency, now, expires, id);
    return { id, lines: s.lineViews.all(id) };
  }).immediate;

  const checkout = db.transaction((cartId: string, now: number) => {
    const cart = s.cart.get(cartId, channel) as { currency: string };
    const lines = s.lines.all(cartId) as Line[];
    // stocklock re-reads the lines and each product to re-hold what expiry released (here: nothing).
    for (const line of s.lines.all(cartId) as Line[]) s.product.get(line.sku);
    const orderId = `ord_${randomUUID()}`;
    const sold: { sku: string; name: string; quantity: number; price: number }[] = [];
    let units = 0;
    for (const line of lines) {
      const product = s.product.get(line.sku) as Product;
      s.addStock.run(-line.quantity, -line.quantity, now, line.sku);
      s.setHeld.run(0, cartId, line.sku);
      s.movement.run(
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
      sold.push({ sku: line.sku, name: product.name, quantity: line.quantity, price: product.price_minor });
      units += line.quantity;
    }
    s.addChannelHeld.run(channel, -units);
    const total = sold.reduce((sum, line) => sum + line.quantity * line.price, 0);
    s.insertOrder.run(orderId, cartId, channel, total, cart.currency, now);
    for (const line of sold) s.insertOrderLine.run(orderId, line.sku, line.name, line.quantity, line.price);
    s.closeCart.run('checked_out', now, cartId);
    return { orderId, total };
  }).immediate;

  const minimalReserve = db.transaction((sku: string, now: number) => {
    if (s.holdIfAvailable.run(sku).changes !== 1) throw new Error(`${sku} sold out`);
    s.movement.run(now, sku, 'reserve', 1, 0, 1, null, null, channel, null);
  }).immediate;

  return { reserve, checkout, minimalReserve };
}

/** The same pragmas openSqliteStore sets (after migrating). */
export function openRaw(
  path: string,
  sync: Sync,
  verbose?: (sql: string) => void,
  busyTimeoutMs = 5,
): Database.Database {
  const db = new Database(path, verbose ? { verbose: (sql) => verbose(String(sql)) } : {});
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${sync}`);
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  return db;
}

/** A migrated database holding the bench catalog (made through the store, so both sides start equal). */
export async function prepareDatabase(
  path: string,
  sync: Sync,
  catalog: ImportRow[] = benchCatalog(),
): Promise<void> {
  const store = openSqliteStore(path, benchStoreOptions(sync));
  await store.importProducts({ channel: 'cli' }, catalog);
  await store.close();
}

type Measure = (fn: () => unknown) => Promise<number>;

/** Statements per transaction, BEGIN and COMMIT included, counted with better-sqlite3's verbose hook. */
async function countStatements(
  dir: string,
): Promise<{ reserve: [number, number]; checkout: [number, number] }> {
  const project = await countWith(join(dir, 'count-project.db'), async (db, measure) => {
    const store = new SqliteStore(db, benchStoreOptions('NORMAL'));
    let cartId = '';
    const reserve = await measure(async () => {
      cartId = (await store.addToCart(CTX, { sku: HOT_SKU, quantity: 1 })).cart_id;
    });
    return [reserve, await measure(() => store.checkout(CTX, { cartId }))];
  });
  const baseline = await countWith(join(dir, 'count-raw.db'), async (db, measure) => {
    const shop = rawShop(db);
    let cartId = '';
    const reserve = await measure(() => {
      cartId = shop.reserve(HOT_SKU, Date.now()).id;
    });
    return [reserve, await measure(() => shop.checkout(cartId, Date.now()))];
  });
  return { reserve: [project[0], baseline[0]], checkout: [project[1], baseline[1]] };
}

async function countWith(
  path: string,
  run: (db: Database.Database, measure: Measure) => Promise<[number, number]>,
): Promise<[number, number]> {
  await prepareDatabase(path, 'NORMAL');
  let n = 0;
  const db = openRaw(path, 'NORMAL', () => {
    n += 1;
  });
  try {
    return await run(db, async (fn) => {
      n = 0;
      await fn();
      return n;
    });
  } finally {
    db.close();
  }
}

export async function storeScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    '1–2. Store transactions (one process)',
    'SqliteStore against the same SQL on raw better-sqlite3 prepared statements in one `BEGIN IMMEDIATE` ' +
      '(the ceiling). Reserve = `addToCart` into a new cart (one unit); checkout = a one-line cart. ' +
      '"hot" reserves one SKU every time, "1,000 SKUs" walks the catalog. WAL mode, one connection each.',
    ['transaction', 'SKUs', 'synchronous', 'stocklock tx/s', 'same SQL raw tx/s', 'ratio', 'goal ≥ 0.7×'],
  );
  const counts = await countStatements(settings.dir);
  const minimal: Record<Sync, number> = { NORMAL: Number.NaN, FULL: Number.NaN };
  const ratios: number[] = [];

  for (const sync of ['NORMAL', 'FULL'] as const) {
    const projectPath = join(settings.dir, `store-${sync}.db`);
    const baselinePath = join(settings.dir, `raw-${sync}.db`);
    await prepareDatabase(projectPath, sync);
    await prepareDatabase(baselinePath, sync);
    const store = openSqliteStore(projectPath, benchStoreOptions(sync));
    const raw = openRaw(baselinePath, sync);
    const shop = rawShop(raw);
    // fdatasync per commit makes FULL an order of magnitude slower: shorter checkout batches keep the run short.
    const checkoutBatch = Math.round((sync === 'FULL' ? 800 : 2_500) * (settings.quick ? 0.1 : 1));
    try {
      for (const spread of [false, true]) {
        const skuOf = spread ? spreadSku : () => HOT_SKU;
        const contestants: Record<string, () => Promise<number>> = {
          project: () =>
            throughput(settings.windowMs, (i) => store.addToCart(CTX, { sku: skuOf(i), quantity: 1 })),
          baseline: () => throughput(settings.windowMs, (i) => shop.reserve(skuOf(i), Date.now())),
        };
        if (!spread) {
          contestants.minimal = () =>
            throughput(settings.windowMs, () => shop.minimalReserve(HOT_SKU, Date.now()));
        }
        const reserve = await interleaved(settings.repeats, contestants);
        if (!spread) minimal[sync] = reserve.minimal ?? Number.NaN;
        const checkout = await interleaved(settings.repeats, {
          project: async () => {
            const carts: string[] = [];
            for (let i = 0; i < checkoutBatch; i++)
              carts.push((await store.addToCart(CTX, { sku: skuOf(i), quantity: 1 })).cart_id);
            const started = performance.now();
            for (const cartId of carts) await store.checkout(CTX, { cartId });
            return (carts.length * 1000) / (performance.now() - started);
          },
          baseline: async () => {
            const carts: string[] = [];
            for (let i = 0; i < checkoutBatch; i++) carts.push(shop.reserve(skuOf(i), Date.now()).id);
            const started = performance.now();
            for (const cartId of carts) shop.checkout(cartId, Date.now());
            return (carts.length * 1000) / (performance.now() - started);
          },
        });
        for (const [name, figures] of [
          ['reserve', reserve],
          ['checkout', checkout],
        ] as const) {
          const ratio = figures.project / figures.baseline;
          ratios.push(ratio);
          out.rows.push([
            name,
            spread ? '1,000' : 'hot',
            sync,
            fmt.rate(figures.project),
            fmt.rate(figures.baseline),
            fmt.ratio(ratio),
            ratio >= 0.7 ? 'met' : 'missed',
          ]);
        }
      }
    } finally {
      await store.close();
      raw.close();
    }
  }
  const worst = Math.min(...ratios);
  out.goals.push({
    name: 'Store transaction vs. the same SQL raw',
    target: '≥ 0.7×',
    measured: `worst ${fmt.ratio(worst)}`,
    met: worst >= 0.7,
  });
  out.notes.push(
    `Statements per transaction, BEGIN and COMMIT included (better-sqlite3 \`verbose\` hook): reserve ${counts.reserve[0]} ` +
      `(raw ${counts.reserve[1]}), checkout ${counts.checkout[0]} (raw ${counts.checkout[1]}).`,
    `For scale, the smallest transaction that can reserve without overselling (conditional \`UPDATE … WHERE on_hand - reserved >= 1\` ` +
      `plus the ledger INSERT, hot SKU) ran ${fmt.rate(minimal.NORMAL)} tx/s with NORMAL and ${fmt.rate(minimal.FULL)} tx/s with FULL ` +
      'in the same run: the full reserve also creates the cart and its line, keeps the per-channel counter and reads the cart back.',
  );
  return [out];
}
