// Model-based property test: random command sequences against two store instances sharing one database (a SQLite file, a PostgreSQL database), compared with one reference model and audited after every step.
// Orders too: one channel checks out in payment mode, and the merchant confirms payments (on time, late after the
// sweep, or needing a refund), cancels orders with or without restock, and the sweep ends unpaid ones at pay_by.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { isStockError } from '../../src/domain/errors.js';
import type { Limits } from '../../src/domain/rules.js';
import type {
  CartView,
  ImportResult,
  ImportRow,
  OrderView,
  ProductInput,
  ProductView,
  ReleaseResult,
  StockLevel,
  SweepResult,
} from '../../src/domain/types.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import { openSqliteStore, SqliteStore } from '../../src/storage/sqlite/store.js';
import type { InventoryStore, SearchQuery, StoreOptions } from '../../src/storage/store.js';
import { MODEL_CATALOG } from '../helpers/catalog.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';

// ---------------------------------------------------------------- the world

const T0 = Date.UTC(2026, 0, 1);
const TTL = 10 * 60_000;
/** Small caps, so every kind of LIMIT_EXCEEDED is reachable in a few steps. */
const LIMITS: Limits = {
  maxLineQuantity: 4,
  maxCartQuantity: 6,
  maxChannelReserved: 5,
  maxHolderReserved: 20,
};
const CHANNELS = ['web', 'bot', 'voice'] as const;
/** Its checkouts make orders awaiting payment; web and bot sell at checkout. */
const PAYMENT_CHANNEL = 'voice';
/** How long an order awaits payment: shorter than most clock advances, so timeouts come up. */
const PAYMENT_WINDOW = 5 * 60_000;
const ADMIN = { channel: 'ops' };
/** The merchant's connection for confirm_payment and cancel_order: any channel's orders. */
const MERCHANT = { channel: 'ops', admin: true };
const BOGUS_ORDER = 'ord_0000000000doesNotExist';
/** Past this many carts in play (open or expired) a run reuses them instead of opening more. */
const MAX_IN_PLAY = 10;
/** Steps per store per run of the file; STOCKLOCK_MODEL_STEPS changes it (deeper local runs, or quick ones). */
const MIN_STEPS = Number(process.env.STOCKLOCK_MODEL_STEPS ?? 10_000);
const MAX_COMMANDS = 250;
/**
 * STOCKLOCK_MODEL_SEED, STOCKLOCK_MODEL_PATH and STOCKLOCK_MODEL_REPLAY_PATH (the seed, path and replayPath
 * of a failure's report) replay that one failing run.
 */
const REPRODUCE =
  process.env.STOCKLOCK_MODEL_SEED === undefined
    ? undefined
    : {
        seed: Number(process.env.STOCKLOCK_MODEL_SEED),
        path: process.env.STOCKLOCK_MODEL_PATH,
        endOnFailure: true,
      };
const UNKNOWN = 'NOPE';
/** In no catalog row: only upsert_product or an import brings it into being. */
const LATE = 'LATE';
const BOGUS_CART = 'cart_0000000000doesNotExist';
/** Few keys per channel, so keys get reused: for replays, and for conflicts with a different request. */
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4'] as const;

/** Every SKU a run can know, sorted bytewise as both stores list them (SQLite BINARY, PostgreSQL "C"). */
const SKUS = [...MODEL_CATALOG.map((row) => row.sku), LATE].sort();

// ---------------------------------------------------------------- the model

type Status = 'open' | 'checked_out' | 'released' | 'expired';

interface MProduct {
  name: string;
  description: string | null;
  price_minor: number;
  currency: string;
  track_stock: boolean;
  active: boolean;
  onHand: number;
}

interface MLine {
  quantity: number;
  /** Units the line holds right now (less than its quantity once released, expired, or if the product became tracked). */
  held: number;
}

interface LineView {
  sku: string;
  name: string;
  quantity: number;
  unit_price_minor: number;
  line_total_minor: number;
}

type OrderStatus = 'awaiting_payment' | 'paid' | 'cancelled';

interface MOrder {
  order_id: string;
  cart_id: string;
  channel: string;
  lines: LineView[];
  total_minor: number;
  currency: string;
  created_at: string;
  createdAt: number;
  /** As stored: an order awaiting payment past payBy reads as cancelled (payment_timeout) until swept. */
  status: OrderStatus;
  /** Units each line holds while the order awaits payment. */
  held: Record<string, number>;
  payBy: number | null;
  paidAt: number | null;
  cancelledAt: number | null;
  cancelReason: string | null;
  reference: string | null;
  needsRefund: boolean;
}

interface MCart {
  id: string;
  channel: string;
  /** As stored: 'open' past its expiry still reads as 'expired'; 'expired' is a swept cart. */
  status: Status;
  currency: string;
  createdAt: number;
  expiresAt: number;
  lines: Record<string, MLine>;
  order: MOrder | null;
}

/** A successful keyed call: what a replay must send to get `result` back. */
interface MRecord {
  channel: string;
  tool: 'add_to_cart' | 'checkout';
  key: string;
  call: AddCall | CheckoutCall;
  result: Outcome;
}

interface MState {
  now: number;
  products: Record<string, MProduct>;
  carts: MCart[];
  orders: number;
  records: MRecord[];
  /** How the last confirm_payment went (on time, late, needs_refund, a repeat): a label for the outcome counts. */
  note?: string;
}

interface Model {
  state: MState;
  /** What each step was predicted to do (`add:ok`, `add:OUT_OF_STOCK`, …), in order. */
  log: string[];
}

interface Stats {
  runs: number;
  steps: number;
  outcomes: Map<string, number>;
}

interface Real {
  /** Two instances on one database; each step writes through one and reads back through the other. */
  stores: [InventoryStore, InventoryStore];
  clock: ManualClock;
  stats: Stats;
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
const tracked = (s: MState, sku: string) => s.products[sku]?.track_stock === true;
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

/** Every order made, in the order of the carts that made them. */
const ordersOf = (s: MState) => s.carts.flatMap((cart) => (cart.order ? [cart.order] : []));
/** What orders awaiting payment hold of a SKU, past pay_by or not: only the sweep or the order itself frees it. */
const orderHeld = (s: MState, sku: string) =>
  sum(ordersOf(s).map((order) => (order.status === 'awaiting_payment' ? (order.held[sku] ?? 0) : 0)));
const isOverdue = (s: MState, order: MOrder) =>
  order.status === 'awaiting_payment' && order.payBy !== null && order.payBy <= s.now;

/** The SKU's `reserved` column: what lines of carts stored as open hold, live or expired, and unpaid orders. */
function rowReserved(s: MState, sku: string): number {
  const carts = sum(
    s.carts.filter((cart) => cart.status === 'open').map((cart) => cart.lines[sku]?.held ?? 0),
  );
  return carts + orderHeld(s, sku);
}

/** What live (open, unexpired) carts and unpaid orders hold of a SKU: the `reserved` every read reports. */
function liveHeld(s: MState, sku: string): number {
  const carts = sum(s.carts.filter((cart) => isLive(s, cart)).map((cart) => cart.lines[sku]?.held ?? 0));
  return carts + orderHeld(s, sku);
}

/** The order as every call and read shows it. */
function orderView(s: MState, order: MOrder) {
  const overdue = isOverdue(s, order);
  const paidAt = order.paidAt ?? (order.status === 'paid' ? order.createdAt : null);
  return {
    order_id: order.order_id,
    cart_id: order.cart_id,
    status: overdue ? 'cancelled' : order.status,
    lines: order.lines,
    total_minor: order.total_minor,
    currency: order.currency,
    created_at: order.created_at,
    pay_by: order.payBy === null ? null : iso(order.payBy),
    paid_at: paidAt === null ? null : iso(paidAt),
    cancelled_at: overdue
      ? iso(order.payBy as number)
      : order.cancelledAt === null
        ? null
        : iso(order.cancelledAt),
    cancel_reason: overdue ? 'payment_timeout' : order.cancelReason,
    needs_refund: order.needsRefund,
    payment_reference: order.reference,
  };
}

const cartHeld = (cart: MCart) => sum(Object.values(cart.lines).map((line) => line.held));

/** A write that needs a SKU first frees that SKU's expired holds (other than the cart it works on). */
function releaseExpired(s: MState, sku: string, keep?: string): void {
  for (const cart of s.carts) {
    const line = cart.lines[sku];
    if (cart.id !== keep && isExpiredOpen(s, cart) && line) line.held = 0;
  }
}

function lineViews(s: MState, cart: MCart): LineView[] {
  // A sold cart shows what was sold, at the prices of the sale; any other shows today's names and prices.
  if (cart.order) return cart.order.lines;
  return sortedSkus(cart).map((sku) => {
    const quantity = cart.lines[sku]?.quantity ?? 0;
    const product = s.products[sku];
    const price = product?.price_minor ?? 0;
    return {
      sku,
      name: product?.name ?? '',
      quantity,
      unit_price_minor: price,
      line_total_minor: quantity * price,
    };
  });
}

function cartView(s: MState, cart: MCart) {
  const lines = lineViews(s, cart);
  return {
    cart_id: cart.id,
    status: effectiveStatus(s, cart),
    lines,
    total_minor: sum(lines.map((line) => line.line_total_minor)),
    currency: cart.currency,
    item_count: sum(lines.map((line) => line.quantity)),
    order_id: cart.order?.order_id ?? null,
    created_at: iso(cart.createdAt),
    expires_at: iso(cart.expiresAt),
  };
}

function stockLevel(s: MState, sku: string) {
  const product = s.products[sku] as MProduct;
  const reserved = liveHeld(s, sku);
  return {
    sku,
    name: product.name,
    on_hand: product.onHand,
    reserved,
    available: product.track_stock ? product.onHand - reserved : null,
    track_stock: product.track_stock,
    active: product.active,
  };
}

function productView(s: MState, sku: string) {
  const product = s.products[sku] as MProduct;
  const available = product.track_stock ? Math.max(0, product.onHand - liveHeld(s, sku)) : null;
  return {
    sku,
    name: product.name,
    description: product.description,
    price_minor: product.price_minor,
    currency: product.currency,
    available,
    in_stock: available === null || available > 0,
  };
}

const SEARCHES: SearchQuery[] = [
  { query: '', limit: 50, inStockOnly: true },
  { query: 'mark ii', limit: 50, inStockOnly: false },
  { query: 'tiny', limit: 50, inStockOnly: true },
  { query: 'SOFT', limit: 2, inStockOnly: false },
  { query: '', limit: 50, inStockOnly: false },
];

/**
 * search_products: active products where every term is in the SKU, name or description (ASCII letters
 * folded), an exact SKU first, then by name and SKU.
 */
function searchResult(s: MState, { query, limit, inStockOnly }: SearchQuery) {
  const terms = query
    .trim()
    .toLowerCase()
    .split(/\s+/)
    .filter((term) => term.length > 0);
  const whole = query.trim().toLowerCase();
  const byte = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return SKUS.filter((sku) => s.products[sku]?.active)
    .filter((sku) => {
      const p = s.products[sku] as MProduct;
      const fields = [sku, p.name, p.description ?? ''].map((field) => field.toLowerCase());
      return terms.every((term) => fields.some((field) => field.includes(term)));
    })
    .map((sku) => productView(s, sku))
    .filter((view) => !inStockOnly || view.in_stock)
    .sort(
      (a, b) =>
        Number(b.sku.toLowerCase() === whole) - Number(a.sku.toLowerCase() === whole) ||
        byte(a.name, b.name) ||
        byte(a.sku, b.sku),
    )
    .slice(0, limit);
}

type Short = { sku: string; requested: number; available: number };

function outOfStock(short: Short[]): Outcome {
  const [first] = short;
  return refused('OUT_OF_STOCK', short.length === 1 ? { ...first } : { ...first, lines: short });
}

// ---------------------------------------------------------------- commands

type CartRef =
  | { kind: 'new' }
  | { kind: 'own'; index: number }
  | { kind: 'any'; index: number }
  | { kind: 'bogus' };

/** What the generators draw: carts by reference, resolved against the model's state when the step runs. */
type Op =
  | { kind: 'add'; channel: number; cart: CartRef; sku: string; quantity: number; key?: string }
  | { kind: 'checkout'; channel: number; cart: CartRef; key?: string }
  | { kind: 'release'; channel: number; cart: CartRef; sku?: string }
  /** Sends a recorded keyed call again, on its own channel or (elsewhere) the next one. */
  | { kind: 'replay'; index: number; elsewhere: boolean }
  | { kind: 'advance'; ms: number }
  | { kind: 'sweep'; batch: number }
  /** Orders by index among those made (-1: one that does not exist). */
  | { kind: 'confirm'; order: number }
  | { kind: 'cancel'; order: number; restock: boolean }
  | { kind: 'sweepOrders' }
  | { kind: 'restock'; sku: string; quantity: number }
  | { kind: 'setStock'; sku: string; quantity: number }
  /** `invalid` names the field the generator broke on purpose. */
  | { kind: 'upsert'; product: ProductInput; invalid?: string }
  | { kind: 'import'; rows: ImportRow[]; setStock: boolean; invalid?: { row: number; field: string } };

type AddCall = { kind: 'add'; channel: string; sku: string; quantity: number; cartId?: string; key?: string };
type CheckoutCall = { kind: 'checkout'; channel: string; cartId: string; key?: string };

/** One concrete store call, carts named by id. */
type Call =
  | AddCall
  | CheckoutCall
  | { kind: 'release'; channel: string; cartId: string; sku?: string }
  | { kind: 'advance'; ms: number }
  | { kind: 'sweep'; batch: number }
  | { kind: 'confirm'; orderId: string; reference: string }
  | { kind: 'cancel'; orderId: string; restock: boolean }
  | { kind: 'sweepOrders' }
  | { kind: 'restock'; sku: string; quantity: number }
  | { kind: 'setStock'; sku: string; quantity: number }
  | { kind: 'upsert'; product: ProductInput; invalid?: string }
  | { kind: 'import'; rows: ImportRow[]; setStock: boolean; invalid?: { row: number; field: string } }
  | { kind: 'nothing' };

/** Turns a cart reference into a cart id of the current state (undefined: a new cart). */
function resolve(s: MState, channel: string, ref: CartRef, allowNew: boolean): string | undefined {
  if (ref.kind === 'bogus') return BOGUS_CART;
  const canOpen = allowNew && s.carts.filter(inPlay).length < MAX_IN_PLAY;
  if (ref.kind === 'new' && canOpen) return undefined;
  const index = ref.kind === 'new' ? 0 : ref.index;
  const mine = s.carts.filter((cart) => cart.channel === channel);
  const usable = mine.filter(inPlay);
  // Own carts are ones still in play when there are any; `any` reaches closed and other channels' carts.
  if (ref.kind === 'own' && usable.length === 0 && canOpen) return undefined;
  const pool = ref.kind === 'any' ? s.carts : usable.length > 0 ? usable : mine;
  const cart = pool[index % Math.max(1, pool.length)];
  if (cart) return cart.id;
  return canOpen ? undefined : BOGUS_CART;
}

function concretize(s: MState, op: Op): Call {
  switch (op.kind) {
    case 'add': {
      const channel = CHANNELS[op.channel] as string;
      const cartId = resolve(s, channel, op.cart, true);
      return { kind: 'add', channel, sku: op.sku, quantity: op.quantity, cartId, key: op.key };
    }
    case 'checkout': {
      const channel = CHANNELS[op.channel] as string;
      return {
        kind: 'checkout',
        channel,
        cartId: resolve(s, channel, op.cart, false) ?? BOGUS_CART,
        key: op.key,
      };
    }
    case 'release': {
      const channel = CHANNELS[op.channel] as string;
      return {
        kind: 'release',
        channel,
        cartId: resolve(s, channel, op.cart, false) ?? BOGUS_CART,
        sku: op.sku,
      };
    }
    case 'confirm':
    case 'cancel': {
      // A third of the payments are for an order the clock ended (late: sold again, or needing a refund), a third
      // for one still awaiting payment, the rest for any order made to await payment (repeats, closed ones).
      const paying = ordersOf(s).filter((order) => order.payBy !== null);
      const ended = paying.filter(
        (order) => isOverdue(s, order) || (order.cancelReason === 'payment_timeout' && !order.needsRefund),
      );
      const awaiting = paying.filter((order) => order.status === 'awaiting_payment');
      const preferred = [ended, awaiting, paying][Math.abs(op.order) % 3] as MOrder[];
      const pool = preferred.length > 0 ? preferred : paying;
      const orders = op.kind === 'confirm' && pool.length > 0 ? pool : ordersOf(s);
      const order = op.order < 0 ? BOGUS_ORDER : orders[op.order % Math.max(1, orders.length)]?.order_id;
      if (order === undefined) return { kind: 'nothing' };
      if (op.kind === 'cancel') return { kind: 'cancel', orderId: order, restock: op.restock };
      return { kind: 'confirm', orderId: order, reference: `pay_${op.order}` };
    }
    case 'replay': {
      const record = s.records[op.index % Math.max(1, s.records.length)];
      if (!record) return { kind: 'nothing' };
      if (!op.elsewhere) return record.call;
      const next =
        CHANNELS[(CHANNELS.indexOf(record.channel as (typeof CHANNELS)[number]) + 1) % CHANNELS.length];
      return { ...record.call, channel: next as string };
    }
    default:
      return op;
  }
}

/** The request a key is bound to: a replay must match it, or the key is in conflict. */
function fingerprint(call: AddCall | CheckoutCall): string {
  return JSON.stringify(call.kind === 'add' ? [call.sku, call.quantity, call.cartId ?? null] : [call.cartId]);
}

function recordOf(s: MState, call: AddCall | CheckoutCall): MRecord | undefined {
  const tool = call.kind === 'add' ? 'add_to_cart' : 'checkout';
  return s.records.find((r) => r.channel === call.channel && r.tool === tool && r.key === call.key);
}

/** How a keyed call meets its key: first use, a replay of the same request, or a conflict. */
function keyUse(s: MState, call: Call): 'fresh' | 'replayed' | 'conflict' | undefined {
  if ((call.kind !== 'add' && call.kind !== 'checkout') || call.key === undefined) return undefined;
  const record = recordOf(s, call);
  if (!record) return 'fresh';
  return fingerprint(record.call) === fingerprint(call) ? 'replayed' : 'conflict';
}

// ---------------------------------------------------------------- predictions

/** Tracked lines that hold less than their quantity. */
const unheld = (s: MState, cart: MCart) =>
  sortedSkus(cart).filter(
    (sku) => tracked(s, sku) && (cart.lines[sku] as MLine).held < (cart.lines[sku] as MLine).quantity,
  );

/**
 * Makes every tracked line of a cart hold its full quantity again (all or nothing: the caller drops the
 * state on a refusal), in SKU order. `everyLine` (reviving, checkout): every line's product must still be
 * sold; otherwise only the lines that hold less than their quantity are looked at.
 */
function rehold(
  s: MState,
  cart: MCart,
  everyLine: boolean,
): { unknown?: string; short: Short[]; units: number } {
  const short: Short[] = [];
  let units = 0;
  // A swept cart being revived holds again, so its holds count in `reserved` like any open cart's.
  cart.status = 'open';
  for (const sku of sortedSkus(cart)) {
    const line = cart.lines[sku] as MLine;
    if (!everyLine && line.held === line.quantity) continue;
    if (!s.products[sku]?.active) return { unknown: sku, short, units };
    if (!tracked(s, sku) || line.held === line.quantity) continue;
    releaseExpired(s, sku, cart.id);
    const free = (s.products[sku]?.onHand ?? 0) - rowReserved(s, sku);
    const need = line.quantity - line.held;
    if (free < need) {
      short.push({ sku, requested: line.quantity, available: Math.max(0, free) + line.held });
      continue;
    }
    units += need;
    line.held = line.quantity;
  }
  return { short, units };
}

/** Each predictor mutates `s` as the store would on success; on a refusal the caller drops `s`. */
function predictAdd(s: MState, call: AddCall, newCartId: string | undefined): Outcome {
  const product = s.products[call.sku];
  if (!product?.active) return refused('UNKNOWN_SKU', { sku: call.sku });
  let cart: MCart;
  let reviving = false;
  let revived = 0;
  if (call.cartId === undefined) {
    cart = {
      id: newCartId ?? '(the store made no cart)',
      channel: call.channel,
      status: 'open',
      currency: product.currency,
      createdAt: s.now,
      expiresAt: s.now + TTL,
      lines: {},
      order: null,
    };
  } else {
    const found = s.carts.find((c) => c.id === call.cartId && c.channel === call.channel);
    if (!found) return refused('CART_NOT_FOUND', { cart_id: call.cartId });
    cart = found;
    if (cart.status === 'checked_out' || cart.status === 'released') {
      return refused('CART_CLOSED', { cart_id: cart.id, status: cart.status });
    }
    if (cart.currency !== product.currency) {
      return refused('CURRENCY_MISMATCH', {
        sku: call.sku,
        currency: product.currency,
        cart_currency: cart.currency,
      });
    }
    // Reviving holds every line again; a live cart holds again any line that lost its hold (decisions.md:
    // an open cart's tracked lines hold in full).
    reviving = effectiveStatus(s, cart) === 'expired';
    if (reviving || unheld(s, cart).length > 0) {
      const result = rehold(s, cart, reviving);
      if (result.unknown !== undefined) return refused('UNKNOWN_SKU', { sku: result.unknown });
      if (result.short.length > 0) return outOfStock(result.short);
      revived = result.units;
    }
  }
  const existing = cart.lines[call.sku]?.quantity ?? 0;
  if (existing + call.quantity > LIMITS.maxLineQuantity) {
    return refused('LIMIT_EXCEEDED', { cap: 'per_line', limit: LIMITS.maxLineQuantity });
  }
  const units = sum(Object.values(cart.lines).map((line) => line.quantity));
  if (units + call.quantity > LIMITS.maxCartQuantity) {
    return refused('LIMIT_EXCEEDED', { cap: 'per_cart', limit: LIMITS.maxCartQuantity });
  }
  const held = product.track_stock ? call.quantity : 0;
  if (product.track_stock) {
    releaseExpired(s, call.sku, cart.id);
    const free = product.onHand - rowReserved(s, call.sku);
    if (free < call.quantity) {
      return outOfStock([{ sku: call.sku, requested: call.quantity, available: Math.max(0, free) }]);
    }
  }
  const line = cart.lines[call.sku] ?? { quantity: 0, held: 0 };
  line.quantity += call.quantity;
  line.held += held;
  cart.lines[call.sku] = line;
  // The cap counts what the channel's live carts hold once this call has reserved (and revived) its units;
  // a revived cart counts in full even when nothing had released its holds.
  if (held + revived > 0 || reviving) {
    const others = s.carts.filter((c) => c.channel === call.channel && c.id !== cart.id && isLive(s, c));
    // Orders awaiting payment count against their channel's cap until pay_by.
    const unpaid = ordersOf(s).filter(
      (order) =>
        order.channel === call.channel && order.status === 'awaiting_payment' && !isOverdue(s, order),
    );
    const parked = sum(unpaid.map((order) => sum(Object.values(order.held))));
    const load = sum(others.map(cartHeld)) + cartHeld(cart) + parked;
    if (load > LIMITS.maxChannelReserved) {
      return refused('LIMIT_EXCEEDED', { cap: 'per_channel', limit: LIMITS.maxChannelReserved });
    }
  }
  cart.status = 'open';
  cart.expiresAt = s.now + TTL;
  if (call.cartId === undefined) s.carts.push(cart);
  return ok(cartView(s, cart));
}

function predictCheckout(s: MState, call: CheckoutCall, newOrderId: string | undefined): Outcome {
  const cart = s.carts.find((c) => c.id === call.cartId && c.channel === call.channel);
  if (!cart) return refused('CART_NOT_FOUND', { cart_id: call.cartId });
  // Checkout is idempotent on the cart: a repeat returns the same order, as it is now.
  if (cart.status === 'checked_out') return ok(orderView(s, cart.order as MOrder));
  if (cart.status === 'released') return refused('CART_CLOSED', { cart_id: cart.id, status: 'released' });
  if (sortedSkus(cart).length === 0) return refused('CART_EMPTY', { cart_id: cart.id });
  const result = rehold(s, cart, true);
  if (result.unknown !== undefined) return refused('UNKNOWN_SKU', { sku: result.unknown });
  if (result.short.length > 0) return outOfStock(result.short);
  const lines: LineView[] = [];
  // A payment channel's order takes over the cart's holds; any other is the sale.
  const paying = call.channel === PAYMENT_CHANNEL;
  const held: Record<string, number> = {};
  for (const sku of sortedSkus(cart)) {
    const line = cart.lines[sku] as MLine;
    const product = s.products[sku] as MProduct;
    if (product.currency !== cart.currency) {
      return refused('CURRENCY_MISMATCH', { sku, currency: product.currency, cart_currency: cart.currency });
    }
    if (paying) held[sku] = line.held;
    else if (product.track_stock) product.onHand -= line.quantity;
    line.held = 0;
    const price = product.price_minor;
    lines.push({
      sku,
      name: product.name,
      quantity: line.quantity,
      unit_price_minor: price,
      line_total_minor: line.quantity * price,
    });
  }
  cart.status = 'checked_out';
  cart.order = {
    order_id: newOrderId ?? '(the store made no order)',
    cart_id: cart.id,
    channel: call.channel,
    lines,
    total_minor: sum(lines.map((line) => line.line_total_minor)),
    currency: cart.currency,
    created_at: iso(s.now),
    createdAt: s.now,
    status: paying ? 'awaiting_payment' : 'paid',
    held,
    payBy: paying ? s.now + PAYMENT_WINDOW : null,
    paidAt: paying ? null : s.now,
    cancelledAt: null,
    cancelReason: null,
    reference: null,
    needsRefund: false,
  };
  s.orders += 1;
  return ok(orderView(s, cart.order));
}

const orderById = (s: MState, orderId: string) => ordersOf(s).find((order) => order.order_id === orderId);

/** Frees what an order holds. */
function releaseOrder(order: MOrder): void {
  for (const sku of Object.keys(order.held)) order.held[sku] = 0;
}

/**
 * confirm_payment: an order awaiting payment (past pay_by too, if not swept) is sold; one cancelled for timeout
 * takes its units again from what is free now, else stays cancelled with needs_refund; paid or flagged: unchanged;
 * cancelled by the merchant: ORDER_CLOSED.
 */
function predictConfirm(s: MState, call: Extract<Call, { kind: 'confirm' }>): Outcome {
  const order = orderById(s, call.orderId);
  if (!order) return refused('ORDER_NOT_FOUND', { order_id: call.orderId });
  if (order.status === 'paid' || (order.status === 'cancelled' && order.needsRefund)) {
    s.note = 'repeat';
    return ok(orderView(s, order));
  }
  if (order.status === 'cancelled' && order.cancelReason === 'merchant') {
    return refused('ORDER_CLOSED', { order_id: order.order_id, status: 'cancelled' });
  }
  const late = order.status === 'cancelled' || isOverdue(s, order);
  const skus = order.lines.map((line) => line.sku).sort();
  let short = false;
  for (const sku of skus) {
    if (!tracked(s, sku)) continue;
    const quantity = order.lines.find((line) => line.sku === sku)?.quantity ?? 0;
    const need = quantity - (order.held[sku] ?? 0);
    if (need <= 0) continue;
    releaseExpired(s, sku, order.cart_id);
    if (need > (s.products[sku] as MProduct).onHand - rowReserved(s, sku)) short = true;
  }
  order.reference = call.reference;
  if (short) {
    releaseOrder(order);
    if (order.status !== 'cancelled') {
      order.cancelledAt = order.payBy ?? s.now;
      order.cancelReason = 'payment_timeout';
    }
    order.status = 'cancelled';
    order.needsRefund = true;
    s.note = 'needs_refund';
    return ok(orderView(s, order));
  }
  for (const sku of skus) {
    const quantity = order.lines.find((line) => line.sku === sku)?.quantity ?? 0;
    if (tracked(s, sku)) (s.products[sku] as MProduct).onHand -= quantity;
  }
  releaseOrder(order);
  order.status = 'paid';
  order.paidAt = s.now;
  order.cancelledAt = null;
  order.cancelReason = null;
  s.note = late ? 'late' : 'on_time';
  return ok(orderView(s, order));
}

/** cancel_order by the merchant: an unpaid order's holds freed; a paid one's units returned with restock. */
function predictCancel(s: MState, call: Extract<Call, { kind: 'cancel' }>): Outcome {
  const order = orderById(s, call.orderId);
  if (!order) return refused('ORDER_NOT_FOUND', { order_id: call.orderId });
  if (order.status === 'cancelled') return ok(orderView(s, order));
  if (order.status === 'paid') {
    if (call.restock) {
      for (const line of order.lines) {
        if (tracked(s, line.sku)) (s.products[line.sku] as MProduct).onHand += line.quantity;
      }
    }
  } else releaseOrder(order);
  order.status = 'cancelled';
  order.cancelledAt = s.now;
  order.cancelReason = 'merchant';
  return ok(orderView(s, order));
}

/** The sweep of orders past pay_by: their units go back, each cancelled for timeout as of its pay_by. */
function predictSweepOrders(s: MState): Outcome {
  let orders = 0;
  let units = 0;
  for (const order of ordersOf(s)) {
    if (!isOverdue(s, order)) continue;
    orders += 1;
    units += sum(Object.values(order.held));
    releaseOrder(order);
    order.status = 'cancelled';
    order.cancelledAt = order.payBy;
    order.cancelReason = 'payment_timeout';
  }
  return ok({ orders, units });
}

function predictRelease(s: MState, call: Extract<Call, { kind: 'release' }>): Outcome {
  const cart = s.carts.find((c) => c.id === call.cartId && c.channel === call.channel);
  if (!cart) return refused('CART_NOT_FOUND', { cart_id: call.cartId });
  if (cart.status === 'checked_out')
    return refused('CART_CLOSED', { cart_id: cart.id, status: 'checked_out' });
  // Releasing a released cart is a no-op, so a retry is safe.
  if (cart.status === 'released') return ok({ cart: cartView(s, cart), released: [] });
  const released: { sku: string; quantity: number }[] = [];
  for (const sku of sortedSkus(cart)) {
    const line = cart.lines[sku] as MLine;
    if (call.sku !== undefined && sku !== call.sku) continue;
    released.push({ sku, quantity: line.quantity });
    line.held = 0;
    if (call.sku !== undefined) delete cart.lines[sku];
  }
  if (call.sku === undefined) cart.status = 'released';
  return ok({ cart: cartView(s, cart), released });
}

function predictRestock(s: MState, call: Extract<Call, { kind: 'restock' }>): Outcome {
  const product = s.products[call.sku];
  if (!product) return refused('UNKNOWN_SKU', { sku: call.sku });
  product.onHand += call.quantity;
  return ok(stockLevel(s, call.sku));
}

/** set_stock and each import row: frees the SKU's expired holds, then refuses below what is still reserved. */
function setOnHand(s: MState, sku: string, onHand: number): Outcome | undefined {
  releaseExpired(s, sku);
  const reserved = rowReserved(s, sku);
  if (onHand < reserved) return refused('BELOW_RESERVED', { sku, requested: onHand, reserved });
  (s.products[sku] as MProduct).onHand = onHand;
  return undefined;
}

function predictSetStock(s: MState, call: Extract<Call, { kind: 'setStock' }>): Outcome {
  if (!s.products[call.sku]) return refused('UNKNOWN_SKU', { sku: call.sku });
  return setOnHand(s, call.sku, call.quantity) ?? ok(stockLevel(s, call.sku));
}

/** Creates or updates a product (decisions.md: what it keeps, when track_stock and currency may change). */
function upsert(s: MState, input: ProductInput): Outcome | undefined {
  const existing = s.products[input.sku];
  const trackStock = input.track_stock ?? existing?.track_stock ?? true;
  if (existing && existing.track_stock !== trackStock) {
    releaseExpired(s, input.sku);
    if (rowReserved(s, input.sku) > 0) return refused('INVALID_INPUT', { field: 'track_stock' });
    // A live cart's line of it holds nothing, and would break the rule that open carts' tracked lines hold.
    const live = s.carts.filter((cart) => isLive(s, cart) && cart.lines[input.sku] !== undefined);
    if (trackStock && live.length > 0) return refused('INVALID_INPUT', { field: 'track_stock' });
  }
  if (existing && existing.currency !== input.currency) {
    const holding = s.carts.filter(
      (cart) => (cart.status === 'open' || cart.status === 'expired') && cart.lines[input.sku] !== undefined,
    );
    if (holding.length > 0) return refused('INVALID_INPUT', { field: 'currency' });
  }
  s.products[input.sku] = {
    name: input.name,
    description: input.description === undefined ? (existing?.description ?? null) : input.description,
    price_minor: input.price_minor,
    currency: input.currency,
    track_stock: trackStock,
    active: input.active ?? existing?.active ?? true,
    onHand: existing?.onHand ?? 0,
  };
  return undefined;
}

function predictUpsert(s: MState, call: Extract<Call, { kind: 'upsert' }>): Outcome {
  if (call.invalid !== undefined) return refused('INVALID_INPUT', { field: call.invalid });
  return upsert(s, call.product) ?? ok(productView(s, call.product.sku));
}

function predictImport(s: MState, call: Extract<Call, { kind: 'import' }>): Outcome {
  // Every row is checked before the store is touched; the first bad one is named.
  if (call.invalid !== undefined) return refused('INVALID_INPUT', call.invalid);
  const result = {
    created: 0,
    updated: 0,
    stock: [] as { sku: string; before: number | null; file: number | null; after: number }[],
  };
  for (const [index, row] of call.rows.entries()) {
    const before = s.products[row.sku]?.onHand ?? null;
    // The re-import rule (decisions.md): a new product takes the file's stock; an existing one keeps
    // its on-hand unless setStock asks for the file's figure.
    const target = before === null ? (row.stock ?? 0) : call.setStock ? row.stock : undefined;
    const refusal = upsert(s, row) ?? (target === undefined ? undefined : setOnHand(s, row.sku, target));
    if (refusal && !refusal.ok) return refused(refusal.code, { ...refusal.details, row: index + 1 });
    result[before !== null ? 'updated' : 'created'] += 1;
    const after = (s.products[row.sku] as MProduct).onHand;
    result.stock.push({ sku: row.sku, before, file: row.stock ?? null, after });
  }
  return ok(result);
}

function predictSweep(s: MState): Outcome {
  let carts = 0;
  let units = 0;
  for (const cart of s.carts) {
    if (!isExpiredOpen(s, cart)) continue;
    carts += 1;
    units += cartHeld(cart);
    for (const line of Object.values(cart.lines)) line.held = 0;
    cart.status = 'expired';
  }
  return ok({ carts, units });
}

/** A keyed add or checkout: a replay returns the recorded result, a conflict is refused, a first use is recorded. */
function keyed(s: MState, call: AddCall | CheckoutCall, run: () => Outcome): Outcome {
  if (call.key === undefined) return run();
  const record = recordOf(s, call);
  if (record) {
    if (fingerprint(record.call) !== fingerprint(call))
      return refused('IDEMPOTENCY_CONFLICT', { key: call.key });
    // A checkout's repeat answers with its order as it is now (paid or cancelled since).
    const recorded = record.result;
    if (call.kind === 'checkout' && recorded.ok) {
      const order = orderById(s, (recorded.value as { order_id: string }).order_id);
      if (order) return ok(orderView(s, order));
    }
    return recorded;
  }
  const outcome = run();
  // Only successes are kept: a refused call may be retried with the same key.
  if (outcome.ok) {
    const tool = call.kind === 'add' ? 'add_to_cart' : 'checkout';
    s.records.push({ channel: call.channel, tool, key: call.key, call, result: outcome });
  }
  return outcome;
}

function predict(s: MState, call: Call, actual: Outcome): Outcome {
  const value = (actual.ok ? actual.value : {}) as { cart_id?: string; order_id?: string };
  switch (call.kind) {
    case 'add':
      return keyed(s, call, () => predictAdd(s, call, value.cart_id));
    case 'checkout':
      return keyed(s, call, () => predictCheckout(s, call, value.order_id));
    case 'release':
      return predictRelease(s, call);
    case 'restock':
      return predictRestock(s, call);
    case 'setStock':
      return predictSetStock(s, call);
    case 'upsert':
      return predictUpsert(s, call);
    case 'import':
      return predictImport(s, call);
    case 'sweep':
      return predictSweep(s);
    case 'confirm':
      return predictConfirm(s, call);
    case 'cancel':
      return predictCancel(s, call);
    case 'sweepOrders':
      return predictSweepOrders(s);
    case 'advance':
      s.now += call.ms;
      return ok(undefined);
    case 'nothing':
      return ok(undefined);
  }
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

function perform(store: InventoryStore, call: Call): Promise<unknown> {
  switch (call.kind) {
    case 'add':
      return store.addToCart(
        { channel: call.channel },
        { sku: call.sku, quantity: call.quantity, cartId: call.cartId, idempotencyKey: call.key },
      );
    case 'checkout':
      return store.checkout({ channel: call.channel }, { cartId: call.cartId, idempotencyKey: call.key });
    case 'release':
      return store.releaseCart({ channel: call.channel }, { cartId: call.cartId, sku: call.sku });
    case 'restock':
      return store.restock(ADMIN, { sku: call.sku, quantity: call.quantity });
    case 'setStock':
      return store.setStock(ADMIN, { sku: call.sku, quantity: call.quantity });
    case 'upsert':
      return store.upsertProduct(ADMIN, call.product);
    case 'import':
      return store.importProducts(ADMIN, call.rows, { setStock: call.setStock });
    case 'sweep':
      return store.sweepExpired(call.batch);
    case 'confirm':
      return store.confirmPayment(MERCHANT, { orderId: call.orderId, reference: call.reference });
    case 'cancel':
      return store.cancelOrder(MERCHANT, { orderId: call.orderId, restock: call.restock });
    case 'sweepOrders':
      return store.sweepOverdueOrders();
    case 'advance':
    case 'nothing':
      return Promise.resolve(undefined);
  }
}

function label(call: Call, outcome: Outcome, use: ReturnType<typeof keyUse>, note?: string): string {
  let kind: string = call.kind;
  if (call.kind === 'release' && call.sku) kind = 'release(sku)';
  if (call.kind === 'checkout' && call.channel === PAYMENT_CHANNEL) kind = 'checkout(payment)';
  if (call.kind === 'cancel' && call.restock) kind = 'cancel(restock)';
  // How a payment went: on time, late (sold after pay_by), needs_refund (late, the units gone), or a repeat.
  if (call.kind === 'confirm' && outcome.ok) return `confirm:${note}`;
  // Input broken on purpose is told apart from a well-formed call that a rule refuses.
  if ((call.kind === 'upsert' || call.kind === 'import') && call.invalid !== undefined) kind += '(broken)';
  if (use === 'replayed') return `${kind}:replayed`;
  let detail = '';
  if (!outcome.ok && outcome.code === 'LIMIT_EXCEEDED') detail = `:${String(outcome.details.cap)}`;
  if (!outcome.ok && outcome.code === 'INVALID_INPUT') detail = `:${String(outcome.details.field)}`;
  // A refusal naming several short lines (a revived cart, a checkout) is a case of its own.
  if (!outcome.ok && outcome.code === 'OUT_OF_STOCK' && outcome.details.lines) detail = ':lines';
  return `${kind}:${outcome.ok ? 'ok' : outcome.code}${detail}`;
}

/** Deep equality with a cheap path: most steps agree, and vitest's matchers cost more than the store calls. */
function same(actual: unknown, expected: unknown, what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual, what).toEqual(expected);
}

const pickLines = (lines: LineView[]) =>
  lines.map(({ sku, name, quantity, unit_price_minor, line_total_minor }) => ({
    sku,
    name,
    quantity,
    unit_price_minor,
    line_total_minor,
  }));

/** The fields of a cart view the model predicts (all but the display string), in cartView's key order. */
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

/** The fields of an order the model predicts, in orderView's key order. */
function pickOrder(view: OrderView) {
  const { order_id, cart_id, status, lines, total_minor, currency, created_at, pay_by, paid_at } = view;
  const { cancelled_at, cancel_reason, needs_refund, payment_reference } = view;
  return {
    order_id,
    cart_id,
    status,
    lines: pickLines(lines),
    total_minor,
    currency,
    created_at,
    pay_by,
    paid_at,
    cancelled_at,
    cancel_reason,
    needs_refund,
    payment_reference,
  };
}

function pickLevel({ sku, name, on_hand, reserved, available, track_stock, active }: StockLevel) {
  return { sku, name, on_hand, reserved, available, track_stock, active };
}

function pickProduct({ sku, name, description, price_minor, currency, available, in_stock }: ProductView) {
  return { sku, name, description, price_minor, currency, available, in_stock };
}

/** The fields of a call's result the model predicts; refusals compare in full. */
function normalize(call: Call, outcome: Outcome): Outcome {
  if (!outcome.ok) return outcome;
  switch (call.kind) {
    case 'add':
      return ok(pickCart(outcome.value as CartView));
    case 'checkout':
    case 'confirm':
    case 'cancel':
      return ok(pickOrder(outcome.value as OrderView));
    case 'sweepOrders': {
      const { orders, units } = outcome.value as { orders: number; units: number };
      return ok({ orders, units });
    }
    case 'release': {
      const { cart, released } = outcome.value as ReleaseResult;
      return ok({ cart: pickCart(cart), released });
    }
    case 'restock':
    case 'setStock':
      return ok(pickLevel(outcome.value as StockLevel));
    case 'upsert':
      return ok(pickProduct(outcome.value as ProductView));
    case 'import': {
      const { created, updated, stock } = outcome.value as ImportResult;
      return ok({ created, updated, stock });
    }
    case 'sweep': {
      const { carts, units } = outcome.value as SweepResult;
      return ok({ carts, units });
    }
    default:
      return outcome;
  }
}

/**
 * Everything a caller can observe, read through `store`, next to what the model says it should be:
 * every SKU, the audit, and `carts` (by default all of them).
 */
async function expectSameState(
  s: MState,
  real: Real,
  store: InventoryStore,
  carts: MCart[] = s.carts,
): Promise<void> {
  same(real.clock.now(), s.now, 'clock');
  const known = SKUS.filter((sku) => s.products[sku] !== undefined);
  const onSale = known.filter((sku) => s.products[sku]?.active);
  // Each step asks one of the searches in turn: they cover the terms, the exact-SKU ranking and the filter.
  const search = SEARCHES[real.stats.steps % SEARCHES.length] as SearchQuery;
  const [views, stock, levels, found, report, orders] = await Promise.all([
    Promise.all(carts.map((cart) => store.getCart({ channel: cart.channel }, cart.id))),
    store.checkStock([...SKUS, UNKNOWN]),
    store.stockLevels(),
    store.searchProducts(search),
    store.audit(),
    store.listOrders({ limit: 1_000 }),
  ]);
  const byId = (a: { order_id: string }, b: { order_id: string }) => (a.order_id < b.order_id ? -1 : 1);
  same(
    orders.map(pickOrder).sort(byId),
    ordersOf(s)
      .map((order) => orderView(s, order))
      .sort(byId),
    'orders',
  );
  same(
    views.map(pickCart),
    carts.map((cart) => cartView(s, cart)),
    'get_cart',
  );
  same(
    { products: stock.products.map(pickProduct), unknown_skus: stock.unknown_skus },
    {
      products: onSale.map((sku) => productView(s, sku)),
      unknown_skus: [...SKUS, UNKNOWN].filter((sku) => !onSale.includes(sku)),
    },
    'check_stock',
  );
  same(
    levels.map(pickLevel),
    known.map((sku) => stockLevel(s, sku)),
    'stock levels',
  );
  same(found.map(pickProduct), searchResult(s, search), `search_products ${JSON.stringify(search)}`);
  same(
    { ok: report.ok, violations: report.violations, ...report.checked, movements: undefined },
    {
      ok: true,
      violations: [],
      products: known.length,
      carts: s.carts.length,
      orders: s.orders,
      movements: undefined,
    },
    'audit',
  );
}

class Step implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly op: Op,
    /** Which of the two instances takes the write; the other one reads the result back. */
    readonly via: 0 | 1 = 0,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: Model, real: Real): Promise<void> {
    real.stats.steps += 1;
    const before = model.state;
    const call = concretize(before, this.op);
    const actual = await attempt(() => perform(real.stores[this.via], call));
    if (call.kind === 'advance') real.clock.advance(call.ms);
    const next = structuredClone(before);
    const use = keyUse(before, call);
    const expected = predict(next, call, actual);
    const key = label(call, expected, use, next.note);
    next.note = undefined;
    model.log.push(key);
    real.stats.outcomes.set(key, (real.stats.outcomes.get(key) ?? 0) + 1);
    real.stats.outcomes.set(`via:${this.via}`, (real.stats.outcomes.get(`via:${this.via}`) ?? 0) + 1);
    same(normalize(call, actual), expected, `${JSON.stringify(call)} via ${this.via} at ${iso(before.now)}`);
    if (expected.ok) model.state = next;
    // Every cart that was in play before this step or opened in it. A final (checked-out or released)
    // cart is compared in the step that closes it and again, with all the others, when the run ends.
    const after = model.state;
    const watched = after.carts.filter((_cart, i) => {
      const was = before.carts[i];
      return was === undefined || inPlay(was);
    });
    await expectSameState(after, real, real.stores[this.via === 0 ? 1 : 0], watched);
  }

  toString(): string {
    return `${JSON.stringify(this.op)} via ${this.via}`;
  }
}

/**
 * Several writes sent at once through one instance, so that they share a group commit on SQLite (one batch, each
 * call in its own savepoint). The store runs a batch in the order the calls arrived, so the model predicts them
 * one after another in that order, except a sold-out add refused without the lock, which is decided on the state
 * before the group; carts are resolved against the state before the group.
 */
class Together implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly ops: Op[],
    readonly via: 0 | 1 = 0,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: Model, real: Real): Promise<void> {
    const before = model.state;
    const calls = this.ops.map((op) => concretize(before, op));
    const store = real.stores[this.via];
    const counted = store instanceof SqliteStore ? store.groupCommitStats() : undefined;
    // Every call is submitted in this same tick, before any of them is answered.
    const actuals = await Promise.all(calls.map((call) => attempt(() => perform(store, call))));
    if (counted && store instanceof SqliteStore) {
      const after = store.groupCommitStats();
      // Fewer transactions than writes: at least two calls of the group shared one.
      if (after.writes - counted.writes > after.batches - counted.batches) {
        real.stats.outcomes.set('together:shared', (real.stats.outcomes.get('together:shared') ?? 0) + 1);
      }
    }
    calls.forEach((call, i) => {
      real.stats.steps += 1;
      const actual = actuals[i] as Outcome;
      // A sold-out add into a new cart without a key is refused without the lock, from what was committed when it
      // was sent: the state before the group, ahead of the writes sent before it.
      const lockFree =
        call.kind === 'add' && call.cartId === undefined && call.key === undefined
          ? predict(structuredClone(before), call, actual)
          : undefined;
      const refusedEarly =
        lockFree && !lockFree.ok && lockFree.code === 'OUT_OF_STOCK' ? lockFree : undefined;
      const next = structuredClone(model.state);
      const use = keyUse(model.state, call);
      const expected = refusedEarly ?? predict(next, call, actual);
      const key = label(call, expected, use, next.note);
      next.note = undefined;
      model.log.push(`${key} (together${refusedEarly ? ', without the lock' : ''})`);
      if (
        refusedEarly &&
        JSON.stringify(predict(structuredClone(model.state), call, actual)) !== JSON.stringify(refusedEarly)
      ) {
        // The case the arrival order alone would get wrong: an earlier write of the group changed the answer.
        // Counted for the log (a few per 10,000 steps), too rare to require.
        real.stats.outcomes.set(
          'together:lock-free',
          (real.stats.outcomes.get('together:lock-free') ?? 0) + 1,
        );
      }
      real.stats.outcomes.set(key, (real.stats.outcomes.get(key) ?? 0) + 1);
      same(
        normalize(call, actual),
        expected,
        `${JSON.stringify(call)}, call ${i + 1} of ${calls.length} sent together via ${this.via}`,
      );
      if (expected.ok) model.state = next;
    });
    const after = model.state;
    const watched = after.carts.filter((_cart, i) => {
      const was = before.carts[i];
      return was === undefined || inPlay(was);
    });
    await expectSameState(after, real, real.stores[this.via === 0 ? 1 : 0], watched);
  }

  toString(): string {
    return `together(${this.ops.map((op) => JSON.stringify(op)).join(', ')}) via ${this.via}`;
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
/** About one call in three carries a key. */
const key = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom(...KEYS) },
);
/** Mostly an order made so far; one draw in twenty names none. */
const orderIndex = fc.oneof(
  { weight: 19, arbitrary: fc.nat(2 * MAX_IN_PLAY) },
  { weight: 1, arbitrary: fc.constant(-1) },
);
const advance = fc.oneof(fc.constantFrom(1, TTL - 1, TTL, TTL + 1), fc.integer({ min: 1, max: 2 * TTL }));
const quantity = (max: number) => fc.integer({ min: 1, max });

const product: fc.Arbitrary<ProductInput> = fc.record({
  sku: fc.constantFrom(...SKUS),
  name: fc.constantFrom('Mark I', 'Mark II'),
  description: fc.constantFrom(undefined, null, 'Soft and warm'),
  price_minor: fc.constantFrom(0, 250, 1000, 2000),
  // Mostly EUR, the catalog's currency: a change is tried often, and refused while carts hold the product.
  currency: fc.constantFrom('EUR', 'EUR', 'USD'),
  track_stock: fc.constantFrom(undefined, undefined, true, false),
  // Deactivation is rarer than reactivation, so most of the catalog stays on sale.
  active: fc.constantFrom(
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    true,
    true,
    true,
    false,
  ),
});
/** One draw in six is the value, the rest null. */
const rarely = <T>(value: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: value });
/** One field broken the way a careless caller would; the store must refuse it and change nothing. */
const breakage = fc.constantFrom(
  { field: 'name', patch: { name: '   ' } },
  { field: 'price_minor', patch: { price_minor: -1 } },
  { field: 'currency', patch: { currency: 'EURO' } },
  { field: 'sku', patch: { sku: 'no spaces' } },
);
const upsertOp = fc
  .tuple(product, rarely(breakage))
  .map(
    ([input, broken]): Op =>
      broken
        ? { kind: 'upsert', product: { ...input, ...broken.patch }, invalid: broken.field }
        : { kind: 'upsert', product: input },
  );
const importRow: fc.Arbitrary<ImportRow> = fc
  .tuple(product, fc.integer({ min: 0, max: 6 }))
  .map(([input, stock]) => ({ ...input, stock }));
const importOp = fc
  .tuple(
    fc.array(importRow, { minLength: 1, maxLength: 3 }),
    fc.boolean(),
    rarely(fc.tuple(fc.nat(2), fc.oneof(breakage, fc.constant({ field: 'stock', patch: { stock: -1 } })))),
  )
  .map(([rows, setStock, broken]): Op => {
    if (!broken) return { kind: 'import', rows, setStock };
    const [at, { field, patch }] = broken;
    const index = at % rows.length;
    const damaged = rows.map((row, i) => (i === index ? { ...row, ...patch } : row));
    return { kind: 'import', rows: damaged, setStock, invalid: { field, row: index + 1 } };
  });

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      channel,
      cart: cartRef,
      sku,
      quantity: quantity(5),
      key,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('checkout' as const), channel, cart: cartRef, key }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), channel, cart: cartRef }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), channel, cart: cartRef, sku }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('replay' as const),
      index: fc.nat(20),
      elsewhere: fc.boolean().chain((other) => (other ? fc.boolean() : fc.constant(false))),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: advance }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('sweep' as const), batch: fc.integer({ min: 1, max: 3 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restock' as const), sku, quantity: quantity(4) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('setStock' as const),
      sku,
      quantity: fc.integer({ min: 0, max: 6 }),
    }),
  },
  { weight: 2, arbitrary: upsertOp },
  { weight: 1, arbitrary: importOp },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('confirm' as const), order: orderIndex }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('cancel' as const), order: orderIndex, restock: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'sweepOrders' as const }) },
);
const step: fc.Arbitrary<Step> = fc
  .tuple(op, fc.constantFrom(0 as const, 1 as const))
  .map(([drawn, via]) => new Step(drawn, via));
/** Writes that may share a transaction: no clock advance, and no sweep (it may take several transactions). */
const togetherOp = op.filter(
  (drawn) => drawn.kind !== 'advance' && drawn.kind !== 'sweep' && drawn.kind !== 'sweepOrders',
);
const togetherStep: fc.Arbitrary<Together> = fc
  .tuple(fc.array(togetherOp, { minLength: 2, maxLength: 6 }), fc.constantFrom(0 as const, 1 as const))
  .map(([ops, via]) => new Together(ops, via));

// ---------------------------------------------------------------- the stores

const STORE_OPTIONS: Omit<StoreOptions, 'clock'> = {
  reservationTtlMs: TTL,
  // The model knows no max hold: it is out of reach here (a year), and the contract suite tests it.
  maxHoldMs: 365 * 24 * 60 * 60_000,
  limits: LIMITS,
  lockTimeoutMs: 5_000,
  paymentWindowMs: PAYMENT_WINDOW,
  // Durability is not under test here; NORMAL keeps ten thousand commits fast.
  synchronous: 'NORMAL',
  // A step's reads run side by side; three lanes of two instances stay well inside max_connections.
  poolSize: 2,
};

/** Two instances of one kind of store on one database. */
interface Backend {
  /** Before the first run and after the last (every lane's at once). */
  setup?(): Promise<void>;
  teardown(): Promise<void>;
  /** Two instances on an emptied database holding MODEL_CATALOG, their shared clock at T0. */
  fresh(stats: Stats): Promise<Real>;
  /** Ends what `fresh` began. */
  done(real: Real): Promise<void>;
}

function initialState(): MState {
  const products: Record<string, MProduct> = {};
  for (const row of MODEL_CATALOG) {
    products[row.sku] = {
      name: row.name,
      description: row.description ?? null,
      price_minor: row.price_minor,
      currency: row.currency,
      track_stock: row.track_stock ?? true,
      active: row.active ?? true,
      onHand: row.stock ?? 0,
    };
  }
  return { now: T0, products, carts: [], orders: 0, records: [] };
}

function sqliteBackend(): Backend {
  let root: string | undefined;
  const dirs = new WeakMap<Real, string>();
  let counter = 0;
  return {
    async setup() {
      root = mkdtempSync(join(tmpdir(), 'stocklock-model-'));
    },
    async teardown() {
      if (root) rmSync(root, { recursive: true, force: true });
    },
    async fresh(stats) {
      if (!root) throw new Error('setup() has not run');
      const dir = join(root, String(++counter));
      mkdirSync(dir);
      const clock = new ManualClock(T0);
      const path = join(dir, 'stocklock.db');
      // Two connections to one file, as two processes would have: each its own statements and writers queue.
      const stores: [InventoryStore, InventoryStore] = [
        openSqliteStore(path, { ...STORE_OPTIONS, clock }),
        openSqliteStore(path, { ...STORE_OPTIONS, clock }),
      ];
      await stores[0].importProducts(ADMIN, MODEL_CATALOG);
      await stores[0].setCheckoutMode(PAYMENT_CHANNEL, 'payment');
      const real = { stores, clock, stats };
      dirs.set(real, dir);
      return real;
    },
    async done(real) {
      await Promise.all(real.stores.map((store) => store.close()));
      rmSync(dirs.get(real) as string, { recursive: true, force: true });
    },
  };
}

function postgresBackend(oneStatement: boolean): Backend {
  // Two servers of one pool with one clock: expiry is decided alike whichever instance a call reaches.
  const clock = new ManualClock(T0);
  let db: TestDatabase | undefined;
  let stores: [InventoryStore, InventoryStore] | undefined;
  return {
    async setup() {
      db = await createTestDatabase('stocklock_model');
      // One migrates first; the second then finds nothing to do.
      const options = { ...STORE_OPTIONS, clock, oneStatement };
      const first = await openPostgresStore(db.url, options);
      stores = [first, await openPostgresStore(db.url, options)];
    },
    async teardown() {
      await Promise.all((stores ?? []).map((store) => store.close()));
      await db?.drop();
    },
    async fresh(stats) {
      if (!db || !stores) throw new Error('setup() has not run');
      // TRUNCATE between runs: far cheaper than a new database, and the instances keep their pools.
      await db.reset();
      clock.set(T0);
      await stores[0].importProducts(ADMIN, MODEL_CATALOG);
      await stores[0].setCheckoutMode(PAYMENT_CHANNEL, 'payment');
      return { stores, clock, stats };
    },
    async done() {},
  };
}

// ---------------------------------------------------------------- the property

/** Outcomes the generators must reach, or the comparison proves little. */
const MUST_REACH = [
  'add:ok',
  'add:replayed',
  'add:IDEMPOTENCY_CONFLICT',
  'add:UNKNOWN_SKU',
  'add:CART_NOT_FOUND',
  'add:CART_CLOSED',
  'add:CURRENCY_MISMATCH',
  'add:OUT_OF_STOCK',
  'add:LIMIT_EXCEEDED:per_line',
  'add:LIMIT_EXCEEDED:per_cart',
  'add:LIMIT_EXCEEDED:per_channel',
  'checkout:ok',
  'checkout:replayed',
  'checkout:IDEMPOTENCY_CONFLICT',
  'checkout:OUT_OF_STOCK',
  'checkout:UNKNOWN_SKU',
  'checkout:CART_EMPTY',
  'checkout:CART_CLOSED',
  'checkout:CART_NOT_FOUND',
  'release:ok',
  'release(sku):ok',
  'release:CART_CLOSED',
  'restock:ok',
  'setStock:ok',
  'setStock:BELOW_RESERVED',
  'upsert:ok',
  'upsert:INVALID_INPUT:currency',
  'upsert:INVALID_INPUT:track_stock',
  'upsert(broken):INVALID_INPUT:name',
  'upsert(broken):INVALID_INPUT:sku',
  'import:ok',
  'import:BELOW_RESERVED',
  'import:INVALID_INPUT:currency',
  'import:INVALID_INPUT:track_stock',
  'import(broken):INVALID_INPUT:stock',
  'import(broken):INVALID_INPUT:price_minor',
  'sweep:ok',
  'checkout(payment):ok',
  'confirm:on_time',
  'confirm:late',
  // confirm:needs_refund comes up about twice in 10,000 steps (the units must be taken between the payment
  // sweep and the payment): too rare to require here; the fixed lifecycle sequence reaches it every run.
  'confirm:repeat',
  'confirm:ORDER_CLOSED',
  'confirm:ORDER_NOT_FOUND',
  'cancel:ok',
  'cancel(restock):ok',
  'sweepOrders:ok',
  'via:0',
  'via:1',
];

/** Runs one fixed command sequence through the same model and checks; returns what the model predicted. */
async function replaySteps(backend: Backend, steps: Step[]): Promise<string[]> {
  const stats: Stats = { runs: 1, steps: 0, outcomes: new Map() };
  const real = await backend.fresh(stats);
  const model: Model = { state: initialState(), log: [] };
  try {
    await expectSameState(model.state, real, real.stores[0]);
    await fc.asyncModelRun(() => ({ model, real }), steps);
    await expectSameState(model.state, real, real.stores[1]);
    return model.log;
  } finally {
    await backend.done(real);
  }
}

/**
 * `lanes` runs of the property go side by side, each on its own database: a PostgreSQL step spends most of
 * its time waiting on round trips, which other lanes can use. The step count is shared.
 */
/**
 * `together`: some steps send several writes at once (SQLite's group commit batches them; a PostgreSQL pool would
 * run them in no fixed order, which a sequential model cannot predict).
 */
function describeModel(name: string, makeBackend: () => Backend, lanes = 1, together = false): void {
  describe(`${name} store against a reference model`, () => {
    const backends = Array.from({ length: lanes }, makeBackend);
    const backend = backends[0] as Backend;
    beforeAll(() => Promise.all(backends.map((lane) => lane.setup?.())));
    afterAll(() => Promise.all(backends.map((lane) => lane.teardown())));
    it('reviving an expired cart whose holds were never released still counts them against the channel cap', async () => {
      // Cart 1 holds 3 ROOMY and expires unswept; cart 2 takes 3 SMALL, so the channel's live holds are 3;
      // adding an untracked e-book to cart 1 would revive its 3 ROOMY: 6 units, over the cap of 5.
      const log = await replaySteps(backend, [
        new Step({ kind: 'add', channel: 0, cart: { kind: 'new' }, sku: 'ROOMY', quantity: 3 }),
        new Step({ kind: 'advance', ms: TTL }),
        new Step({ kind: 'add', channel: 0, cart: { kind: 'new' }, sku: 'SMALL', quantity: 3 }, 1),
        new Step({ kind: 'add', channel: 0, cart: { kind: 'own', index: 0 }, sku: 'EBOOK', quantity: 1 }),
        new Step({ kind: 'add', channel: 0, cart: { kind: 'own', index: 0 }, sku: 'ROOMY', quantity: 1 }, 1),
        new Step({ kind: 'release', channel: 0, cart: { kind: 'own', index: 1 } }),
        new Step({ kind: 'add', channel: 0, cart: { kind: 'own', index: 0 }, sku: 'EBOOK', quantity: 1 }, 1),
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

    it('replays a keyed add and checkout through the other instance, refuses the key for another request, and scopes keys by channel', async () => {
      const log = await replaySteps(backend, [
        new Step({ kind: 'add', channel: 0, cart: { kind: 'new' }, sku: 'SMALL', quantity: 2, key: 'k0' }),
        // The same request again, through the other instance: the same cart, no second hold.
        new Step({ kind: 'replay', index: 0, elsewhere: false }, 1),
        new Step({ kind: 'add', channel: 0, cart: { kind: 'new' }, sku: 'SMALL', quantity: 1, key: 'k0' }, 1),
        // The same key on another channel is another key: a new cart.
        new Step({ kind: 'replay', index: 0, elsewhere: true }),
        new Step({ kind: 'checkout', channel: 0, cart: { kind: 'own', index: 0 }, key: 'k0' }, 1),
        new Step({ kind: 'replay', index: 2, elsewhere: false }),
        // The add's replay still answers with the cart as it was when the key was first used.
        new Step({ kind: 'replay', index: 0, elsewhere: false }, 1),
      ]);
      expect(log).toEqual([
        'add:ok',
        'add:replayed',
        'add:IDEMPOTENCY_CONFLICT',
        'add:ok',
        'checkout:ok',
        'checkout:replayed',
        'add:replayed',
      ]);
    });

    it('an unpaid order holds its units until the sweep after pay_by; a late payment takes them again, or needs a refund', async () => {
      const voice = CHANNELS.indexOf(PAYMENT_CHANNEL);
      const newCart = { kind: 'new' as const };
      const own = { kind: 'own' as const, index: 0 };
      const log = await replaySteps(backend, [
        new Step({ kind: 'add', channel: voice, cart: newCart, sku: 'TINY', quantity: 1 }),
        new Step({ kind: 'checkout', channel: voice, cart: own }, 1),
        new Step({ kind: 'add', channel: 0, cart: newCart, sku: 'TINY', quantity: 1 }),
        // Past pay_by the order reads as cancelled, but only the sweep gives its unit back.
        new Step({ kind: 'advance', ms: PAYMENT_WINDOW }),
        new Step({ kind: 'add', channel: 0, cart: newCart, sku: 'TINY', quantity: 1 }, 1),
        new Step({ kind: 'sweepOrders' }),
        new Step({ kind: 'confirm', order: 0 }, 1),
        new Step({ kind: 'cancel', order: 0, restock: true }),
        new Step({ kind: 'confirm', order: 0 }, 1),
        new Step({ kind: 'add', channel: voice, cart: newCart, sku: 'TINY', quantity: 1 }),
        new Step({ kind: 'checkout', channel: voice, cart: own }),
        new Step({ kind: 'advance', ms: PAYMENT_WINDOW + 1 }),
        new Step({ kind: 'sweepOrders' }, 1),
        new Step({ kind: 'add', channel: 0, cart: newCart, sku: 'TINY', quantity: 1 }),
        new Step({ kind: 'checkout', channel: 0, cart: own }, 1),
        new Step({ kind: 'confirm', order: 1 }),
        new Step({ kind: 'confirm', order: 1 }, 1),
      ]);
      expect(log).toEqual([
        'add:ok',
        'checkout(payment):ok',
        'add:OUT_OF_STOCK',
        'advance:ok',
        'add:OUT_OF_STOCK',
        'sweepOrders:ok',
        'confirm:late',
        'cancel(restock):ok',
        'confirm:ORDER_CLOSED',
        'add:ok',
        'checkout(payment):ok',
        'advance:ok',
        'sweepOrders:ok',
        'add:ok',
        'checkout:ok',
        'confirm:needs_refund',
        'confirm:repeat',
      ]);
    });

    it(`agrees with the model after every step of random command sequences (at least ${MIN_STEPS} steps)`, async () => {
      const started = performance.now();
      const stats: Stats = { runs: 0, steps: 0, outcomes: new Map() };
      const property = (lane: Backend) =>
        fc.asyncProperty(
          fc.commands(together ? [step, step, step, togetherStep] : [step], {
            maxCommands: MAX_COMMANDS,
            size: 'max',
            replayPath: process.env.STOCKLOCK_MODEL_REPLAY_PATH,
          }),
          async (cmds) => {
            stats.runs += 1;
            const real = await lane.fresh(stats);
            const model: Model = { state: initialState(), log: [] };
            try {
              await expectSameState(model.state, real, real.stores[0]);
              await fc.asyncModelRun(() => ({ model, real }), cmds);
              await expectSameState(model.state, real, real.stores[0]);
            } finally {
              await lane.done(real);
            }
          },
        );
      if (REPRODUCE) {
        // One failing run again, from the seed and path fast-check reported; no step count to reach.
        await fc.assert(property(backend), REPRODUCE);
        return;
      }
      // fc.commands picks each run's length at random: keep drawing small batches of runs until enough
      // steps ran. A failing lane stops the others after their current batch, so its report stands alone.
      let failed = false;
      const drive = async (lane: Backend) => {
        while (!failed && stats.steps < MIN_STEPS) {
          try {
            await fc.assert(property(lane), { numRuns: 1 });
          } catch (error) {
            failed = true;
            throw error;
          }
        }
      };
      const settled = await Promise.allSettled(backends.map(drive));
      for (const result of settled) if (result.status === 'rejected') throw result.reason;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const outcomes = Object.fromEntries([...stats.outcomes].sort(([a], [b]) => a.localeCompare(b)));
      console.info(
        `model test (${name}): ${stats.steps} steps in ${stats.runs} runs, ${seconds} s`,
        outcomes,
      );

      // The rarest outcomes come up dozens of times in 10,000 steps; a shorter local run may miss one.
      if (MIN_STEPS >= 10_000) {
        for (const reached of [...MUST_REACH, ...(together ? ['together:shared'] : [])])
          expect(stats.outcomes.get(reached) ?? 0, reached).toBeGreaterThan(0);
      }
      expect(stats.steps).toBeGreaterThanOrEqual(MIN_STEPS);
      // Minutes on a machine that other test runs keep at load 20 to 30 (PostgreSQL took 6 of them there).
    }, 1_200_000);
  });
}

describeModel('SQLite', sqliteBackend, 1, true);

// Both copies of the hot paths' rules: the one-statement functions (migration 0004) and the general transaction.
describePostgres('PostgreSQL', () => {
  describeModel(
    'PostgreSQL (hot paths in one statement, migrations 0004 and 0008)',
    () => postgresBackend(true),
    6,
  );
  describeModel(
    'PostgreSQL (general transaction only, workflow/operations.ts)',
    () => postgresBackend(false),
    6,
  );
});
