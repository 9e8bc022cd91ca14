// The stock decisions, written once: each takes the rows a store read under its locks and the time, and returns
// the writes (and the result) or throws the refusal. No SQL, no I/O: stores load, call, and apply.
import { refuse, type ShortLine } from './errors.js';
import {
  assertCartCaps,
  assertChannelCap,
  assertHolderCap,
  assertHoldLeft,
  holdExpiry,
  type Limits,
  maxHoldOf,
  newId,
} from './rules.js';
import { type CartRow, effectiveStatus, type LineRow, type ProductRow } from './views.js';
import { type Hold, type StoredLine, Writes } from './writes.js';

export interface StoredCart extends CartRow {
  updated_at: number;
}

/** Expired holds of other carts, per SKU: free stock that no sweep has released yet. */
export type ExpiredHolds = ReadonlyMap<string, readonly Hold[]>;

/** Lines of tracked products that hold less than their quantity: the ones a write must hold again. */
export function unheldLines(
  lines: readonly StoredLine[],
  products: ReadonlyMap<string, ProductRow>,
): string[] {
  return lines
    .filter((line) => line.held < line.quantity && Boolean(products.get(line.sku)?.track_stock))
    .map((line) => line.sku);
}

/** Frees every expired hold of the SKU (before switching how it is tracked, say). */
export function freeExpiredHolds(writes: Writes, expired: ExpiredHolds, sku: string): void {
  freeExpired(writes, new Set(), expired, sku, '');
}

/** Frees the SKU's expired holds (other than `keepCartId`'s) once per transaction, before deciding on it. */
export function freeExpired(
  writes: Writes,
  freed: Set<string>,
  expired: ExpiredHolds,
  sku: string,
  keep: string,
) {
  if (freed.has(sku)) return;
  freed.add(sku);
  for (const hold of expired.get(sku) ?? []) if (hold.cart_id !== keep) writes.release(sku, hold, 'expire');
}

export function product(products: ReadonlyMap<string, ProductRow>, sku: string): ProductRow {
  const row = products.get(sku);
  if (!row?.active) throw refuse.unknownSku(sku);
  return row;
}

export interface HoldLines {
  cart: CartRow;
  channel: string;
  lines: readonly StoredLine[];
  products: ReadonlyMap<string, ProductRow>;
  expired: ExpiredHolds;
  /** Reviving or checkout: every line's product must still be sold. Otherwise only short lines are looked at. */
  everyLine: boolean;
}

/**
 * Makes every tracked line hold its full quantity again (a revived cart, or a line whose hold was freed):
 * all or nothing, naming every short line. Returns the units it held.
 */
export function holdLines(writes: Writes, freed: Set<string>, h: HoldLines): number {
  const short: ShortLine[] = [];
  let added = 0;
  for (const line of h.lines) {
    if (!h.everyLine && line.held === line.quantity) continue;
    const row = product(h.products, line.sku);
    if (!row.track_stock || line.held === line.quantity) continue;
    freeExpired(writes, freed, h.expired, line.sku, h.cart.id);
    const need = line.quantity - line.held;
    const available = writes.available(line.sku);
    if (available < need) {
      short.push({ sku: line.sku, requested: line.quantity, available: Math.max(0, available) + line.held });
      continue;
    }
    writes.changeStock(line.sku, 0, need, false);
    writes.setHeld(h.cart.id, line.sku, line.quantity);
    writes.record({
      sku: line.sku,
      kind: 'reserve',
      quantity: need,
      on_hand_delta: 0,
      reserved_delta: need,
      cart_id: h.cart.id,
      order_id: null,
      channel: h.channel,
      note: h.everyLine ? 'cart revived' : 'hold restored',
    });
    added += need;
  }
  if (short.length > 0) throw refuse.outOfStock(short);
  return added;
}

export interface AddToCartState {
  now: number;
  ttlMs: number;
  /** How long a cart may hold from its first hold (its creation); never shorter than the TTL. */
  maxHoldMs: number;
  limits: Limits;
  channel: string;
  sku: string;
  quantity: number;
  /** The cart named by the call, read under its lock; undefined with `cartId` set means no such cart. */
  cart: StoredCart | undefined;
  cartId: string | undefined;
  /** Its lines (none for a new cart). */
  lines: readonly StoredLine[];
  /** Locked rows: the product added, and those of lines that may need holding again. */
  products: ReadonlyMap<string, ProductRow>;
  expired: ExpiredHolds;
  /** The id a new cart gets. */
  newCartId: string;
}

export interface AddToCartDecision {
  writes: Writes;
  /** The cart after the call: new, or the existing one open again until now + TTL (at most its max hold). */
  cart: StoredCart;
  isNew: boolean;
  /** Added to the cart's line for this SKU (inserted if it has none). */
  line: { sku: string; quantity: number; held: number };
  /** Units the channel holds anew, and whether the whole cart counts again (a revived cart). */
  adding: number;
  reviving: boolean;
}

/** What an add_to_cart decides on, but for the expired holds (addToCartHoldSkus names the SKUs to read). */
export function addToCartInputs(
  call: { now: number; channel: string; ttlMs: number; maxHoldMs?: number; limits: Limits },
  input: { sku: string; quantity: number; cartId?: string },
  read: {
    cart: StoredCart | undefined;
    lines: readonly StoredLine[];
    products: ReadonlyMap<string, ProductRow>;
  },
): Omit<AddToCartState, 'expired'> {
  const { sku, quantity, cartId } = input;
  const maxHoldMs = maxHoldOf({ reservationTtlMs: call.ttlMs, maxHoldMs: call.maxHoldMs });
  return { ...call, maxHoldMs, sku, quantity, cartId, ...read, newCartId: newId('cart_') };
}

/** SKUs whose expired holds an add_to_cart may free: the product added, and every short line's. */
export function addToCartHoldSkus(state: Omit<AddToCartState, 'expired'>): string[] {
  const added = state.products.get(state.sku);
  const reviving = state.cart !== undefined && effectiveStatus(state.cart, state.now) === 'expired';
  const lines = reviving ? state.lines.filter((line) => line.held < line.quantity) : state.lines;
  const skus = unheldLines(lines, state.products);
  if (added?.track_stock) skus.push(state.sku);
  return [...new Set(skus)];
}

export function decideAddToCart(state: AddToCartState): AddToCartDecision {
  const { now, channel } = state;
  const added = product(state.products, state.sku);
  const writes = new Writes(state.products);
  const freed = new Set<string>();
  let cart: StoredCart;
  let revived = 0;
  let reviving = false;
  if (state.cartId === undefined) {
    cart = {
      id: state.newCartId,
      channel,
      status: 'open',
      currency: added.currency,
      created_at: now,
      updated_at: now,
      expires_at: now + state.ttlMs,
    };
  } else {
    if (!state.cart) throw refuse.cartNotFound(state.cartId);
    cart = state.cart;
    if (cart.status === 'checked_out' || cart.status === 'released')
      throw refuse.cartClosed(cart.id, cart.status);
    if (cart.currency !== null && cart.currency !== added.currency) {
      throw refuse.currencyMismatch(added.sku, added.currency, cart.currency);
    }
    // Reviving does not start the max hold again: it runs from the cart's first hold.
    assertHoldLeft(cart.id, cart.created_at, now, state.maxHoldMs);
    reviving = effectiveStatus(cart, now) === 'expired';
    // Reviving holds every line again; a live cart holds again any line that lost its hold (a server whose
    // clock ran ahead freed it), so an open cart never shows a line that holds nothing.
    if (reviving || unheldLines(state.lines, state.products).length > 0) {
      revived = holdLines(writes, freed, { ...state, cart, everyLine: reviving });
    }
  }
  const line = state.lines.find((l) => l.sku === added.sku);
  const cartUnits = state.lines.reduce((sum, l) => sum + l.quantity, 0) + state.quantity;
  assertCartCaps(state.limits, (line?.quantity ?? 0) + state.quantity, cartUnits);

  let held = 0;
  if (added.track_stock) {
    freeExpired(writes, freed, state.expired, added.sku, cart.id);
    const available = writes.available(added.sku);
    if (available < state.quantity) {
      throw refuse.outOfStock([
        { sku: added.sku, requested: state.quantity, available: Math.max(0, available) },
      ]);
    }
    writes.changeStock(added.sku, 0, state.quantity, false);
    held = state.quantity;
  }
  writes.addChannel(channel, held + revived);
  writes.record({
    sku: added.sku,
    kind: 'reserve',
    quantity: state.quantity,
    on_hand_delta: 0,
    reserved_delta: held,
    cart_id: cart.id,
    order_id: null,
    channel,
  });
  const isNew = state.cartId === undefined;
  if (!isNew) {
    cart = {
      ...cart,
      status: 'open',
      currency: added.currency,
      updated_at: now,
      expires_at: holdExpiry(cart.created_at, now, state.ttlMs, state.maxHoldMs),
    };
  }
  return {
    writes,
    cart,
    isNew,
    line: { sku: added.sku, quantity: state.quantity, held },
    adding: held + revived,
    reviving,
  };
}

/**
 * The per-channel cap: `counted` is the channel's hold counter without this write's units, `expiredElsewhere`
 * what the channel's other expired carts still hold (an expired hold never counts against a sale).
 */
export function checkChannelCap(
  limits: Limits,
  check: { counted: number; expiredElsewhere: number; adding: number; reviving: boolean },
): void {
  // A revived cart counts in full even when its holds were never released (nothing added): they had
  // stopped counting, and reviving them must not slip past the cap.
  if (check.adding <= 0 && !check.reviving) return;
  assertChannelCap(limits, check.counted - check.expiredElsewhere, check.adding);
}

/**
 * The per-holder cap, for OAuth holders only (a static token's holder is its whole channel, which the channel
 * cap governs). `held` is what the holder's live carts hold before this write, this cart included even when
 * expired (reviving it counts its units again), and `awaiting` what its orders awaiting payment still hold
 * (not past pay_by), so unpaid orders cannot park stock beyond the cap; both read under the write's lock.
 */
export function checkHolderCap(
  limits: Limits,
  holder: string | undefined,
  check: { held: number; awaiting?: number; adding: number; reviving: boolean },
): void {
  if (!holder) return;
  if (check.adding <= 0 && !check.reviving) return;
  assertHolderCap(limits, check.held, check.adding, check.awaiting ?? 0);
}

export interface CheckoutState {
  now: number;
  channel: string;
  cart: StoredCart;
  lines: readonly StoredLine[];
  /** Every line's product, locked. */
  products: ReadonlyMap<string, ProductRow>;
  expired: ExpiredHolds;
  orderId: string;
}

export interface CheckoutDecision {
  writes: Writes;
  order: {
    id: string;
    cart_id: string;
    channel: string;
    currency: string;
    created_at: number;
    total: number;
  };
  sold: LineRow[];
}

/** Checkout of an open (or expired) cart that has lines: holds whatever was freed again, then sells every line. */
export function decideCheckout(state: CheckoutState): CheckoutDecision {
  const { cart, channel } = state;
  if (state.lines.length === 0) throw refuse.cartEmpty(cart.id);
  const writes = new Writes(state.products);
  writes.addChannel(channel, holdLines(writes, new Set(), { ...state, everyLine: true }));
  const sold: LineRow[] = [];
  let unitsReleased = 0;
  for (const line of state.lines) {
    const row = product(state.products, line.sku);
    if (cart.currency !== null && row.currency !== cart.currency) {
      throw refuse.currencyMismatch(row.sku, row.currency, cart.currency);
    }
    const tracked = Boolean(row.track_stock);
    // holdLines made every tracked line hold its full quantity.
    const held = tracked ? line.quantity : line.held;
    if (held > 0 || tracked) writes.changeStock(line.sku, tracked ? -line.quantity : 0, -held, true);
    if (held > 0) writes.setHeld(cart.id, line.sku, 0);
    unitsReleased += held;
    writes.record({
      sku: line.sku,
      kind: 'sale',
      quantity: line.quantity,
      on_hand_delta: tracked ? -line.quantity : 0,
      reserved_delta: 0 - held,
      cart_id: cart.id,
      order_id: state.orderId,
      channel,
    });
    sold.push({ sku: line.sku, name: row.name, quantity: line.quantity, unit_price_minor: row.price_minor });
  }
  writes.addChannel(channel, -unitsReleased);
  const total = sold.reduce((sum, line) => sum + line.quantity * line.unit_price_minor, 0);
  // A cart takes its currency from its first line, so a cart with lines always has one.
  const currency = cart.currency as string;
  return {
    writes,
    order: { id: state.orderId, cart_id: cart.id, channel, currency, created_at: state.now, total },
    sold,
  };
}

export interface ReleaseDecision {
  writes: Writes;
  released: { sku: string; quantity: number }[];
  /** Lines to delete (releasing one SKU removes its line). */
  deleted: string[];
  /** The cart's status afterwards; `released` closes it. */
  status: string;
}

/** release_cart: the whole cart (closed as released) or one line (removed; the cart stays open). */
export function decideRelease(
  cart: CartRow,
  lines: readonly StoredLine[],
  products: ReadonlyMap<string, ProductRow>,
  sku: string | undefined,
): ReleaseDecision {
  if (cart.status === 'checked_out') throw refuse.cartClosed(cart.id, cart.status);
  const writes = new Writes(products);
  // Releasing twice is a no-op, so a retried call is safe.
  if (cart.status === 'released') return { writes, released: [], deleted: [], status: cart.status };
  const released: { sku: string; quantity: number }[] = [];
  for (const line of lines) {
    if (sku !== undefined && line.sku !== sku) continue;
    writes.release(line.sku, { cart_id: cart.id, held: line.held, channel: cart.channel }, 'release');
    released.push({ sku: line.sku, quantity: line.quantity });
  }
  return {
    writes,
    released,
    deleted: sku === undefined ? [] : released.map((line) => line.sku),
    status: sku === undefined ? 'released' : cart.status,
  };
}

/** The sweeper's batch: every hold of these expired carts freed; the carts close as expired. */
export function decideSweep(
  carts: readonly { id: string; channel: string; lines: readonly StoredLine[] }[],
  products: ReadonlyMap<string, ProductRow>,
): { writes: Writes; units: number } {
  const writes = new Writes(products);
  let units = 0;
  for (const cart of carts) {
    for (const line of cart.lines) {
      writes.release(line.sku, { cart_id: cart.id, held: line.held, channel: cart.channel }, 'expire');
      units += Math.max(0, line.held);
    }
  }
  return { writes, units };
}
