// Model-based property test: random command sequences run against a real SQLite store, compared after every step with a small reference model.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { isStockError } from '../../src/domain/errors.js';
import type { Limits } from '../../src/domain/rules.js';
import type { CartView, ImportRow, OrderView, ReleaseResult, StockLevel } from '../../src/domain/types.js';
import { openSqliteStore, type SqliteStore } from '../../src/storage/sqlite/store.js';

// ---------------------------------------------------------------- the world

const T0 = Date.UTC(2026, 0, 1);
const TTL = 10 * 60_000;
/** Small caps, so every kind of LIMIT_EXCEEDED is reachable in a few steps. */
const LIMITS: Limits = { maxLineQuantity: 4, maxCartQuantity: 6, maxChannelReserved: 5 };
const CHANNELS = ['web', 'bot', 'voice'] as const;
/** Past this many carts in play (open or expired) a run reuses them instead of opening more. */
const MAX_IN_PLAY = 10;
/** STOCKLOCK_MODEL_STEPS raises it for a deeper local run. */
const MIN_STEPS = Number(process.env.STOCKLOCK_MODEL_STEPS ?? 10_000);
const MAX_COMMANDS = 250;
const UNKNOWN = 'NOPE';
const BOGUS_CART = 'cart_0000000000doesNotExist';

const CATALOG: ImportRow[] = [
  { sku: 'EBOOK', name: 'Untracked e-book', price_minor: 500, currency: 'EUR', stock: 0, track_stock: false },
  { sku: 'ROOMY', name: 'Plenty of these', price_minor: 1000, currency: 'EUR', stock: 40 },
  { sku: 'SMALL', name: 'A few of these', price_minor: 250, currency: 'EUR', stock: 4 },
  { sku: 'TINY', name: 'The last one', price_minor: 9900, currency: 'EUR', stock: 1 },
  { sku: 'USD-CAP', name: 'Priced in dollars', price_minor: 2000, currency: 'USD', stock: 3 },
];
/** Sorted as SQLite's BINARY collation sorts them, the order every store listing uses. */
const SKUS = CATALOG.map((row) => row.sku).sort();
const PRODUCTS = new Map(CATALOG.map((row) => [row.sku, row]));
const tracked = (sku: string) => PRODUCTS.get(sku)?.track_stock !== false;

// ---------------------------------------------------------------- the model

type Status = 'open' | 'checked_out' | 'released' | 'expired';

interface MLine {
  quantity: number;
  /** Units the line holds right now: only the sweep's unit count depends on it. */
  held: number;
}

interface MOrder {
  order_id: string;
  cart_id: string;
  lines: ExpectedLine[];
  total_minor: number;
  currency: string;
  created_at: string;
}

interface MCart {
  id: string;
  channel: string;
  /** As stored: 'open' past its expiry still reads as 'expired'. */
  status: Status;
  currency: string;
  createdAt: number;
  expiresAt: number;
  lines: Record<string, MLine>;
  order: MOrder | null;
}

interface MState {
  now: number;
  onHand: Record<string, number>;
  carts: MCart[];
  orders: number;
}

interface Model {
  state: MState;
  /** What each step was predicted to do (`add:ok`, `add:OUT_OF_STOCK`, …), in order. */
  log: string[];
}

interface Real {
  store: SqliteStore;
  clock: ManualClock;
}

interface ExpectedLine {
  sku: string;
  quantity: number;
  unit_price_minor: number;
  line_total_minor: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; code: string; details: Record<string, unknown> };

const ok = (value: unknown): Outcome => ({ ok: true, value });
const refused = (code: string, details: Record<string, unknown>): Outcome => ({ ok: false, code, details });

const iso = (ms: number) => new Date(ms).toISOString();
const isLive = (s: MState, cart: MCart) => cart.status === 'open' && cart.expiresAt > s.now;
const isExpiredOpen = (s: MState, cart: MCart) => cart.status === 'open' && cart.expiresAt <= s.now;
const effectiveStatus = (s: MState, cart: MCart): Status =>
  isExpiredOpen(s, cart) ? 'expired' : cart.status;
const sortedSkus = (cart: MCart) => Object.keys(cart.lines).sort();
/** Checked-out and released carts are final: no operation changes them again. */
const inPlay = (cart: MCart) => cart.status === 'open' || cart.status === 'expired';

/** Units of a SKU that live (open, unexpired) carts reserve, other than `except`: the spec's "reserved". */
function liveHeld(s: MState, sku: string, except?: string): number {
  if (!tracked(sku)) return 0;
  let units = 0;
  for (const cart of s.carts) {
    if (cart.id !== except && isLive(s, cart)) units += cart.lines[sku]?.quantity ?? 0;
  }
  return units;
}

/** Tracked units a cart holds once it is live. */
function trackedUnits(cart: MCart): number {
  return sortedSkus(cart)
    .filter(tracked)
    .reduce((sum, sku) => sum + (cart.lines[sku]?.quantity ?? 0), 0);
}

/** Tracked units the channel's live carts other than `except` hold: what its cap counts. */
function channelLoad(s: MState, channel: string, except: string): number {
  return s.carts
    .filter((cart) => cart.channel === channel && cart.id !== except && isLive(s, cart))
    .reduce((sum, cart) => sum + trackedUnits(cart), 0);
}

/** A write that needs a SKU first frees that SKU's expired holds (other than the cart it works on). */
function releaseExpired(s: MState, sku: string, keep?: string): void {
  for (const cart of s.carts) {
    const line = cart.lines[sku];
    if (cart.id !== keep && isExpiredOpen(s, cart) && line) line.held = 0;
  }
}

function lineViews(cart: MCart): ExpectedLine[] {
  return sortedSkus(cart).map((sku) => {
    const quantity = cart.lines[sku]?.quantity ?? 0;
    const price = PRODUCTS.get(sku)?.price_minor ?? 0;
    return { sku, quantity, unit_price_minor: price, line_total_minor: quantity * price };
  });
}

function cartView(s: MState, cart: MCart) {
  const lines = lineViews(cart);
  return {
    cart_id: cart.id,
    status: effectiveStatus(s, cart),
    lines,
    total_minor: lines.reduce((sum, line) => sum + line.line_total_minor, 0),
    currency: cart.currency,
    item_count: lines.reduce((sum, line) => sum + line.quantity, 0),
    order_id: cart.order?.order_id ?? null,
    created_at: iso(cart.createdAt),
    expires_at: iso(cart.expiresAt),
  };
}

function stockLevel(s: MState, sku: string) {
  const onHand = s.onHand[sku] ?? 0;
  const reserved = liveHeld(s, sku);
  return {
    sku,
    on_hand: onHand,
    reserved,
    available: tracked(sku) ? onHand - reserved : null,
    track_stock: tracked(sku),
  };
}

function outOfStock(short: { sku: string; requested: number; available: number }[]): Outcome {
  const [first] = short;
  return refused('OUT_OF_STOCK', short.length === 1 ? { ...first } : { ...first, lines: short });
}

// ---------------------------------------------------------------- commands

type CartRef =
  | { kind: 'new' }
  | { kind: 'own'; index: number }
  | { kind: 'any'; index: number }
  | { kind: 'bogus' };

type Op =
  | { kind: 'add'; channel: number; cart: CartRef; sku: string; quantity: number }
  | { kind: 'checkout'; channel: number; cart: CartRef }
  | { kind: 'release'; channel: number; cart: CartRef; sku?: string }
  | { kind: 'advance'; ms: number }
  | { kind: 'sweep'; batch: number }
  | { kind: 'restock'; sku: string; quantity: number }
  | { kind: 'setStock'; sku: string; quantity: number };

type Target = { kind: 'new' } | { kind: 'cart'; cart: MCart } | { kind: 'bogus' };

/** Turns a cart reference into a cart of the current state: by index among the channel's carts, or all carts. */
function resolve(s: MState, channel: string, ref: CartRef, allowNew: boolean): Target {
  if (ref.kind === 'bogus') return { kind: 'bogus' };
  const canOpen = allowNew && s.carts.filter(inPlay).length < MAX_IN_PLAY;
  if (ref.kind === 'new' && canOpen) return { kind: 'new' };
  const index = ref.kind === 'new' ? 0 : ref.index;
  const mine = s.carts.filter((cart) => cart.channel === channel);
  const usable = mine.filter(inPlay);
  // Own carts are ones still in play when there are any; `any` reaches closed and other channels' carts.
  if (ref.kind === 'own' && usable.length === 0 && canOpen) return { kind: 'new' };
  const pool = ref.kind === 'any' ? s.carts : usable.length > 0 ? usable : mine;
  const cart = pool[index % Math.max(1, pool.length)];
  if (cart) return { kind: 'cart', cart };
  return canOpen ? { kind: 'new' } : { kind: 'bogus' };
}

/**
 * Re-reserves every line of a cart that lost its hold (all or nothing, the caller rolls back on a refusal).
 * Returns the short lines.
 */
function revive(s: MState, cart: MCart): { sku: string; requested: number; available: number }[] {
  const short: { sku: string; requested: number; available: number }[] = [];
  for (const sku of sortedSkus(cart)) {
    const line = cart.lines[sku];
    if (!line || !tracked(sku) || line.held === line.quantity) continue;
    releaseExpired(s, sku, cart.id);
    const available = (s.onHand[sku] ?? 0) - liveHeld(s, sku, cart.id);
    if (available < line.quantity) {
      short.push({ sku, requested: line.quantity, available: Math.max(0, available) });
      continue;
    }
    line.held = line.quantity;
  }
  return short;
}

/** Each predictor mutates `s` as the store would on success; on a refusal the caller drops `s`. */
function predictAdd(s: MState, op: Extract<Op, { kind: 'add' }>, newCartId: string | undefined): Outcome {
  const channel = CHANNELS[op.channel] as string;
  const product = PRODUCTS.get(op.sku);
  if (!product) return refused('UNKNOWN_SKU', { sku: op.sku });
  const target = resolve(s, channel, op.cart, true);
  let cart: MCart;
  let revived = false;
  if (target.kind === 'new') {
    cart = {
      id: newCartId ?? '(the store made no cart)',
      channel,
      status: 'open',
      currency: product.currency,
      createdAt: s.now,
      expiresAt: s.now + TTL,
      lines: {},
      order: null,
    };
  } else if (target.kind === 'bogus' || target.cart.channel !== channel) {
    return refused('CART_NOT_FOUND', { cart_id: target.kind === 'bogus' ? BOGUS_CART : target.cart.id });
  } else {
    cart = target.cart;
    if (cart.status === 'checked_out' || cart.status === 'released') {
      return refused('CART_CLOSED', { cart_id: cart.id, status: cart.status });
    }
    if (cart.currency !== product.currency) {
      return refused('CURRENCY_MISMATCH', {
        sku: op.sku,
        currency: product.currency,
        cart_currency: cart.currency,
      });
    }
    if (effectiveStatus(s, cart) === 'expired') {
      const short = revive(s, cart);
      if (short.length > 0) return outOfStock(short);
      revived = true;
    }
  }
  const existing = cart.lines[op.sku]?.quantity ?? 0;
  if (existing + op.quantity > LIMITS.maxLineQuantity) {
    return refused('LIMIT_EXCEEDED', { cap: 'per_line', limit: LIMITS.maxLineQuantity });
  }
  const units = lineViews(cart).reduce((sum, line) => sum + line.quantity, 0);
  if (units + op.quantity > LIMITS.maxCartQuantity) {
    return refused('LIMIT_EXCEEDED', { cap: 'per_cart', limit: LIMITS.maxCartQuantity });
  }
  const isTracked = tracked(op.sku);
  if (isTracked) {
    releaseExpired(s, op.sku, cart.id);
    const available = (s.onHand[op.sku] ?? 0) - liveHeld(s, op.sku, cart.id) - existing;
    if (available < op.quantity) {
      return outOfStock([{ sku: op.sku, requested: op.quantity, available: Math.max(0, available) }]);
    }
  }
  // The cap counts what the channel holds in live carts once this call has reserved (and revived) its units.
  const adding = (isTracked ? op.quantity : 0) + (revived ? trackedUnits(cart) : 0);
  const load = channelLoad(s, channel, cart.id) + trackedUnits(cart) + (isTracked ? op.quantity : 0);
  if (adding > 0 && load > LIMITS.maxChannelReserved) {
    return refused('LIMIT_EXCEEDED', { cap: 'per_channel', limit: LIMITS.maxChannelReserved });
  }
  const line = cart.lines[op.sku] ?? { quantity: 0, held: 0 };
  line.quantity += op.quantity;
  if (isTracked) line.held = line.quantity;
  cart.lines[op.sku] = line;
  cart.status = 'open';
  cart.expiresAt = s.now + TTL;
  if (target.kind === 'new') s.carts.push(cart);
  return ok(cartView(s, cart));
}

function predictCheckout(
  s: MState,
  op: Extract<Op, { kind: 'checkout' }>,
  newOrderId: string | undefined,
): Outcome {
  const channel = CHANNELS[op.channel] as string;
  const target = resolve(s, channel, op.cart, false);
  if (target.kind !== 'cart' || target.cart.channel !== channel) {
    return refused('CART_NOT_FOUND', { cart_id: target.kind === 'cart' ? target.cart.id : BOGUS_CART });
  }
  const cart = target.cart;
  // Checkout is idempotent on the cart: a repeat returns the same order.
  if (cart.status === 'checked_out') return ok(cart.order);
  if (cart.status === 'released') return refused('CART_CLOSED', { cart_id: cart.id, status: 'released' });
  if (sortedSkus(cart).length === 0) return refused('CART_EMPTY', { cart_id: cart.id });
  const short = revive(s, cart);
  if (short.length > 0) return outOfStock(short);
  for (const sku of sortedSkus(cart)) {
    const line = cart.lines[sku];
    if (!line) continue;
    if (tracked(sku)) s.onHand[sku] = (s.onHand[sku] ?? 0) - line.quantity;
    line.held = 0;
  }
  const lines = lineViews(cart);
  cart.status = 'checked_out';
  cart.order = {
    order_id: newOrderId ?? '(the store made no order)',
    cart_id: cart.id,
    lines,
    total_minor: lines.reduce((sum, line) => sum + line.line_total_minor, 0),
    currency: cart.currency,
    created_at: iso(s.now),
  };
  s.orders += 1;
  return ok(cart.order);
}

function predictRelease(s: MState, op: Extract<Op, { kind: 'release' }>): Outcome {
  const channel = CHANNELS[op.channel] as string;
  const target = resolve(s, channel, op.cart, false);
  if (target.kind !== 'cart' || target.cart.channel !== channel) {
    return refused('CART_NOT_FOUND', { cart_id: target.kind === 'cart' ? target.cart.id : BOGUS_CART });
  }
  const cart = target.cart;
  if (cart.status === 'checked_out')
    return refused('CART_CLOSED', { cart_id: cart.id, status: 'checked_out' });
  // Releasing a released cart is a no-op, so a retry is safe.
  if (cart.status === 'released') return ok({ cart: cartView(s, cart), released: [] });
  const released: { sku: string; quantity: number }[] = [];
  for (const sku of sortedSkus(cart)) {
    const line = cart.lines[sku];
    if (!line || (op.sku !== undefined && sku !== op.sku)) continue;
    released.push({ sku, quantity: line.quantity });
    line.held = 0;
    if (op.sku !== undefined) delete cart.lines[sku];
  }
  if (op.sku === undefined) cart.status = 'released';
  return ok({ cart: cartView(s, cart), released });
}

function predictRestock(s: MState, op: Extract<Op, { kind: 'restock' }>): Outcome {
  if (!PRODUCTS.has(op.sku)) return refused('UNKNOWN_SKU', { sku: op.sku });
  s.onHand[op.sku] = (s.onHand[op.sku] ?? 0) + op.quantity;
  return ok(stockLevel(s, op.sku));
}

function predictSetStock(s: MState, op: Extract<Op, { kind: 'setStock' }>): Outcome {
  if (!PRODUCTS.has(op.sku)) return refused('UNKNOWN_SKU', { sku: op.sku });
  releaseExpired(s, op.sku);
  const reserved = liveHeld(s, op.sku);
  if (op.quantity < reserved) {
    return refused('BELOW_RESERVED', { sku: op.sku, requested: op.quantity, reserved });
  }
  s.onHand[op.sku] = op.quantity;
  return ok(stockLevel(s, op.sku));
}

function predictSweep(s: MState): Outcome {
  let carts = 0;
  let units = 0;
  for (const cart of s.carts) {
    if (!isExpiredOpen(s, cart)) continue;
    carts += 1;
    for (const line of Object.values(cart.lines)) {
      units += line.held;
      line.held = 0;
    }
    cart.status = 'expired';
  }
  return ok({ carts, units });
}

// ---------------------------------------------------------------- running a step

async function attempt(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    return ok(await fn());
  } catch (error) {
    if (!isStockError(error)) throw error;
    return refused(error.code, error.details);
  }
}

/** The real call for an op, against the cart the model resolves it to. */
function realCall(s: MState, store: SqliteStore, op: Op): Promise<unknown> {
  const cartId = (channel: string, ref: CartRef, allowNew: boolean): string | undefined => {
    const target = resolve(s, channel, ref, allowNew);
    return target.kind === 'cart' ? target.cart.id : target.kind === 'bogus' ? BOGUS_CART : undefined;
  };
  switch (op.kind) {
    case 'add': {
      const channel = CHANNELS[op.channel] as string;
      return store.addToCart(
        { channel },
        { sku: op.sku, quantity: op.quantity, cartId: cartId(channel, op.cart, true) },
      );
    }
    case 'checkout': {
      const channel = CHANNELS[op.channel] as string;
      return store.checkout({ channel }, { cartId: cartId(channel, op.cart, false) as string });
    }
    case 'release': {
      const channel = CHANNELS[op.channel] as string;
      return store.releaseCart(
        { channel },
        { cartId: cartId(channel, op.cart, false) as string, sku: op.sku },
      );
    }
    case 'restock':
      return store.restock({ channel: 'ops' }, { sku: op.sku, quantity: op.quantity });
    case 'setStock':
      return store.setStock({ channel: 'ops' }, { sku: op.sku, quantity: op.quantity });
    case 'sweep':
      return store.sweepExpired(op.batch);
    case 'advance':
      return Promise.resolve(undefined);
  }
}

function predict(s: MState, op: Op, actual: Outcome): Outcome {
  const value = (actual.ok ? actual.value : {}) as { cart_id?: string; order_id?: string };
  switch (op.kind) {
    case 'add':
      return predictAdd(s, op, value.cart_id);
    case 'checkout':
      return predictCheckout(s, op, value.order_id);
    case 'release':
      return predictRelease(s, op);
    case 'restock':
      return predictRestock(s, op);
    case 'setStock':
      return predictSetStock(s, op);
    case 'sweep':
      return predictSweep(s);
    case 'advance':
      s.now += op.ms;
      return ok(undefined);
  }
}

const stats = { runs: 0, steps: 0, outcomes: new Map<string, number>() };

function label(op: Op, outcome: Outcome): string {
  const detail = !outcome.ok && outcome.code === 'LIMIT_EXCEEDED' ? `:${String(outcome.details.cap)}` : '';
  return `${op.kind}${op.kind === 'release' && op.sku ? '(sku)' : ''}:${outcome.ok ? 'ok' : outcome.code}${detail}`;
}

/** Deep equality with a cheap path: most steps agree, and vitest's matchers cost more than the store calls. */
function same(actual: unknown, expected: unknown, what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual, what).toEqual(expected);
}

const pickLines = (lines: ExpectedLine[]) =>
  lines.map(({ sku, quantity, unit_price_minor, line_total_minor }) => ({
    sku,
    quantity,
    unit_price_minor,
    line_total_minor,
  }));

/** The fields of a cart view the model predicts, in cartView's key order. */
function pickCart(view: CartView) {
  const { cart_id, status, lines, total_minor, currency, item_count, order_id, created_at, expires_at } =
    view;
  return {
    cart_id,
    status,
    lines: pickLines(lines),
    total_minor,
    currency,
    item_count,
    order_id,
    created_at,
    expires_at,
  };
}

/** The fields of a call's result the model predicts; refusals compare in full. */
function normalize(op: Op, outcome: Outcome): Outcome {
  if (!outcome.ok) return outcome;
  const value = outcome.value as Record<string, unknown>;
  switch (op.kind) {
    case 'add':
      return ok(pickCart(value as unknown as CartView));
    case 'checkout': {
      const { order_id, cart_id, lines, total_minor, currency, created_at } = value as unknown as OrderView;
      return ok({ order_id, cart_id, lines: pickLines(lines), total_minor, currency, created_at });
    }
    case 'release': {
      const { cart, released } = value as unknown as ReleaseResult;
      return ok({ cart: pickCart(cart), released });
    }
    case 'restock':
    case 'setStock': {
      const { sku, on_hand, reserved, available, track_stock } = value as unknown as StockLevel;
      return ok({ sku, on_hand, reserved, available, track_stock });
    }
    default:
      return outcome;
  }
}

/**
 * Everything a caller can observe, read through the store, next to what the model says it should be:
 * every SKU, the audit, and `carts` (by default all of them).
 */
async function expectSameState(s: MState, real: Real, carts: MCart[] = s.carts): Promise<void> {
  const { store } = real;
  same(real.clock.now(), s.now, 'clock');
  const views = await Promise.all(carts.map((cart) => store.getCart({ channel: cart.channel }, cart.id)));
  same(
    views.map(pickCart),
    carts.map((cart) => cartView(s, cart)),
    'get_cart',
  );

  const stock = await store.checkStock([...SKUS, UNKNOWN]);
  same(
    {
      products: stock.products.map(({ sku, available, in_stock }) => ({ sku, available, in_stock })),
      unknown_skus: stock.unknown_skus,
    },
    {
      products: SKUS.map((sku) => {
        const available = tracked(sku) ? Math.max(0, (s.onHand[sku] ?? 0) - liveHeld(s, sku)) : null;
        return { sku, available, in_stock: available === null || available > 0 };
      }),
      unknown_skus: [UNKNOWN],
    },
    'check_stock',
  );
  const levels = await store.stockLevels();
  same(
    levels.map(({ sku, on_hand, reserved, available, track_stock }) => ({
      sku,
      on_hand,
      reserved,
      available,
      track_stock,
    })),
    SKUS.map((sku) => stockLevel(s, sku)),
    'stock levels',
  );

  const report = await store.audit();
  same(
    {
      ok: report.ok,
      violations: report.violations,
      carts: report.checked.carts,
      orders: report.checked.orders,
    },
    { ok: true, violations: [], carts: s.carts.length, orders: s.orders },
    'audit',
  );
}

class Step implements fc.AsyncCommand<Model, Real> {
  constructor(readonly op: Op) {}

  check(): boolean {
    return true;
  }

  async run(model: Model, real: Real): Promise<void> {
    stats.steps += 1;
    const { op } = this;
    const before = model.state;
    const actual = await attempt(() => realCall(before, real.store, op));
    if (op.kind === 'advance') real.clock.advance(op.ms);
    const next = structuredClone(before);
    const expected = predict(next, op, actual);
    const key = label(op, expected);
    model.log.push(key);
    stats.outcomes.set(key, (stats.outcomes.get(key) ?? 0) + 1);
    same(normalize(op, actual), expected, `${this.toString()} at ${iso(before.now)}`);
    if (expected.ok) model.state = next;
    // Every cart that was in play before this step or opened in it. A final (checked-out or released)
    // cart is compared in the step that closes it and again, with all the others, when the run ends.
    const after = model.state;
    const watched = after.carts.filter((_cart, i) => {
      const was = before.carts[i];
      return was === undefined || inPlay(was);
    });
    await expectSameState(after, real, watched);
  }

  toString(): string {
    return JSON.stringify(this.op);
  }
}

// ---------------------------------------------------------------- generators

const channel = fc.integer({ min: 0, max: CHANNELS.length - 1 });
const cartRef: fc.Arbitrary<CartRef> = fc.oneof(
  { weight: 12, arbitrary: fc.nat(2 * MAX_IN_PLAY).map((index) => ({ kind: 'own' as const, index })) },
  { weight: 4, arbitrary: fc.constant({ kind: 'new' as const }) },
  { weight: 2, arbitrary: fc.nat(2 * MAX_IN_PLAY).map((index) => ({ kind: 'any' as const, index })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bogus' as const }) },
);
const sku = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom(...SKUS) },
  { weight: 1, arbitrary: fc.constant(UNKNOWN) },
);
const advance = fc.oneof(fc.constantFrom(1, TTL - 1, TTL, TTL + 1), fc.integer({ min: 1, max: 2 * TTL }));

const quantity = (max: number) => fc.integer({ min: 1, max });
const step: fc.Arbitrary<Step> = fc
  .oneof(
    {
      weight: 10,
      arbitrary: fc.record({ kind: fc.constant('add'), channel, cart: cartRef, sku, quantity: quantity(5) }),
    },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('checkout'), channel, cart: cartRef }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('release'), channel, cart: cartRef }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('release'), channel, cart: cartRef, sku }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance'), ms: advance }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('sweep'), batch: fc.integer({ min: 1, max: 3 }) }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('restock'), sku, quantity: quantity(4) }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('setStock'), sku, quantity: fc.integer({ min: 0, max: 6 }) }),
    },
  )
  .map((op) => new Step(op as Op));

// ---------------------------------------------------------------- the property

const root = mkdtempSync(join(tmpdir(), 'stocklock-model-'));
let counter = 0;

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

async function freshWorld(): Promise<{ model: Model; real: Real; dispose: () => Promise<void> }> {
  const dir = join(root, String(++counter));
  mkdirSync(dir);
  const clock = new ManualClock(T0);
  const store = openSqliteStore(join(dir, 'stocklock.db'), {
    clock,
    reservationTtlMs: TTL,
    limits: LIMITS,
    lockTimeoutMs: 2_000,
    // Durability is not under test here; NORMAL keeps ten thousand commits fast.
    synchronous: 'NORMAL',
  });
  await store.importProducts({ channel: 'cli' }, CATALOG);
  const state: MState = {
    now: T0,
    onHand: Object.fromEntries(CATALOG.map((row) => [row.sku, row.stock ?? 0])),
    carts: [],
    orders: 0,
  };
  return {
    model: { state, log: [] },
    real: { store, clock },
    dispose: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs one fixed command sequence through the same model and checks; returns what the model predicted. */
async function replay(ops: Op[]): Promise<string[]> {
  const world = await freshWorld();
  try {
    await expectSameState(world.model.state, world.real);
    await fc.asyncModelRun(
      () => ({ model: world.model, real: world.real }),
      ops.map((op) => new Step(op)),
    );
    await expectSameState(world.model.state, world.real);
    return world.model.log;
  } finally {
    await world.dispose();
  }
}

describe('SQLite store against a reference model', () => {
  it('reviving an expired cart whose holds were never released still counts them against the channel cap', async () => {
    // Cart 1 holds 3 ROOMY and expires unswept; cart 2 takes 3 SMALL, so the channel's live holds are 3;
    // adding an untracked e-book to cart 1 would revive its 3 ROOMY: 6 units, over the cap of 5.
    const log = await replay([
      { kind: 'add', channel: 0, cart: { kind: 'new' }, sku: 'ROOMY', quantity: 3 },
      { kind: 'advance', ms: TTL },
      { kind: 'add', channel: 0, cart: { kind: 'new' }, sku: 'SMALL', quantity: 3 },
      { kind: 'add', channel: 0, cart: { kind: 'own', index: 0 }, sku: 'EBOOK', quantity: 1 },
      { kind: 'add', channel: 0, cart: { kind: 'own', index: 0 }, sku: 'ROOMY', quantity: 1 },
      { kind: 'release', channel: 0, cart: { kind: 'own', index: 1 } },
      { kind: 'add', channel: 0, cart: { kind: 'own', index: 0 }, sku: 'EBOOK', quantity: 1 },
    ]);
    expect(log).toEqual([
      'add:ok',
      'advance:ok',
      'add:ok',
      'add:LIMIT_EXCEEDED:per_channel',
      'add:LIMIT_EXCEEDED:per_channel',
      'release:ok',
      'add:ok',
    ]);
  });

  it(`agrees with the model after every step of random command sequences (at least ${MIN_STEPS} steps)`, async () => {
    const started = performance.now();
    Object.assign(stats, { runs: 0, steps: 0 });
    stats.outcomes.clear();
    const property = fc.asyncProperty(
      fc.commands([step], { maxCommands: MAX_COMMANDS, size: 'max' }),
      async (cmds) => {
        stats.runs += 1;
        const world = await freshWorld();
        try {
          await expectSameState(world.model.state, world.real);
          await fc.asyncModelRun(() => ({ model: world.model, real: world.real }), cmds);
          await expectSameState(world.model.state, world.real);
        } finally {
          await world.dispose();
        }
      },
    );
    // fc.commands picks each run's length at random: keep drawing batches of runs until enough steps ran.
    while (stats.steps < MIN_STEPS) {
      await fc.assert(property, { numRuns: 10 });
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const outcomes = Object.fromEntries([...stats.outcomes].sort(([a], [b]) => a.localeCompare(b)));
    console.info(`model test: ${stats.steps} steps in ${stats.runs} runs, ${seconds} s`, outcomes);

    // The generators must reach every branch the model predicts, or the comparison proves little.
    for (const key of [
      'add:ok',
      'add:UNKNOWN_SKU',
      'add:CART_NOT_FOUND',
      'add:CART_CLOSED',
      'add:CURRENCY_MISMATCH',
      'add:OUT_OF_STOCK',
      'add:LIMIT_EXCEEDED:per_line',
      'add:LIMIT_EXCEEDED:per_cart',
      'add:LIMIT_EXCEEDED:per_channel',
      'checkout:ok',
      'checkout:OUT_OF_STOCK',
      'checkout:CART_EMPTY',
      'checkout:CART_CLOSED',
      'checkout:CART_NOT_FOUND',
      'release:ok',
      'release(sku):ok',
      'release:CART_CLOSED',
      'restock:ok',
      'setStock:ok',
      'setStock:BELOW_RESERVED',
      'sweep:ok',
    ]) {
      expect(stats.outcomes.get(key) ?? 0, key).toBeGreaterThan(0);
    }
    expect(stats.steps).toBeGreaterThanOrEqual(MIN_STEPS);
    // About 10 s of CPU; the margin is for a busy machine, where the wall clock stretches.
  }, 180_000);
});
