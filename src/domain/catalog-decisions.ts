// The catalog's decisions: on-hand changes (restock, set-stock, import), the upsert rules, and the sold-out
// refusal a store may give without the lock. Pure like decisions.ts: rows and the time in, writes or a refusal out.

import { type ExpiredHolds, freeExpiredHolds } from './decisions.js';
import { refuse } from './errors.js';
import { type Limits, MAX_STOCK } from './rules.js';
import type { ProductInput } from './types.js';
import type { ProductRow } from './views.js';
import type { Writes } from './writes.js';

/** Adds (or with a negative delta removes) on-hand units through one ledger movement. */
export function changeOnHand(
  writes: Writes,
  sku: string,
  kind: 'restock' | 'adjust' | 'import',
  delta: number,
  channel: string | null,
  note: string | null,
): void {
  if (writes.current(sku).on_hand + delta > MAX_STOCK) {
    throw refuse.invalid('quantity', `on-hand of "${sku}" would exceed ${MAX_STOCK}`);
  }
  writes.changeStock(sku, delta, 0, true);
  writes.record({
    sku,
    kind,
    quantity: Math.abs(delta),
    on_hand_delta: delta,
    reserved_delta: 0,
    cart_id: null,
    order_id: null,
    channel,
    note,
  });
}

/**
 * set_stock and import: frees the SKU's expired holds, then sets on-hand, refused below what carts still hold.
 * An import records its movement even when the count is unchanged.
 */
export function decideOnHand(
  writes: Writes,
  expired: ExpiredHolds,
  change: {
    sku: string;
    onHand: number;
    kind: 'adjust' | 'import';
    channel: string | null;
    note: string | null;
  },
): void {
  freeExpiredHolds(writes, expired, change.sku);
  const current = writes.current(change.sku);
  if (change.onHand < current.reserved) {
    throw refuse.belowReserved(change.sku, change.onHand, current.reserved);
  }
  const delta = change.onHand - current.on_hand;
  if (delta !== 0 || change.kind === 'import') {
    changeOnHand(writes, change.sku, change.kind, delta, change.channel, change.note);
  }
}

/** A product as upsert_product leaves it: fields left out keep their current value (a new product: tracked, active). */
export function productChange(existing: ProductRow | undefined, input: ProductInput) {
  const trackStock = input.track_stock ?? (existing ? Boolean(existing.track_stock) : true);
  return {
    // Fields left out keep their current value, so a price-only update does not wipe or reactivate.
    description: input.description === undefined ? (existing?.description ?? null) : input.description,
    trackStock,
    active: input.active ?? (existing ? Boolean(existing.active) : true),
    switchesTracking: existing !== undefined && Boolean(existing.track_stock) !== trackStock,
    changesCurrency: existing !== undefined && existing.currency !== input.currency,
  };
}

/**
 * Switching track_stock: refused while carts hold units (after expired holds were freed), and, to tracked,
 * while a live cart has a line of it: that line holds nothing, and a live cart must not show such a line.
 */
export function assertTrackingSwitch(
  sku: string,
  toTracked: boolean,
  reserved: number,
  liveCarts: number,
): void {
  if (reserved > 0) {
    throw refuse.invalid(
      'track_stock',
      `cannot change while carts hold ${reserved} units of "${sku}"; wait for them to close`,
    );
  }
  if (toTracked && liveCarts > 0) {
    throw refuse.invalid(
      'track_stock',
      `cannot change while ${liveCarts} open carts have "${sku}"; wait for them to close or expire`,
    );
  }
}

/** A product's currency can't change while an open or revivable cart could still sell it. */
export function assertCurrencyChange(sku: string, carts: number): void {
  if (carts > 0) {
    throw refuse.invalid(
      'currency',
      `cannot change while ${carts} open or revivable carts hold "${sku}"; wait for them to close`,
    );
  }
}

/**
 * An add_to_cart refused without the write lock: a consistent read, taken without the lock, already shows
 * that the tracked product cannot supply the quantity, even with every expired hold a write would free. Returns the
 * OUT_OF_STOCK the locked decision (decideAddToCart) would throw, or undefined when only that decision can answer:
 * a keyed call (it may replay a stored result), a call into a cart (the cart's checks and its revival come before
 * stock), an unknown, inactive or untracked product, or a quantity over a cart cap (LIMIT_EXCEEDED comes first).
 */
export function soldOutWithoutLock(
  call: { sku: string; quantity: number; cartId?: string; idempotencyKey?: string; limits: Limits },
  read: { product: ProductRow | undefined; expiredHeld: number },
): ReturnType<typeof refuse.outOfStock> | undefined {
  const { product } = read;
  if (call.idempotencyKey !== undefined || call.cartId !== undefined) return undefined;
  if (!product?.active || !product.track_stock) return undefined;
  if (call.quantity > call.limits.maxLineQuantity || call.quantity > call.limits.maxCartQuantity)
    return undefined;
  // A new cart holds nothing yet, so every expired hold of the SKU is another cart's and would be freed.
  const available = product.on_hand - product.reserved + read.expiredHeld;
  if (available >= call.quantity) return undefined;
  return refuse.outOfStock([
    { sku: product.sku, requested: call.quantity, available: Math.max(0, available) },
  ]);
}
