// The shapes every store returns and every tool reports; snake_case because they go out on the wire as-is.
import type { ImportStockLine } from './import-stock.js';

export const CartStatus = {
  OPEN: 'open',
  CHECKED_OUT: 'checked_out',
  RELEASED: 'released',
  EXPIRED: 'expired',
} as const;
export type CartStatus = (typeof CartStatus)[keyof typeof CartStatus];

export const MovementKind = {
  IMPORT: 'import',
  RESTOCK: 'restock',
  ADJUST: 'adjust',
  RESERVE: 'reserve',
  RELEASE: 'release',
  EXPIRE: 'expire',
  SALE: 'sale',
  /** Units of a paid order that came back to on-hand (a cancellation with restock). */
  RETURN: 'return',
} as const;
export type MovementKind = (typeof MovementKind)[keyof typeof MovementKind];

/** Who is calling: fixed by the connection, never by a tool argument. */
export interface CallContext {
  channel: string;
  /**
   * Who owns carts inside the channel: an OAuth grant's id; absent for a static token or stdio (the
   * whole channel). A cart is visible to its own channel and holder only; OAuth holders have their own cap.
   */
  holder?: string;
  /** An admin connection (admin token, stock:admin grant, the CLI): sees and acts on every channel's orders. */
  admin?: boolean;
}

export interface ProductView {
  sku: string;
  name: string;
  description: string | null;
  price_minor: number;
  currency: string;
  price_display: string;
  /** null for untracked products, which never run out. */
  available: number | null;
  in_stock: boolean;
}

export interface StockLevel {
  sku: string;
  name: string;
  on_hand: number;
  reserved: number;
  available: number | null;
  track_stock: boolean;
  active: boolean;
}

export interface CartLineView {
  sku: string;
  name: string;
  quantity: number;
  unit_price_minor: number;
  line_total_minor: number;
}

export interface CartView {
  cart_id: string;
  status: CartStatus;
  lines: CartLineView[];
  total_minor: number;
  currency: string | null;
  total_display: string | null;
  item_count: number;
  /** Set once the cart is checked out. */
  order_id: string | null;
  created_at: string;
  expires_at: string;
}

export const OrderStatus = {
  AWAITING_PAYMENT: 'awaiting_payment',
  PAID: 'paid',
  CANCELLED: 'cancelled',
} as const;
export type OrderStatus = (typeof OrderStatus)[keyof typeof OrderStatus];

/**
 * `direct`: the caller has taken payment, checkout is the sale. `payment`: checkout makes an order that holds
 * its units until the payment is confirmed or its window passes.
 */
export const CheckoutMode = { DIRECT: 'direct', PAYMENT: 'payment' } as const;
export type CheckoutMode = (typeof CheckoutMode)[keyof typeof CheckoutMode];

export type CancelReason = 'payment_timeout' | 'merchant' | 'payment_expired' | 'grant_revoked';

export interface OrderView {
  order_id: string;
  cart_id: string;
  channel: string;
  status: OrderStatus;
  lines: CartLineView[];
  total_minor: number;
  currency: string;
  total_display: string;
  created_at: string;
  /** ISO, while awaiting payment (kept after, for the record); null for a direct sale. */
  pay_by: string | null;
  /** Where the shopper pays; set by the payment provider after the order committed. */
  payment_url: string | null;
  /** What the shopper does to pay when there is no URL (the manual provider). */
  payment_instructions: string | null;
  payment_reference: string | null;
  paid_at: string | null;
  cancelled_at: string | null;
  cancel_reason: CancelReason | null;
  /** A payment arrived for an order whose stock was gone: the merchant refunds it. */
  needs_refund: boolean;
}

export interface ChannelSetting {
  channel: string;
  checkout: CheckoutMode;
  /** False: no row for the channel, so its mode is the default (payment for a channel an OAuth host maps to). */
  explicit: boolean;
}

export interface ReleasedLine {
  sku: string;
  quantity: number;
}

export interface ReleaseResult {
  cart: CartView;
  released: ReleasedLine[];
}

export interface ProductInput {
  sku: string;
  name: string;
  description?: string | null;
  price_minor: number;
  currency: string;
  track_stock?: boolean;
  active?: boolean;
}

/** One catalog row for `import`: a product plus its on-hand count (undefined: the file left it empty). */
export interface ImportRow extends ProductInput {
  stock?: number;
}

export interface ImportResult {
  created: number;
  updated: number;
  /** Every row's on-hand before and after, in file order (domain/import-stock.ts decides it). */
  stock: ImportStockLine[];
}

export interface SweepResult {
  carts: number;
  units: number;
}

export interface AuditViolation {
  invariant: 1 | 2 | 3 | 4;
  subject: string;
  message: string;
}

export interface AuditReport {
  ok: boolean;
  checked: { products: number; carts: number; orders: number; movements: number };
  violations: AuditViolation[];
  /**
   * Set when the audit was incremental: it trusted the last clean audit's checkpoint (at this ledger movement,
   * its rows fingerprinted again) and checked the ledger and orders from there; absent for a full audit.
   */
  since?: { movement: number; at: string };
}

export interface TokenRecord {
  id: string;
  channel: string;
  admin: boolean;
  label: string | null;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
}
