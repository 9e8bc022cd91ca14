// Refusals a caller can act on: one class, its codes those of the README's error table.

export const ErrorCode = {
  UNKNOWN_SKU: 'UNKNOWN_SKU',
  OUT_OF_STOCK: 'OUT_OF_STOCK',
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
  CART_NOT_FOUND: 'CART_NOT_FOUND',
  CART_CLOSED: 'CART_CLOSED',
  CART_EMPTY: 'CART_EMPTY',
  CURRENCY_MISMATCH: 'CURRENCY_MISMATCH',
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  BELOW_RESERVED: 'BELOW_RESERVED',
  STORE_BUSY: 'STORE_BUSY',
  STORE_READ_ONLY: 'STORE_READ_ONLY',
  OUTCOME_UNKNOWN: 'OUTCOME_UNKNOWN',
  INVALID_INPUT: 'INVALID_INPUT',
  ORDER_NOT_FOUND: 'ORDER_NOT_FOUND',
  ORDER_CLOSED: 'ORDER_CLOSED',
  PAYMENT_UNAVAILABLE: 'PAYMENT_UNAVAILABLE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export type ErrorDetails = Record<string, unknown>;

/** A refused operation. Thrown inside a transaction it rolls everything back. */
export class StockError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  /** `options.cause` keeps the database's own error for the log; it never reaches the caller. */
  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StockError';
    this.code = code;
    this.details = details;
  }
}

export function isStockError(error: unknown): error is StockError {
  return error instanceof StockError;
}

/** An import refusal that names its row (1-based), so the CLI can point at the line of the file. */
export function inRow(error: unknown, index: number): unknown {
  if (!(error instanceof StockError)) return error;
  return new StockError(error.code, `row ${index + 1}: ${error.message}`, {
    ...error.details,
    row: index + 1,
  });
}

/** Why the database takes no writes: reported as STORE_READ_ONLY's `cause`. */
export type ReadOnlyCause = 'disk_full' | 'read_only_database' | 'read_only_file' | 'write_failed';

export interface ShortLine {
  sku: string;
  requested: number;
  available: number;
}

export const refuse = {
  unknownSku: (sku: string) =>
    new StockError(
      ErrorCode.UNKNOWN_SKU,
      `No active product has SKU "${sku}". Use search_products to find the right SKU.`,
      { sku },
    ),
  outOfStock: (short: ShortLine[]) => {
    const [first] = short;
    if (short.length === 1 && first) {
      return new StockError(
        ErrorCode.OUT_OF_STOCK,
        `Only ${first.available} of "${first.sku}" available, ${first.requested} requested. Offer the available quantity or another product.`,
        { ...first },
      );
    }
    const list = short.map((s) => `${s.sku} (${s.available} of ${s.requested})`).join(', ');
    return new StockError(
      ErrorCode.OUT_OF_STOCK,
      `Not enough stock for ${list}; nothing was reserved or sold.`,
      { sku: first?.sku, requested: first?.requested, available: first?.available, lines: short },
    );
  },
  limit: (cap: string, limit: number, message: string) =>
    new StockError(ErrorCode.LIMIT_EXCEEDED, message, { cap, limit }),
  cartNotFound: (cartId: string) =>
    new StockError(
      ErrorCode.CART_NOT_FOUND,
      `No cart "${cartId}" on this channel. Start a new cart by calling add_to_cart without cart_id.`,
      { cart_id: cartId },
    ),
  cartClosed: (cartId: string, status: string) =>
    new StockError(
      ErrorCode.CART_CLOSED,
      `Cart "${cartId}" is already ${status.replace('_', ' ')}. Start a new cart with add_to_cart.`,
      { cart_id: cartId, status },
    ),
  cartEmpty: (cartId: string) =>
    new StockError(ErrorCode.CART_EMPTY, `Cart "${cartId}" has no lines. Add a product before checkout.`, {
      cart_id: cartId,
    }),
  currencyMismatch: (sku: string, currency: string, cartCurrency: string) =>
    new StockError(
      ErrorCode.CURRENCY_MISMATCH,
      `"${sku}" is priced in ${currency} but the cart is in ${cartCurrency}. Use a separate cart.`,
      { sku, currency, cart_currency: cartCurrency },
    ),
  idempotencyConflict: (key: string) =>
    new StockError(
      ErrorCode.IDEMPOTENCY_CONFLICT,
      `Idempotency key "${key}" was already used for a different request. Use a new key for a new request.`,
      { key },
    ),
  belowReserved: (sku: string, requested: number, reserved: number) =>
    new StockError(
      ErrorCode.BELOW_RESERVED,
      `Cannot set on-hand of "${sku}" to ${requested}: carts hold ${reserved}. Set at least ${reserved}, or wait for carts to close.`,
      { sku, requested, reserved },
    ),
  busy: (waitedMs: number) =>
    new StockError(
      ErrorCode.STORE_BUSY,
      `The store is busy (waited ${waitedMs} ms for the lock). Nothing changed; retry the same call shortly.`,
      { waited_ms: waitedMs },
    ),
  /** The database refuses every write right now (a standby, a full disk, …); `cause` names why, for the operator. */
  readOnly: (cause: ReadOnlyCause, why: string, error?: unknown) =>
    new StockError(
      ErrorCode.STORE_READ_ONLY,
      `The store cannot record changes right now: ${why}. Nothing was changed and stock can still be read; retry later (the operator must fix the database).`,
      { cause },
      { cause: error },
    ),
  /** COMMIT failed in a way that leaves it unknown whether the write happened (`what` says how). */
  outcomeUnknown: (what: string, error: unknown) =>
    new StockError(
      ErrorCode.OUTCOME_UNKNOWN,
      `${what} while committing: the change may or may not have been made. Retry the same call with the same idempotency_key; without a key, look at the cart with get_cart before retrying.`,
      {},
      { cause: error },
    ),
  orderNotFound: (orderId: string) =>
    new StockError(
      ErrorCode.ORDER_NOT_FOUND,
      `No order "${orderId}" on this channel. Use the order_id that checkout returned.`,
      { order_id: orderId },
    ),
  /** `why` finishes the sentence: what state the order is in and what can still be done. */
  orderClosed: (orderId: string, status: string, why: string) =>
    new StockError(ErrorCode.ORDER_CLOSED, `Order "${orderId}" is ${status.replace('_', ' ')}: ${why}`, {
      order_id: orderId,
      status,
    }),
  paymentUnavailable: (orderId: string, provider: string) =>
    new StockError(
      ErrorCode.PAYMENT_UNAVAILABLE,
      `The payment provider (${provider}) could not be reached. Order "${orderId}" is saved and its items stay held until it is paid or its time runs out; retry checkout with the same idempotency_key to get the payment link.`,
      { order_id: orderId, provider },
    ),
  invalid: (field: string, message: string) =>
    new StockError(ErrorCode.INVALID_INPUT, `${field}: ${message}`, { field }),
};
