// add_to_cart's hot path in one round trip: stocklock_reserve_new_cart (drizzle/postgres/0003) locks the product,
// frees its expired holds and reserves in one autocommit statement; the answer is built by decideAddToCart from the
// very rows the function decided on, so the refusal and the cart view come from the domain's one rule.
import { addToCartInputs, decideAddToCart } from '../../domain/decisions.js';
import { assertCartCaps, type Limits } from '../../domain/rules.js';
import type { CallContext, CartView } from '../../domain/types.js';
import { cartView, type ProductRow } from '../../domain/views.js';
import type { Hold } from '../../domain/writes.js';
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
  const product: ProductRow = {
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
