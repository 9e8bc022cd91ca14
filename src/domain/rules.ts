// Validation, money formatting, ids and durations: pure rules shared by every store and the CLI.
import { randomBytes } from 'node:crypto';
import { inRow, refuse } from './errors.js';

export const SKU_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;
export const MAX_QUANTITY = 1_000_000;
/**
 * NUL and unpaired UTF-16 surrogates cannot be stored as text exactly: PostgreSQL refuses NUL, and both
 * stores replace a lone surrogate with U+FFFD, so what is saved would differ from what was sent.
 */
export const UNSTORABLE_TEXT = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const MAX_STOCK = 1_000_000_000;
export const MAX_PRICE_MINOR = 1_000_000_000_000;

export interface Limits {
  /** Most units of one SKU in one cart. */
  maxLineQuantity: number;
  /** Most units in one cart, all lines together. */
  maxCartQuantity: number;
  /** Most units one channel may hold in open carts at once. */
  maxChannelReserved: number;
  /** Most units one OAuth holder (one shopper's grant) may hold at once, in open carts and unpaid orders. */
  maxHolderReserved: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxLineQuantity: 100,
  maxCartQuantity: 500,
  maxChannelReserved: 10_000,
  maxHolderReserved: 20,
};

export const DEFAULT_RESERVATION_TTL_MS = 15 * 60_000;

/** One hour: the longest a cart holds stock from its first hold, however often it is added to. */
export const DEFAULT_MAX_HOLD_MS = 60 * 60_000;

/** The max hold a store decides by: the one set, else the default or the TTL when that is longer. */
export function maxHoldOf(options: { reservationTtlMs: number; maxHoldMs?: number }): number {
  return options.maxHoldMs ?? Math.max(DEFAULT_MAX_HOLD_MS, options.reservationTtlMs);
}

/**
 * A cart's expiry after a write at `now`: now + TTL, but never past its first hold (`createdAt`, a cart is made
 * by its first add) plus the max hold, so adding and releasing lines cannot keep stock held forever.
 */
export function holdExpiry(createdAt: number, now: number, ttlMs: number, maxHoldMs: number): number {
  return Math.min(now + ttlMs, createdAt + maxHoldMs);
}

/** How long an order in a payment channel may await its payment before its units go back on sale. */
export const DEFAULT_PAYMENT_WINDOW_MS = 30 * 60_000;

/** Seven days: an order that may wait longer for its payment is a hoard too. */
export const MAX_PAYMENT_WINDOW_MS = 7 * 86_400_000;

/** Thirty days: a longer hold is a hoard, and the timestamps it makes must stay representable. */
export const MAX_RESERVATION_TTL_MS = 30 * 86_400_000;

/**
 * How long idempotency records are kept: at least 24 hours, and never less than the longest reservation TTL
 * any server may be configured with, so a retry can always find the cart it made, whichever server of a
 * shared database prunes and whatever its own TTL.
 */
export const IDEMPOTENCY_RETENTION_MS = Math.max(24 * 3_600_000, MAX_RESERVATION_TTL_MS);

/** Refuses a cart line or a cart that would grow past its cap (units after this add). */
export function assertCartCaps(limits: Limits, lineQuantity: number, cartUnits: number): void {
  if (lineQuantity > limits.maxLineQuantity) {
    throw refuse.limit(
      'per_line',
      limits.maxLineQuantity,
      `At most ${limits.maxLineQuantity} units of one product per cart; this line would have ${lineQuantity}.`,
    );
  }
  if (cartUnits > limits.maxCartQuantity) {
    throw refuse.limit(
      'per_cart',
      limits.maxCartQuantity,
      `At most ${limits.maxCartQuantity} units per cart; this cart would have ${cartUnits}.`,
    );
  }
}

/** Refuses adding to a cart held since `createdAt` once its max hold has run out (it could hold nothing more). */
export function assertHoldLeft(cartId: string, createdAt: number, now: number, maxHoldMs: number): void {
  if (createdAt + maxHoldMs > now) return;
  throw refuse.limit(
    'max_hold',
    maxHoldMs,
    `Cart "${cartId}" has held stock for the longest allowed (${formatDuration(maxHoldMs)}) and takes no more items. Check it out, or start a new cart with add_to_cart.`,
  );
}

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.ceil(ms / 1_000)} s`;
}

/** Refuses adding units when the channel's live holds (`held`, before this call) would pass its cap. */
export function assertChannelCap(limits: Limits, held: number, adding: number): void {
  const cap = limits.maxChannelReserved;
  if (held + adding > cap) {
    throw refuse.limit(
      'per_channel',
      cap,
      `This channel already holds ${held} units in open carts; the cap is ${cap}. Check out or release carts first.`,
    );
  }
}

/**
 * Refuses adding units when an OAuth holder's live holds (`inCarts` in open carts and `inOrders` in orders
 * awaiting payment, before this call) would pass its cap.
 */
export function assertHolderCap(limits: Limits, inCarts: number, adding: number, inOrders = 0): void {
  const cap = limits.maxHolderReserved;
  const held = inCarts + inOrders;
  if (held + adding > cap) {
    const where =
      inOrders > 0
        ? `${inCarts} in open carts and ${inOrders} in orders awaiting payment`
        : `${held} units in open carts`;
    const next =
      inOrders > 0 ? 'Pay for or release what you hold first.' : 'Check out or release carts first.';
    throw refuse.limit(
      'per_holder',
      cap,
      `You already hold ${where}; the cap is ${cap} per shopper. ${next}`,
    );
  }
}

export function assertSku(sku: string, field = 'sku'): void {
  if (!SKU_PATTERN.test(sku)) {
    throw refuse.invalid(field, `"${sku.slice(0, 80)}" is not a SKU (1-64 of A-Z a-z 0-9 . _ -)`);
  }
}

/** Checks every catalog row before an import touches the store; a refusal names its row. */
export function assertImportRows(
  rows: { sku: string; name: string; price_minor: number; currency: string; stock?: number }[],
): void {
  rows.forEach((row, index) => {
    try {
      assertProduct(row);
      if (row.stock !== undefined) assertCount(row.stock, 'stock', 0, MAX_STOCK);
    } catch (error) {
      throw inRow(error, index);
    }
  });
}

export function assertCount(value: number, field: string, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw refuse.invalid(field, `must be a whole number from ${min} to ${max}, got ${value}`);
  }
}

export function assertProduct(input: {
  sku: string;
  name: string;
  description?: string | null;
  price_minor: number;
  currency: string;
}): void {
  assertSku(input.sku);
  if (input.name.trim().length === 0 || input.name.length > 200) {
    throw refuse.invalid('name', 'must be 1-200 characters');
  }
  for (const [field, text] of [
    ['name', input.name],
    ['description', input.description ?? ''],
  ] as const) {
    if (UNSTORABLE_TEXT.test(text))
      throw refuse.invalid(field, 'must be valid Unicode text without NUL characters');
  }
  if ((input.description ?? '').length > 2000)
    throw refuse.invalid('description', 'is at most 2000 characters');
  assertCount(input.price_minor, 'price_minor', 0, MAX_PRICE_MINOR);
  if (!CURRENCY_PATTERN.test(input.currency) || minorUnitDigits(input.currency) === undefined) {
    throw refuse.invalid('currency', `"${input.currency}" is not an ISO 4217 currency code`);
  }
}

const digitsCache = new Map<string, number | undefined>();

/** Decimal places of a currency's minor unit (2 for EUR, 0 for JPY), or undefined if unknown. */
export function minorUnitDigits(currency: string): number | undefined {
  if (digitsCache.has(currency)) return digitsCache.get(currency);
  let digits: number | undefined;
  try {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency });
    const supported = Intl.supportedValuesOf('currency').includes(currency);
    digits = supported ? format.resolvedOptions().maximumFractionDigits : undefined;
  } catch {
    digits = undefined;
  }
  digitsCache.set(currency, digits);
  return digits;
}

/** "12.50 EUR": unambiguous for a model or a voice agent to read out. */
export function formatMoney(minor: number, currency: string): string {
  const digits = minorUnitDigits(currency) ?? 2;
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  if (digits === 0) return `${sign}${abs} ${currency}`;
  const scale = 10 ** digits;
  const major = Math.floor(abs / scale);
  const fraction = String(abs % scale).padStart(digits, '0');
  return `${sign}${major}.${fraction} ${currency}`;
}

/** Parses "12.50" in major units to minor units without touching floating point. */
export function parseMajorPrice(text: string, currency: string): number | undefined {
  const digits = minorUnitDigits(currency) ?? 2;
  const match = /^(\d{1,13})(?:\.(\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  const [, whole = '0', fraction = ''] = match;
  if (fraction.length > digits) return undefined;
  return Number(whole) * 10 ** digits + Number(fraction.padEnd(digits, '0') || '0');
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** prefix + 22 base62 characters (about 131 bits): unguessable, so a cart id is a capability. */
export function newId(prefix: string, length = 22): string {
  const out: string[] = [];
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 62 * 4: rejecting the rest keeps every character equally likely.
      if (byte < 248 && out.length < length) out.push(BASE62[byte % 62] as string);
    }
  }
  return `${prefix}${out.join('')}`;
}

/** "90s", "15m", "2h", "1d" or plain seconds, to milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a duration (try 90s, 15m, 2h or a number of seconds)`);
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1_000;
  const ms = Math.round(value * factor);
  if (ms <= 0) throw new Error(`"${text}" must be longer than zero`);
  return ms;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
