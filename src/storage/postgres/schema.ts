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
    /** Who owns the cart inside its channel: an OAuth grant's id, or '' for the whole channel (static tokens, stdio). */
    holder: text('holder').notNull().default(''),
    customerRef: text('customer_ref'),
    status: text('status').notNull(),
    currency: text('currency'),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
    expiresAt: ms('expires_at').notNull(),
  },
  (t) => [
    index('carts_open_expiry').on(t.status, t.expiresAt),
    index('carts_holder_open').on(t.channel, t.holder, t.status),
  ],
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
    // The lines that hold anything: the audit's hold checks read these, not every line of history.
    index('cart_lines_holding').on(t.cartId).where(sql`${t.held} != 0`),
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
    /** Who placed it inside its channel (the cart's holder): an OAuth grant's id, or '' for the whole channel. */
    holder: text('holder').notNull().default(''),
    /** awaiting_payment, paid or cancelled; orders from before payment existed were sales, so paid. */
    status: text('status').notNull().default('paid'),
    /** While awaiting payment: when its holds go back on sale. Kept after, for the record. */
    payBy: ms('pay_by'),
    paidAt: ms('paid_at'),
    cancelledAt: ms('cancelled_at'),
    cancelReason: text('cancel_reason'),
    paymentUrl: text('payment_url'),
    paymentInstructions: text('payment_instructions'),
    paymentReference: text('payment_reference'),
    /** A payment arrived after the order's stock was gone: the merchant refunds it. */
    needsRefund: boolean('needs_refund').notNull().default(false),
  },
  (t) => [
    uniqueIndex('orders_cart_id').on(t.cartId),
    // Sales (paid orders) and revenue per channel per day, read from the index alone.
    index('orders_paid_sales')
      .on(t.createdAt, t.channel, t.currency, t.totalMinor)
      .where(sql`status = 'paid'`),
    // The console's order list, newest first, by each of its filters; few orders need a refund.
    index('orders_listing').on(t.createdAt, t.id),
    index('orders_status_listing').on(t.status, t.createdAt, t.id),
    index('orders_channel_listing').on(t.channel, t.createdAt, t.id),
    index('orders_needs_refund').on(t.createdAt, t.id).where(sql`needs_refund`),
    // The sweeper's scan for orders past pay_by.
    index('orders_status_pay_by').on(t.status, t.payBy),
    index('orders_channel_status').on(t.channel, t.status),
    // A holder's orders awaiting payment count toward its cap.
    index('orders_holder_status').on(t.channel, t.holder, t.status),
    index('orders_payment_reference').on(t.paymentReference),
  ],
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
    /** Units this line holds while its order awaits payment; 0 once sold, released or expired. */
    held: integer('held').notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.orderId, t.sku] }),
    index('order_lines_sku_held').on(t.sku, t.held),
    index('order_lines_holding').on(t.orderId).where(sql`${t.held} != 0`),
    check('order_lines_held', sql`${t.held} >= 0 AND ${t.held} <= ${t.quantity}`),
  ],
);

/**
 * Each channel's checkout mode, when the merchant set one: `direct` (checkout is the sale) or `payment` (an order
 * awaits its payment). A channel without a row is `payment` if an OAuth host maps to it, else `direct`.
 */
export const channels = pgTable('channels', {
  channel: text('channel').primaryKey(),
  checkout: text('checkout').notNull(),
  updatedAt: ms('updated_at').notNull(),
});

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
  (t) => [
    // The ledger's filters, newest first by id (keyset pages).
    index('stock_movements_sku_id').on(t.sku, t.id),
    index('stock_movements_channel_id').on(t.channel, t.id),
    index('stock_movements_kind_id').on(t.kind, t.id),
    index('stock_movements_order').on(t.orderId),
  ],
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

// OAuth 2.1 (src/auth/): every secret column holds a SHA-256 hash, never the secret.

/** Clients registered by DCR, and CIMD documents as last fetched. */
export const oauthClients = pgTable('oauth_clients', {
  clientId: text('client_id').primaryKey(),
  kind: text('kind').notNull(),
  metadata: text('metadata').notNull(),
  secretHash: text('secret_hash'),
  createdAt: ms('created_at').notNull(),
  fetchedAt: ms('fetched_at').notNull(),
});

/** One row per signed-in connection: the holder of its tokens, ended by `token revoke` or a reused refresh token. */
export const oauthGrants = pgTable(
  'oauth_grants',
  {
    id: text('id').primaryKey(),
    clientId: text('client_id').notNull(),
    channel: text('channel').notNull(),
    scope: text('scope').notNull(),
    resource: text('resource').notNull(),
    redirectHost: text('redirect_host').notNull(),
    createdAt: ms('created_at').notNull(),
    lastUsedAt: ms('last_used_at'),
    revokedAt: ms('revoked_at'),
    revokeReason: text('revoke_reason'),
  },
  (t) => [
    index('oauth_grants_client').on(t.clientId),
    // The console's list: live grants first, newest first.
    index('oauth_grants_listing').on(sql`(${t.revokedAt} IS NOT NULL)`, sql`${t.createdAt} DESC`, t.id),
  ],
);

export const oauthCodes = pgTable(
  'oauth_codes',
  {
    codeHash: text('code_hash').primaryKey(),
    clientId: text('client_id').notNull(),
    redirectUri: text('redirect_uri').notNull(),
    codeChallenge: text('code_challenge').notNull(),
    scope: text('scope').notNull(),
    resource: text('resource').notNull(),
    channel: text('channel').notNull(),
    createdAt: ms('created_at').notNull(),
    expiresAt: ms('expires_at').notNull(),
    usedAt: ms('used_at'),
    grantId: text('grant_id'),
  },
  (t) => [index('oauth_codes_expiry').on(t.expiresAt)],
);

/** Access and refresh tokens; a refresh token is spent (used_at) when it is rotated. */
export const oauthTokens = pgTable(
  'oauth_tokens',
  {
    tokenHash: text('token_hash').primaryKey(),
    grantId: text('grant_id')
      .notNull()
      .references(() => oauthGrants.id),
    kind: text('kind').notNull(),
    createdAt: ms('created_at').notNull(),
    expiresAt: ms('expires_at').notNull(),
    usedAt: ms('used_at'),
  },
  (t) => [index('oauth_tokens_grant').on(t.grantId), index('oauth_tokens_expiry').on(t.expiresAt)],
);

/** Which redirect hosts may sign in, as which channel; a null channel denies (also a preset). */
export const oauthHosts = pgTable('oauth_hosts', {
  host: text('host').primaryKey(),
  channel: text('channel'),
  updatedAt: ms('updated_at').notNull(),
});

/**
 * Merchant console sign-ins, shared by every server on the database: the SHA-256 of the cookie's secret
 * and of the session's CSRF token, never either secret.
 */
export const consoleSessions = pgTable(
  'console_sessions',
  {
    idHash: text('id_hash').primaryKey(),
    csrfHash: text('csrf_hash').notNull(),
    /** The admin token signed in with: revoking it ends the session. */
    tokenId: text('token_id').notNull(),
    channel: text('channel').notNull(),
    createdAt: ms('created_at').notNull(),
    lastSeenAt: ms('last_seen_at').notNull(),
    expiresAt: ms('expires_at').notNull(),
  },
  (t) => [index('console_sessions_token').on(t.tokenId), index('console_sessions_expiry').on(t.expiresAt)],
);

/**
 * The last clean audit's position in the ledger: the SKUs' sums up to `ledger_id` and a fingerprint of those
 * rows, so the next audit sums only the rows after it and re-checks the fingerprint over the ones before.
 */
export const auditCheckpoints = pgTable('audit_checkpoints', {
  id: integer('id').primaryKey(),
  ledgerId: bigint('ledger_id', { mode: 'number' }).notNull(),
  at: ms('at').notNull(),
  fingerprint: text('fingerprint').notNull(),
  skuTotals: text('sku_totals').notNull(),
});

/**
 * MCP sessions of the 2025 revisions, shared by every server of the pool: the SHA-256 of the session id, the
 * credential it is bound to and the initialize params a server needs to serve it again.
 */
export const mcpSessions = pgTable(
  'mcp_sessions',
  {
    idHash: text('id_hash').primaryKey(),
    credentialId: text('credential_id').notNull(),
    channel: text('channel').notNull(),
    init: text('init').notNull(),
    createdAt: ms('created_at').notNull(),
    lastUsedAt: ms('last_used_at').notNull(),
    expiresAt: ms('expires_at').notNull(),
  },
  (t) => [index('mcp_sessions_credential').on(t.credentialId), index('mcp_sessions_expiry').on(t.expiresAt)],
);
