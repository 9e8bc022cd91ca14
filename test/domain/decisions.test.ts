// The stock decisions on plain rows, no database: what each writes, returns or refuses.
import { describe, expect, it } from 'vitest';
import { changeOnHand, decideOnHand } from '../../src/domain/catalog-decisions.js';
import {
  type AddToCartState,
  addToCartHoldSkus,
  checkChannelCap,
  checkHolderCap,
  decideAddToCart,
  decideCheckout,
  decideRelease,
  decideSweep,
  type StoredCart,
} from '../../src/domain/decisions.js';
import { StockError } from '../../src/domain/errors.js';
import { DEFAULT_LIMITS, MAX_STOCK } from '../../src/domain/rules.js';
import type { ProductRow } from '../../src/domain/views.js';
import { type Hold, type StoredLine, Writes } from '../../src/domain/writes.js';

const NOW = Date.UTC(2026, 0, 1, 12);
const TTL = 15 * 60_000;
const MAX_HOLD = 60 * 60_000;

function row(sku: string, onHand: number, reserved = 0, extra: Partial<ProductRow> = {}): ProductRow {
  return {
    sku,
    name: `Product ${sku}`,
    description: null,
    price_minor: 100,
    currency: 'EUR',
    on_hand: onHand,
    reserved,
    track_stock: 1,
    active: 1,
    ...extra,
  };
}

function cart(id: string, expiresAt: number, extra: Partial<StoredCart> = {}): StoredCart {
  return {
    id,
    channel: 'web',
    status: 'open',
    currency: 'EUR',
    created_at: NOW - TTL,
    updated_at: NOW - TTL,
    expires_at: expiresAt,
    ...extra,
  };
}

const products = (...rows: ProductRow[]) => new Map(rows.map((r) => [r.sku, r]));
const line = (sku: string, quantity: number, held = quantity): StoredLine => ({ sku, quantity, held });
const hold = (cartId: string, held: number, channel = 'telegram'): Hold => ({
  cart_id: cartId,
  held,
  channel,
});

function add(over: Partial<AddToCartState>): AddToCartState {
  return {
    now: NOW,
    ttlMs: TTL,
    maxHoldMs: MAX_HOLD,
    limits: DEFAULT_LIMITS,
    channel: 'web',
    sku: 'A',
    quantity: 1,
    cart: undefined,
    cartId: undefined,
    lines: [],
    products: products(row('A', 5)),
    expired: new Map(),
    newCartId: 'cart_new',
    ...over,
  };
}

/** The refusal's code and details, or 'ok'. */
function outcome(decide: () => unknown): string | Record<string, unknown> {
  try {
    decide();
    return 'ok';
  } catch (error) {
    if (!(error instanceof StockError)) throw error;
    return { code: error.code, ...error.details };
  }
}

/** 'ok', or a refusal whose code and details include `expected`'s. */
function expectOutcome(decide: () => unknown, expected: string | Record<string, unknown>): void {
  const result = outcome(decide);
  if (typeof expected === 'string') expect(result).toBe(expected);
  else expect(result).toMatchObject(expected);
}

describe('decideAddToCart', () => {
  it('a new cart holds the units: reserved, the channel counter and a reserve movement move together', () => {
    const d = decideAddToCart(add({ quantity: 2 }));
    expect(d.isNew).toBe(true);
    expect(d.cart).toMatchObject({ id: 'cart_new', status: 'open', expires_at: NOW + TTL, currency: 'EUR' });
    expect(d.line).toEqual({ sku: 'A', quantity: 2, held: 2 });
    expect([...d.writes.stock]).toEqual([['A', { onHand: 0, reserved: 2, touched: false }]]);
    expect([...d.writes.channels]).toEqual([['web', 2]]);
    expect(d.writes.movements).toEqual([
      expect.objectContaining({
        sku: 'A',
        kind: 'reserve',
        quantity: 2,
        reserved_delta: 2,
        cart_id: 'cart_new',
      }),
    ]);
    expect({ adding: d.adding, reviving: d.reviving }).toEqual({ adding: 2, reviving: false });
  });

  it("frees other carts' expired holds of the SKU first and sells from them", () => {
    const d = decideAddToCart(
      add({ quantity: 3, products: products(row('A', 3, 3)), expired: new Map([['A', [hold('old', 3)]]]) }),
    );
    expect(d.writes.stock.get('A')).toEqual({ onHand: 0, reserved: 0, touched: false });
    expect([...d.writes.held.values()]).toEqual([{ cart_id: 'old', sku: 'A', held: 0 }]);
    expect(Object.fromEntries(d.writes.channels)).toEqual({ telegram: -3, web: 3 });
    expect(d.writes.movements.map((m) => [m.kind, m.cart_id, m.reserved_delta])).toEqual([
      ['expire', 'old', -3],
      ['reserve', 'cart_new', 3],
    ]);
  });

  it('an untracked product is added without holding anything', () => {
    const d = decideAddToCart(add({ quantity: 4, products: products(row('A', 0, 0, { track_stock: 0 })) }));
    expect(d.line).toEqual({ sku: 'A', quantity: 4, held: 0 });
    expect(d.writes.stock.size).toBe(0);
    expect(d.writes.channels.size).toBe(0);
    expect(d.writes.movements).toEqual([
      expect.objectContaining({ kind: 'reserve', quantity: 4, reserved_delta: 0 }),
    ]);
  });

  const live = cart('c1', NOW + 60_000);
  it.each([
    ['enough stock', add({ quantity: 5 }), 'ok'],
    ['one unit short', add({ quantity: 6 }), { code: 'OUT_OF_STOCK', sku: 'A', requested: 6, available: 5 }],
    [
      'an inactive product',
      add({ products: products(row('A', 5, 0, { active: 0 })) }),
      { code: 'UNKNOWN_SKU', sku: 'A' },
    ],
    ['no such product', add({ products: new Map() }), { code: 'UNKNOWN_SKU', sku: 'A' }],
    [
      'a line over its cap',
      add({ quantity: 101, products: products(row('A', 500)) }),
      { code: 'LIMIT_EXCEEDED', cap: 'per_line' },
    ],
    [
      'a cart over its cap',
      add({
        cart: live,
        cartId: 'c1',
        lines: [line('B', 100), line('C', 100), line('D', 100), line('E', 100), line('F', 100)],
        quantity: 1,
      }),
      { code: 'LIMIT_EXCEEDED', cap: 'per_cart' },
    ],
    ['a cart that does not exist', add({ cartId: 'gone' }), { code: 'CART_NOT_FOUND', cart_id: 'gone' }],
    [
      'a checked-out cart',
      add({ cart: cart('c1', NOW + 1, { status: 'checked_out' }), cartId: 'c1' }),
      { code: 'CART_CLOSED', status: 'checked_out' },
    ],
    [
      'a cart in another currency',
      add({ cart: cart('c1', NOW + 60_000, { currency: 'USD' }), cartId: 'c1' }),
      { code: 'CURRENCY_MISMATCH', cart_currency: 'USD' },
    ],
  ])('%s', (_name, state, expected) => {
    expectOutcome(() => decideAddToCart(state), expected);
  });

  it('revives an expired cart: every line held again, the cart open until now + TTL, the whole cart counted', () => {
    const expired = cart('c1', NOW - 1);
    const state = add({
      cart: expired,
      cartId: 'c1',
      sku: 'A',
      lines: [line('B', 2, 0), line('C', 1)],
      products: products(row('A', 5), row('B', 2), row('C', 1, 1)),
      expired: new Map([['B', [hold('c1', 0), hold('other', 1)]]]),
    });
    expect(addToCartHoldSkus(state)).toEqual(['B', 'A']);
    const d = decideAddToCart(state);
    expect(d.cart).toMatchObject({ status: 'open', expires_at: NOW + TTL });
    expect(d.reviving).toBe(true);
    expect(d.adding).toBe(2 + 1);
    expect(d.writes.movements.map((m) => [m.kind, m.sku, m.cart_id, m.reserved_delta, m.note])).toEqual([
      ['expire', 'B', 'other', -1, null],
      ['reserve', 'B', 'c1', 2, 'cart revived'],
      ['reserve', 'A', 'c1', 1, null],
    ]);
  });

  // A cart first held at `created`; what an add at NOW makes of its expiry (TTL 15 min, max hold 1 h).
  it.each([
    ['a young cart moves to now + TTL', NOW - 10 * 60_000, NOW + 60_000, NOW + TTL],
    [
      'near its max hold, never past first hold + max hold',
      NOW - 50 * 60_000,
      NOW + 60_000,
      NOW + 10 * 60_000,
    ],
    ['revived, the max hold still runs from the first hold', NOW - 55 * 60_000, NOW - 1, NOW + 5 * 60_000],
    [
      'at its max hold, refused',
      NOW - MAX_HOLD,
      NOW - 1,
      { code: 'LIMIT_EXCEEDED', cap: 'max_hold', limit: MAX_HOLD },
    ],
    [
      'live but past its max hold by a longer TTL elsewhere, refused',
      NOW - MAX_HOLD - 1,
      NOW + 60_000,
      { code: 'LIMIT_EXCEEDED', cap: 'max_hold', limit: MAX_HOLD },
    ],
  ])('max hold: %s', (_name, created, expiresAt, expected) => {
    const state = add({
      cart: cart('c1', expiresAt, { created_at: created }),
      cartId: 'c1',
      lines: [line('A', 1)],
      products: products(row('A', 5, 1)),
    });
    if (typeof expected === 'number') expect(decideAddToCart(state).cart.expires_at).toBe(expected);
    else expectOutcome(() => decideAddToCart(state), expected);
  });

  // Untracked lines hold nothing, but a cart's caps count units, tracked or not.
  it.each([
    ['an untracked line over the per-line cap', [line('E', 100, 0)], 'E', { cap: 'per_line' }],
    [
      'untracked lines filling the cart',
      [line('E', 100, 0), line('F', 100, 0), line('G', 100, 0), line('H', 100, 0), line('I', 100, 0)],
      'A',
      { cap: 'per_cart' },
    ],
  ])('cart caps: %s', (_name, lines, sku, details) => {
    const untracked = ['E', 'F', 'G', 'H', 'I'].map((s) => row(s, 0, 0, { track_stock: 0 }));
    const state = add({
      cart: live,
      cartId: 'c1',
      sku,
      lines,
      products: products(row('A', 5), ...untracked),
    });
    expectOutcome(() => decideAddToCart(state), { code: 'LIMIT_EXCEEDED', ...details });
  });

  it.each([
    ['held again when the stock is there', row('B', 2), 'ok', 'hold restored'],
    [
      'refused, naming the line, when it is not',
      row('B', 2, 1),
      { code: 'OUT_OF_STOCK', sku: 'B', requested: 2, available: 1 },
      undefined,
    ],
  ])('a live cart whose line lost its hold: %s', (_name, b, expected, note) => {
    const state = add({
      cart: live,
      cartId: 'c1',
      lines: [line('B', 2, 0)],
      products: products(row('A', 5), b),
    });
    expect(outcome(() => decideAddToCart(state))).toEqual(expected);
    if (note) {
      const d = decideAddToCart(state);
      expect(d.writes.movements[0]).toMatchObject({ sku: 'B', kind: 'reserve', reserved_delta: 2, note });
      expect(d.adding).toBe(3);
      expect(d.reviving).toBe(false);
    }
  });
});

describe('checkChannelCap', () => {
  const limits = { ...DEFAULT_LIMITS, maxChannelReserved: 10 };
  it.each([
    [{ counted: 8, expiredElsewhere: 0, adding: 2, reviving: false }, 'ok'],
    [{ counted: 9, expiredElsewhere: 0, adding: 2, reviving: false }, 'LIMIT_EXCEEDED'],
    [{ counted: 9, expiredElsewhere: 3, adding: 2, reviving: false }, 'ok'],
    [{ counted: 11, expiredElsewhere: 0, adding: 0, reviving: false }, 'ok'],
    [{ counted: 11, expiredElsewhere: 0, adding: 0, reviving: true }, 'LIMIT_EXCEEDED'],
  ])('%o: %s', (check, expected) => {
    const result = outcome(() => checkChannelCap(limits, check));
    expect(typeof result === 'string' ? result : result.code).toBe(expected);
  });
});

describe('checkHolderCap', () => {
  const limits = { ...DEFAULT_LIMITS, maxHolderReserved: 5 };
  it.each([
    ['grant_1', { held: 3, adding: 2, reviving: false }, 'ok'],
    ['grant_1', { held: 4, adding: 2, reviving: false }, 'LIMIT_EXCEEDED'],
    ['grant_1', { held: 0, adding: 6, reviving: false }, 'LIMIT_EXCEEDED'],
    // Adding nothing that holds (an untracked item) never trips the cap...
    ['grant_1', { held: 7, adding: 0, reviving: false }, 'ok'],
    // ...unless it revives a cart, whose units all count again.
    ['grant_1', { held: 7, adding: 0, reviving: true }, 'LIMIT_EXCEEDED'],
    // A static token or stdio (no holder) is the whole channel: only the channel cap governs it.
    [undefined, { held: 100, adding: 50, reviving: false }, 'ok'],
  ])('holder %s, %o: %s', (holder, check, expected) => {
    const result = outcome(() => checkHolderCap(limits, holder, check));
    expect(typeof result === 'string' ? result : result.code).toBe(expected);
    if (typeof result !== 'string') {
      expect(result).toMatchObject({ cap: 'per_holder', limit: 5 });
    }
  });
});

describe('decideCheckout', () => {
  const base = {
    now: NOW,
    channel: 'web',
    cart: cart('c1', NOW + 60_000),
    orderId: 'ord_1',
    expired: new Map<string, Hold[]>(),
  };

  it('sells every line at its current price: on_hand and reserved drop, holds clear, one sale per line', () => {
    const d = decideCheckout({
      ...base,
      lines: [line('A', 2), line('E', 3, 0)],
      products: products(
        row('A', 5, 2, { price_minor: 250 }),
        row('E', 0, 0, { track_stock: 0, price_minor: 10 }),
      ),
    });
    expect(d.order).toEqual({
      id: 'ord_1',
      cart_id: 'c1',
      channel: 'web',
      currency: 'EUR',
      created_at: NOW,
      total: 530,
    });
    expect(Object.fromEntries(d.writes.stock)).toEqual({
      A: { onHand: -2, reserved: -2, touched: true },
    });
    expect([...d.writes.held.values()]).toEqual([{ cart_id: 'c1', sku: 'A', held: 0 }]);
    expect([...d.writes.channels]).toEqual([['web', -2]]);
    expect(d.writes.movements.map((m) => [m.kind, m.sku, m.on_hand_delta, m.reserved_delta])).toEqual([
      ['sale', 'A', -2, -2],
      ['sale', 'E', 0, 0],
    ]);
  });

  it.each([
    ['no lines', [], products(), { code: 'CART_EMPTY', cart_id: 'c1' }],
    [
      'an inactive product',
      [line('A', 1)],
      products(row('A', 1, 1, { active: 0 })),
      { code: 'UNKNOWN_SKU', sku: 'A' },
    ],
    [
      'a product now in USD',
      [line('A', 1)],
      products(row('A', 1, 1, { currency: 'USD' })),
      { code: 'CURRENCY_MISMATCH', sku: 'A' },
    ],
    [
      'two lines whose holds were freed and taken',
      [line('A', 2, 0), line('B', 3, 1)],
      products(row('A', 2, 1), row('B', 3, 3)),
      {
        code: 'OUT_OF_STOCK',
        lines: [
          { sku: 'A', requested: 2, available: 1 },
          { sku: 'B', requested: 3, available: 1 },
        ],
      },
    ],
    ['a freed line whose stock is still there', [line('A', 2, 0)], products(row('A', 2)), 'ok'],
  ])('%s', (_name, lines, rows, expected) => {
    expectOutcome(() => decideCheckout({ ...base, lines, products: rows }), expected);
  });
});

describe('decideRelease', () => {
  const lines = [line('A', 2), line('E', 1, 0)];
  it.each([
    [
      'the whole cart',
      undefined,
      'released',
      [
        { sku: 'A', quantity: 2 },
        { sku: 'E', quantity: 1 },
      ],
      [],
      -2,
    ],
    ['one line', 'A', 'open', [{ sku: 'A', quantity: 2 }], ['A'], -2],
    ['a line it does not have', 'Z', 'open', [], [], 0],
  ])('%s', (_name, sku, status, released, deleted, channelDelta) => {
    const d = decideRelease(cart('c1', NOW + 1), lines, new Map(), sku);
    expect({ status: d.status, released: d.released, deleted: d.deleted }).toEqual({
      status,
      released,
      deleted,
    });
    expect(d.writes.channels.get('web') ?? 0).toBe(channelDelta);
    expect(d.writes.movements.every((m) => m.kind === 'release')).toBe(true);
  });

  it('a released cart again is a no-op; a checked-out one is CART_CLOSED', () => {
    const again = decideRelease(cart('c1', NOW, { status: 'released' }), lines, new Map(), undefined);
    expect({ released: again.released, movements: again.writes.movements }).toEqual({
      released: [],
      movements: [],
    });
    expect(
      outcome(() => decideRelease(cart('c1', NOW, { status: 'checked_out' }), lines, new Map(), undefined)),
    ).toEqual({
      code: 'CART_CLOSED',
      cart_id: 'c1',
      status: 'checked_out',
    });
  });
});

describe('decideSweep', () => {
  it('frees every hold of the expired carts, once each, with an expire movement', () => {
    const { writes, units } = decideSweep(
      [
        { id: 'c1', channel: 'web', lines: [line('A', 2), line('B', 1, 0)] },
        { id: 'c2', channel: 'bot', lines: [line('A', 1)] },
      ],
      new Map(),
    );
    expect(units).toBe(3);
    expect(writes.stock.get('A')).toEqual({ onHand: 0, reserved: -3, touched: false });
    expect(Object.fromEntries(writes.channels)).toEqual({ web: -2, bot: -1 });
    expect(writes.movements.map((m) => [m.kind, m.cart_id, m.quantity])).toEqual([
      ['expire', 'c1', 2],
      ['expire', 'c2', 1],
    ]);
  });
});

describe('on-hand changes', () => {
  it.each([
    ['restock 5', (w: Writes) => changeOnHand(w, 'A', 'restock', 5, 'admin', null), { onHand: 5 }],
    [
      'past the stock ceiling',
      (w: Writes) => changeOnHand(w, 'A', 'restock', MAX_STOCK, 'admin', null),
      { code: 'INVALID_INPUT', field: 'quantity' },
    ],
    [
      'set to 4',
      (w: Writes) =>
        decideOnHand(w, new Map(), { sku: 'A', onHand: 4, kind: 'adjust', channel: 'admin', note: null }),
      { onHand: -6 },
    ],
    [
      'set below what carts hold',
      (w: Writes) =>
        decideOnHand(w, new Map(), { sku: 'A', onHand: 2, kind: 'adjust', channel: 'admin', note: null }),
      { code: 'BELOW_RESERVED', reserved: 3 },
    ],
    [
      'set below holds that have expired',
      (w: Writes) =>
        decideOnHand(w, new Map([['A', [hold('old', 3)]]]), {
          sku: 'A',
          onHand: 0,
          kind: 'adjust',
          channel: 'admin',
          note: null,
        }),
      { onHand: -10, reserved: -3 },
    ],
    [
      'set to the same count',
      (w: Writes) =>
        decideOnHand(w, new Map(), { sku: 'A', onHand: 10, kind: 'adjust', channel: 'admin', note: null }),
      { movements: 0 },
    ],
    [
      'import the same count',
      (w: Writes) =>
        decideOnHand(w, new Map(), {
          sku: 'A',
          onHand: 10,
          kind: 'import',
          channel: 'cli',
          note: 'catalog import',
        }),
      { movements: 1 },
    ],
  ])('%s', (_name, change, expected) => {
    const writes = new Writes(products(row('A', 10, 3)));
    const result = outcome(() => change(writes));
    if (result !== 'ok') return expect(result).toMatchObject(expected);
    const delta = writes.stock.get('A');
    expect({
      onHand: delta?.onHand ?? 0,
      reserved: delta?.reserved ?? 0,
      movements: writes.movements.length,
    }).toMatchObject(expected);
  });
});
