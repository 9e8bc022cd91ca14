// The hot paths in one round trip each (drizzle/postgres/0004, 0008): stocklock_reserve_new_cart locks the product,
// frees its expired holds and reserves; stocklock_checkout_cart turns an open cart whose lines all hold their stock
// into an order in the channel's checkout mode, which it reads itself (the sale, or an order awaiting payment). Each
// is one autocommit statement, and the answer is built by the domain's decision run on the very rows the function
// locked, so the refusal, the cart view and the order come from the domain's one rule.
import { PRESET_HOSTS } from '../../domain/channels.js';
import { addToCartInputs, decideAddToCart } from '../../domain/decisions.js';
import { decideOrderCheckout, orderView } from '../../domain/orders.js';
import { assertCartCaps, type Limits } from '../../domain/rules.js';
import type { CallContext, CartView, CheckoutMode, OrderView } from '../../domain/types.js';
import { cartView, type ProductRow } from '../../domain/views.js';
import type { Hold, StoredLine } from '../../domain/writes.js';
import { holderOf } from '../shared.js';
import type { AddToCartInput } from '../store.js';

/** SQLSTATE the function raises when the channel's counter is over its cap: the general path decides it exactly. */
export const CHANNEL_CAP_RECHECK = 'SL001';

/** What stocklock_reserve_new_cart returns: the product row as locked (before its writes) and the holds it freed. */
export interface OneStatementRow extends ProductRow {
  outcome: 'reserved' | 'out_of_stock' | 'general';
  now: number;
  expired_cart_ids: string[];
  expired_held: number[];
  expired_channels: string[];
}

/**
 * The calls the function handles: a new cart without an OAuth holder (whose cap needs its own lock) or an
 * idempotency key (whose record needs the view), within the cart caps (so a cap refusal keeps its place after
 * UNKNOWN_SKU, which only the general path can tell). Everything else takes the general transaction.
 */
export function fitsOneStatement(ctx: CallContext, input: AddToCartInput, limits: Limits): boolean {
  if (input.cartId !== undefined || input.idempotencyKey !== undefined || ctx.holder) return false;
  try {
    // A new cart: its one line is the whole cart.
    assertCartCaps(limits, input.quantity, input.quantity);
    return true;
  } catch {
    return false;
  }
}

/** The product row as the function locked it, in the shape the domain's decisions take. */
function productRowOf(row: ProductRow): ProductRow {
  return {
    sku: row.sku,
    name: row.name,
    description: row.description,
    price_minor: row.price_minor,
    currency: row.currency,
    on_hand: row.on_hand,
    reserved: row.reserved,
    track_stock: row.track_stock,
    active: row.active,
  };
}
/**
 * The call's answer from the function's row, or undefined when the general path must decide. decideAddToCart runs
 * on exactly what the function read under the lock: for 'out_of_stock' it throws the refusal; for 'reserved' it
 * yields the cart the function wrote. A disagreement after a write is a bug in one of the two, reported loudly.
 */
export function answerOf(
  row: OneStatementRow,
  call: { ctx: CallContext; input: AddToCartInput; cartId: string; ttlMs: number; limits: Limits },
): CartView | undefined {
  if (row.outcome === 'general') return undefined;
  const { ctx, input, ttlMs, limits } = call;
  const product = productRowOf(row);
  const holds: Hold[] = row.expired_cart_ids.map((cartId, i) => ({
    cart_id: cartId,
    held: row.expired_held[i] as number,
    channel: row.expired_channels[i] as string,
  }));
  const state = {
    ...addToCartInputs({ now: row.now, channel: ctx.channel, ttlMs, limits }, input, {
      cart: undefined,
      lines: [],
      products: new Map([[product.sku, product]]),
    }),
    newCartId: call.cartId,
    expired: new Map([[product.sku, holds]]),
  };
  if (row.outcome === 'out_of_stock') {
    decideAddToCart(state); // throws OUT_OF_STOCK with the domain's figures
    return undefined; // it did not refuse: nothing was written, so the general path decides
  }
  let decision: ReturnType<typeof decideAddToCart>;
  try {
    decision = decideAddToCart(state);
  } catch (error) {
    throw new Error('stocklock_reserve_new_cart reserved where decideAddToCart refuses', { cause: error });
  }
  const { cart, line } = decision;
  if (!decision.isNew || cart.id !== call.cartId || line.held !== input.quantity) {
    throw new Error('stocklock_reserve_new_cart and decideAddToCart disagree on the reserve');
  }
  const only = {
    sku: line.sku,
    name: product.name,
    quantity: line.quantity,
    unit_price_minor: product.price_minor,
  };
  return cartView(cart, [only], row.now, null);
}

/** What stocklock_checkout_cart returns: one row per line (the cart, the line, its product as locked) when it wrote. */
export interface CheckoutRow extends ProductRow {
  outcome: 'sold' | 'general';
  now: number;
  /** The channel's checkout mode as the function read it, under its locks. */
  checkout_mode: CheckoutMode;
  cart_status: string;
  cart_currency: string;
  cart_created_at: number;
  cart_updated_at: number;
  cart_expires_at: number;
  quantity: number;
  held: number;
}

/** The checkout modes' default: the channels the preset OAuth hosts sign in as, for the function to read. */
export const PRESET_HOST_ARRAYS: [string[], string[]] = [
  Object.keys(PRESET_HOSTS),
  Object.values(PRESET_HOSTS),
];

/**
 * The order from the function's rows, or undefined when the general path must decide (nothing was written then).
 * decideOrderCheckout runs on exactly what the function locked, in the mode it read: the sale, or the order
 * awaiting payment. A refusal there after the function wrote is a bug in one of the two, reported loudly.
 */
export function checkoutAnswerOf(
  rows: CheckoutRow[],
  call: { ctx: CallContext; cartId: string; orderId: string; paymentWindowMs: number },
): OrderView | undefined {
  const [first] = rows;
  if (first?.outcome !== 'sold') return undefined;
  const lines: StoredLine[] = rows.map((row) => ({ sku: row.sku, quantity: row.quantity, held: row.held }));
  const products = new Map<string, ProductRow>(rows.map((row) => [row.sku, productRowOf(row)]));
  let decision: ReturnType<typeof decideOrderCheckout>;
  try {
    decision = decideOrderCheckout({
      now: first.now,
      channel: call.ctx.channel,
      holder: holderOf(call.ctx),
      cart: {
        id: call.cartId,
        channel: call.ctx.channel,
        status: first.cart_status,
        currency: first.cart_currency,
        created_at: first.cart_created_at,
        updated_at: first.cart_updated_at,
        expires_at: first.cart_expires_at,
      },
      lines,
      products,
      expired: new Map(),
      orderId: call.orderId,
      mode: first.checkout_mode,
      paymentWindowMs: call.paymentWindowMs,
    });
  } catch (error) {
    throw new Error('stocklock_checkout_cart wrote where decideOrderCheckout refuses', { cause: error });
  }
  return orderView(decision.order, decision.lines, first.now);
}
