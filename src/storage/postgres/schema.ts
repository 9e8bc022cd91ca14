// PostgreSQL tables, mirroring the SQLite ones. drizzle-kit generates drizzle/postgres from this file; the store's SQL must agree with it.
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

// Timestamps are epoch milliseconds and money is integer minor units (up to 10^12): both bigint, read as numbers.
const ms = (name: string) => bigint(name, { mode: 'number' });
const minor = (name: string) => bigint(name, { mode: 'number' });

export const products = pgTable(
  'products',
  {
    sku: text('sku').primaryKey(),
    name: text('name').notNull(),
    description: text('description'),
    priceMinor: minor('price_minor').notNull(),
    currency: text('currency').notNull(),
    onHand: integer('on_hand').notNull().default(0),
    reserved: integer('reserved').notNull().default(0),
    trackStock: boolean('track_stock').notNull().default(true),
    active: boolean('active').notNull().default(true),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
  },
  (t) => [
    // The last line of defence for invariant 1: the database itself refuses an oversell.
    check('products_stock_bounds', sql`${t.reserved} >= 0 AND ${t.reserved} <= ${t.onHand}`),
    check('products_price_bounds', sql`${t.priceMinor} >= 0`),
  ],
);

export const carts = pgTable(
  'carts',
  {
    id: text('id').primaryKey(),
    channel: text('channel').notNull(),
    customerRef: text('customer_ref'),
    status: text('status').notNull(),
    currency: text('currency'),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
    expiresAt: ms('expires_at').notNull(),
  },
  (t) => [index('carts_open_expiry').on(t.status, t.expiresAt)],
);

export const cartLines = pgTable(
  'cart_lines',
  {
    cartId: text('cart_id')
      .notNull()
      .references(() => carts.id),
    sku: text('sku')
      .notNull()
      .references(() => products.sku),
    quantity: integer('quantity').notNull(),
    /**
     * Units this line holds right now: its quantity while reserved, 0 once released, expired or sold.
     * Changed only by a transaction that holds the product row's lock, so it is read after taking that lock.
     */
    held: integer('held').notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.cartId, t.sku] }),
    index('cart_lines_sku_held').on(t.sku, t.held),
    check('cart_lines_quantity', sql`${t.quantity} > 0 AND ${t.held} >= 0 AND ${t.held} <= ${t.quantity}`),
  ],
);

/** Units each channel holds across its carts, kept in step with cart_lines.held for the per-channel cap. */
export const channelHolds = pgTable('channel_holds', {
  channel: text('channel').primaryKey(),
  held: bigint('held', { mode: 'number' }).notNull().default(0),
});

export const orders = pgTable(
  'orders',
  {
    id: text('id').primaryKey(),
    cartId: text('cart_id')
      .notNull()
      .references(() => carts.id),
    channel: text('channel').notNull(),
    totalMinor: minor('total_minor').notNull(),
    currency: text('currency').notNull(),
    createdAt: ms('created_at').notNull(),
  },
  (t) => [uniqueIndex('orders_cart_id').on(t.cartId)],
);

export const orderLines = pgTable(
  'order_lines',
  {
    orderId: text('order_id')
      .notNull()
      .references(() => orders.id),
    sku: text('sku').notNull(),
    name: text('name').notNull(),
    quantity: integer('quantity').notNull(),
    unitPriceMinor: minor('unit_price_minor').notNull(),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.sku] })],
);

/** The append-only ledger: every unit that moves, like a bank statement. */
export const stockMovements = pgTable(
  'stock_movements',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    at: ms('at').notNull(),
    sku: text('sku').notNull(),
    kind: text('kind').notNull(),
    quantity: integer('quantity').notNull(),
    onHandDelta: integer('on_hand_delta').notNull(),
    reservedDelta: integer('reserved_delta').notNull(),
    cartId: text('cart_id'),
    orderId: text('order_id'),
    channel: text('channel'),
    note: text('note'),
  },
  (t) => [index('stock_movements_sku').on(t.sku), index('stock_movements_order').on(t.orderId)],
);

export const idempotencyRecords = pgTable(
  'idempotency_records',
  {
    channel: text('channel').notNull(),
    tool: text('tool').notNull(),
    key: text('key').notNull(),
    fingerprint: text('fingerprint').notNull(),
    result: text('result').notNull(),
    createdAt: ms('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.channel, t.tool, t.key] }), index('idempotency_created').on(t.createdAt)],
);

export const apiTokens = pgTable('api_tokens', {
  id: text('id').primaryKey(),
  /** SHA-256 of the secret; the secret itself is shown once and never stored. */
  tokenHash: text('token_hash').notNull().unique(),
  channel: text('channel').notNull(),
  admin: boolean('admin').notNull().default(false),
  label: text('label'),
  createdAt: ms('created_at').notNull(),
  revokedAt: ms('revoked_at'),
  lastUsedAt: ms('last_used_at'),
});
