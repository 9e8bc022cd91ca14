// Every stock write, written once for both dialects: replay a keyed call, lock and read, decide (src/domain),
// check the caps, apply, build the answer, remember it.
//
// The shape, for a new operation:
//
//   export function* myOperation(e: Engine, rules: Rules, ctx: CallContext, input: MyInput): Operation<MyView> {
//     const call = keyedCall(ctx, 'my_tool', input.idempotencyKey, [...the request]);
//     const replayed = yield* replay(e, call);          // a repeat of a keyed call answers as the first did
//     if (replayed) return replayed as MyView;
//     const cart = yield* step(e.lockCart(ctx, input.cartId));   // locks in this order: cart, products, channel
//     yield* step(e.lockProducts(skus));
//     const now = yield* step(e.now());                  // after the first lock
//     const decision = decideSomething({ now, products: e.products, ... });   // pure, in src/domain
//     yield* step(e.apply(decision.writes));
//     const view = ...;
//     yield* remember(e, call, view);
//     return view;
//   }
//
// Every engine call goes through `yield* step(...)` (engine.ts): SQLite answers at once and its body stays
// synchronous inside its transaction, PostgreSQL answers with promises that the driver awaits. A body never
// awaits, never reads Date.now() and never catches a refusal it did not make: a thrown refusal rolls the
// write back. The dialect's store runs the body in its write(): sqlite/store.ts with runSync, postgres/store.ts
// with runAsync. An engine method a new operation needs goes into Engine (engine.ts) and both engines.

import {
  assertCurrencyChange,
  assertTrackingSwitch,
  changeOnHand,
  decideOnHand,
  productChange,
} from '../../domain/catalog-decisions.js';
import {
  addToCartHoldSkus,
  addToCartInputs,
  checkHolderCap,
  decideAddToCart,
  decideRelease,
  decideSweep,
  freeExpiredHolds,
  type StoredCart,
} from '../../domain/decisions.js';
import { inRow, refuse } from '../../domain/errors.js';
import { type ImportOptions, importedOnHand } from '../../domain/import-stock.js';
import type { Limits } from '../../domain/rules.js';
import { assertProduct } from '../../domain/rules.js';
import type {
  CallContext,
  CartView,
  ImportResult,
  ImportRow,
  ProductInput,
  ProductView,
  ReleaseResult,
  StockLevel,
  SweepResult,
} from '../../domain/types.js';
import {
  type CartRow,
  cartView,
  effectiveStatus,
  type ProductRow,
  productView,
  stockLevel,
} from '../../domain/views.js';
import { type StoredLine, Writes } from '../../domain/writes.js';
import { type KeyedCall, keyedCall, replayOf } from '../shared.js';
import type { AddToCartInput, ReleaseInput, StockChange } from '../store.js';
import { type Engine, type Operation, step } from './engine.js';

/** The store's settings an operation decides by. */
export interface Rules {
  reservationTtlMs: number;
  /** Unset: the default max hold, or the TTL when that is longer (maxHoldOf). */
  maxHoldMs?: number;
  limits: Limits;
}

/** The stored answer of a keyed call, or undefined; the key reused for another request is refused. */
export function* replay(e: Engine, call: KeyedCall | undefined): Operation<unknown> {
  if (!call) return undefined;
  return replayOf(call, yield* step(e.readKey(call)));
}

export function* remember(e: Engine, call: KeyedCall | undefined, result: unknown): Operation<void> {
  if (call) yield* step(e.saveKey(call, result));
}

/** The product row, read under the lock; unknown (or, with activeOnly, inactive) SKUs are refused. */
export function* requireProduct(e: Engine, sku: string, activeOnly = true): Operation<ProductRow> {
  yield* step(e.lockProducts([sku]));
  const product = e.products.get(sku);
  if (!product || (activeOnly && !product.active)) throw refuse.unknownSku(sku);
  return product;
}

export function* cartViewOf(e: Engine, cart: CartRow, now: number): Operation<CartView> {
  return cartView(cart, yield* step(e.lineViews(cart.id)), now, null);
}

export function* addToCart(
  e: Engine,
  rules: Rules,
  ctx: CallContext,
  input: AddToCartInput,
): Operation<CartView> {
  const call = keyedCall(ctx, 'add_to_cart', input.idempotencyKey, [
    input.sku,
    input.quantity,
    input.cartId ?? null,
  ]);
  const replayed = yield* replay(e, call);
  if (replayed) return replayed as CartView;
  if (ctx.holder) yield* step(e.lockHolder(ctx.channel, ctx.holder));

  // The cart is locked before any product, and its lines read under that lock (their holds stand). An
  // expired cart then locks every line's product, a live one those of lines that hold less than they want.
  let cart: StoredCart | undefined;
  let lines: StoredLine[] = [];
  if (input.cartId !== undefined) {
    cart = yield* step(e.lockCart(ctx, input.cartId));
    if (cart && cart.status !== 'checked_out' && cart.status !== 'released') {
      lines = yield* step(e.lines(cart.id));
      const expired = effectiveStatus(cart, yield* step(e.now())) === 'expired';
      const short = lines.filter((line) => expired || line.held < line.quantity);
      yield* step(e.lockProducts([input.sku, ...short.map((line) => line.sku)]));
    }
  }
  yield* step(e.lockProducts([input.sku]));
  // Set by the lock just taken; an unknown SKU locked nothing, and is refused before the time matters.
  const now = yield* step(e.now());
  const state = addToCartInputs(
    {
      now,
      channel: ctx.channel,
      ttlMs: rules.reservationTtlMs,
      maxHoldMs: rules.maxHoldMs,
      limits: rules.limits,
    },
    input,
    { cart, lines, products: e.products },
  );
  // Only a decision that gets as far as holding needs the expired holds: refusals come first.
  const expired = e.products.get(input.sku)?.active
    ? yield* step(e.expiredHolds(addToCartHoldSkus(state), cart?.id))
    : new Map();
  const decision = decideAddToCart({ ...state, expired });
  const { cart: after, line } = decision;
  const channelCheck = { adding: decision.adding, reviving: decision.reviving, cartId: after.id };
  yield* step(e.checkChannelCap(ctx.channel, channelCheck));
  if (ctx.holder) {
    checkHolderCap(rules.limits, ctx.holder, {
      held: yield* step(e.holderHeld(ctx.channel, ctx.holder, after.id)),
      awaiting: yield* step(e.holderAwaiting(ctx.channel, ctx.holder)),
      adding: decision.adding,
      reviving: decision.reviving,
    });
  }
  // Read before apply(), which may drop the row for a fresh read.
  const product = e.products.get(line.sku) as ProductRow;
  yield* step(e.apply(decision.writes));
  yield* step(e.saveCart(ctx, after, line, decision.isNew));
  // A new cart holds just this line.
  const view = decision.isNew
    ? cartView(
        after,
        [
          {
            sku: line.sku,
            name: product.name,
            quantity: line.quantity,
            unit_price_minor: product.price_minor,
          },
        ],
        now,
        null,
      )
    : yield* cartViewOf(e, after, now);
  yield* remember(e, call, view);
  return view;
}

export function* releaseCart(e: Engine, ctx: CallContext, input: ReleaseInput): Operation<ReleaseResult> {
  const cart = yield* step(e.lockCart(ctx, input.cartId));
  if (!cart) throw refuse.cartNotFound(input.cartId);
  const now = yield* step(e.now());
  const open = cart.status === 'open' || cart.status === 'expired';
  const lines = open ? yield* step(e.lines(cart.id)) : [];
  // Holds change under their product's lock too.
  const releasing = lines.filter((line) => line.held > 0 && (input.sku ?? line.sku) === line.sku);
  yield* step(e.lockProducts(releasing.map((line) => line.sku)));
  const decision = decideRelease(cart, lines, e.products, input.sku);
  yield* step(e.apply(decision.writes));
  if (decision.deleted.length > 0) yield* step(e.deleteLines(cart.id, decision.deleted));
  if (decision.status !== cart.status) {
    cart.status = decision.status;
    yield* step(e.closeCarts(decision.status, [cart.id]));
  }
  return { cart: yield* cartViewOf(e, cart, now), released: decision.released };
}

/** One batch of the sweeper: open carts past their expiry released and closed as expired. */
export function* sweepBatch(e: Engine, batchSize: number): Operation<SweepResult> {
  // Read before the carts are locked: a cart extended meanwhile is checked again under its lock, so an early
  // time only ever sweeps less.
  yield* step(e.now());
  const carts = yield* step(e.expiredCarts(batchSize));
  if (carts.length === 0) return { carts: 0, units: 0 };
  // These carts are locked, so their lines' holds stand.
  const held = carts.flatMap((cart) => cart.lines.filter((line) => line.held > 0).map((line) => line.sku));
  yield* step(e.lockProducts(held));
  const { writes, units } = decideSweep(carts, e.products);
  yield* step(e.apply(writes));
  yield* step(
    e.closeCarts(
      'expired',
      carts.map((cart) => cart.id),
    ),
  );
  return { carts: carts.length, units };
}

function* level(e: Engine, sku: string): Operation<StockLevel> {
  const product = yield* requireProduct(e, sku, false);
  return stockLevel(product, yield* step(e.expiredHeld(sku)));
}

export function* restock(e: Engine, ctx: CallContext, change: StockChange): Operation<StockLevel> {
  yield* requireProduct(e, change.sku, false);
  const writes = new Writes(e.products);
  changeOnHand(writes, change.sku, 'restock', change.quantity, ctx.channel, change.note ?? null);
  yield* step(e.apply(writes));
  return yield* level(e, change.sku);
}

export function* setStock(e: Engine, ctx: CallContext, change: StockChange): Operation<StockLevel> {
  yield* setOnHand(e, ctx.channel, change.sku, change.quantity, 'adjust', change.note ?? null);
  return yield* level(e, change.sku);
}

/** set_stock and import: the SKU's expired holds freed, then on-hand set (never below what carts hold). */
function* setOnHand(
  e: Engine,
  channel: string,
  sku: string,
  onHand: number,
  kind: 'adjust' | 'import',
  note: string | null,
): Operation<void> {
  yield* requireProduct(e, sku, false);
  const writes = new Writes(e.products);
  decideOnHand(writes, yield* step(e.expiredHolds([sku])), { sku, onHand, kind, channel, note });
  yield* step(e.apply(writes));
}

export function* upsertProduct(e: Engine, input: ProductInput): Operation<ProductView> {
  yield* writeProduct(e, input);
  const row = yield* requireProduct(e, input.sku, false);
  return productView(row, yield* step(e.expiredHeld(input.sku)));
}

/** Creates or updates a product's catalog fields; returns whether it existed. */
function* writeProduct(e: Engine, input: ProductInput): Operation<boolean> {
  assertProduct(input);
  yield* step(e.lockProducts([input.sku]));
  yield* step(e.now());
  const existing = e.products.get(input.sku);
  const change = productChange(existing, input);
  if (existing && change.switchesTracking) {
    const writes = new Writes(e.products);
    freeExpiredHolds(writes, yield* step(e.expiredHolds([input.sku])), input.sku);
    yield* step(e.apply(writes));
    const live = yield* step(e.liveCartsWithSku(input.sku));
    const { reserved } = yield* requireProduct(e, input.sku, false);
    assertTrackingSwitch(input.sku, change.trackStock, reserved, live);
  }
  if (change.changesCurrency) assertCurrencyChange(input.sku, yield* step(e.cartsWithSku(input.sku)));
  const { sku, name, price_minor, currency } = input;
  const row = { sku, name, price_minor, currency, description: change.description };
  yield* step(e.writeProduct({ ...row, track_stock: change.trackStock, active: change.active }, !!existing));
  return existing !== undefined;
}

export function* importProducts(
  e: Engine,
  ctx: CallContext,
  rows: ImportRow[],
  options: ImportOptions,
): Operation<ImportResult> {
  // Existing rows are locked up front in SKU order; new ones are created as the rows come.
  yield* step(e.lockProducts(rows.map((row) => row.sku)));
  const result: ImportResult = { created: 0, updated: 0, stock: [] };
  for (const [index, row] of rows.entries()) {
    try {
      const before = e.products.get(row.sku)?.on_hand ?? null;
      const existed = yield* writeProduct(e, row);
      result[existed ? 'updated' : 'created'] += 1;
      const onHand = importedOnHand(before, row.stock, options);
      if (onHand !== undefined) {
        yield* setOnHand(e, ctx.channel, row.sku, onHand, 'import', 'catalog import');
      }
      const after = (yield* requireProduct(e, row.sku, false)).on_hand;
      result.stock.push({ sku: row.sku, before, file: row.stock ?? null, after });
    } catch (error) {
      // An import's refusal names the row, also when the row fails only inside the transaction.
      throw inRow(error, index);
    }
  }
  return result;
}
