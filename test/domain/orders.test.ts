// The order decisions on plain rows, no database: checkout in both modes, payment on time and late, the
// payment window's end, cancellation with and without restock, and the holder cap counting unpaid orders.
import { describe, expect, it } from 'vitest';
import { checkoutModeOf, oauthChannels } from '../../src/domain/channels.js';
import { checkHolderCap, type StoredCart } from '../../src/domain/decisions.js';
import { StockError } from '../../src/domain/errors.js';
import {
  decideCancelOrder,
  decideConfirmPayment,
  decideOrderCheckout,
  decideOrderTimeouts,
  type OrderCheckoutState,
  orderSummary,
  orderView,
  type StoredOrder,
  type StoredOrderLine,
} from '../../src/domain/orders.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import type { ProductRow } from '../../src/domain/views.js';
import type { Hold, StoredLine } from '../../src/domain/writes.js';

const NOW = Date.UTC(2026, 0, 1, 14, 0);
const WINDOW = 30 * 60_000;

function row(sku: string, onHand: number, reserved = 0, extra: Partial<ProductRow> = {}): ProductRow {
  return {
    sku,
    name: `Product ${sku}`,
    description: null,
    price_minor: 250,
    currency: 'EUR',
    on_hand: onHand,
    reserved,
    track_stock: 1,
    active: 1,
    ...extra,
  };
}
const products = (...rows: ProductRow[]) => new Map(rows.map((r) => [r.sku, r]));
const line = (sku: string, quantity: number, held = quantity): StoredLine => ({ sku, quantity, held });
const orderLine = (sku: string, quantity: number, held: number): StoredOrderLine => ({
  sku,
  name: `Product ${sku}`,
  quantity,
  unit_price_minor: 250,
  held,
});

const openCart: StoredCart = {
  id: 'c1',
  channel: 'claude',
  status: 'open',
  currency: 'EUR',
  created_at: NOW - 60_000,
  updated_at: NOW - 60_000,
  expires_at: NOW + 60_000,
};

function checkout(over: Partial<OrderCheckoutState>): OrderCheckoutState {
  return {
    now: NOW,
    channel: 'claude',
    holder: 'grant_1',
    cart: openCart,
    lines: [line('A', 2), line('E', 3, 0)],
    products: products(row('A', 5, 2), row('E', 0, 0, { track_stock: 0, price_minor: 10 })),
    expired: new Map(),
    orderId: 'ord_1',
    mode: 'payment',
    paymentWindowMs: WINDOW,
    ...over,
  };
}

function stored(over: Partial<StoredOrder>): StoredOrder {
  return {
    id: 'ord_1',
    cart_id: 'c1',
    channel: 'claude',
    holder: 'grant_1',
    status: 'awaiting_payment',
    currency: 'EUR',
    total_minor: 500,
    created_at: NOW,
    pay_by: NOW + WINDOW,
    paid_at: null,
    cancelled_at: null,
    cancel_reason: null,
    payment_url: null,
    payment_instructions: null,
    payment_reference: null,
    needs_refund: false,
    ...over,
  };
}

/** Each movement as [kind, sku, on-hand delta, reserved delta, note]. */
const moves = (d: {
  writes: {
    movements: {
      kind: string;
      sku: string;
      on_hand_delta: number;
      reserved_delta: number;
      note: string | null;
    }[];
  };
}) => d.writes.movements.map((m) => [m.kind, m.sku, m.on_hand_delta, m.reserved_delta, m.note]);

function refusal(decide: () => unknown): Record<string, unknown> {
  try {
    decide();
  } catch (error) {
    if (error instanceof StockError) return { code: error.code, ...error.details };
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('decideOrderCheckout', () => {
  it('payment mode: the holds move from the cart to the order; reserved, the counter and the ledger stay', () => {
    const d = decideOrderCheckout(checkout({}));
    expect(d.order).toMatchObject({
      status: 'awaiting_payment',
      pay_by: NOW + WINDOW,
      paid_at: null,
      holder: 'grant_1',
      total_minor: 530,
    });
    expect(d.lines).toEqual([
      { sku: 'A', name: 'Product A', quantity: 2, unit_price_minor: 250, held: 2 },
      { sku: 'E', name: 'Product E', quantity: 3, unit_price_minor: 10, held: 0 },
    ]);
    expect(d.writes.stock.size).toBe(0);
    expect(d.writes.channels.size).toBe(0);
    expect(d.writes.movements).toEqual([]);
    expect([...d.writes.held.values()]).toEqual([{ cart_id: 'c1', sku: 'A', held: 0 }]);
    expect([...d.writes.orderHeld.values()]).toEqual([{ order_id: 'ord_1', sku: 'A', held: 2 }]);
  });

  it('direct mode: the sale as before, the order paid at once with no pay_by', () => {
    const d = decideOrderCheckout(checkout({ mode: 'direct' }));
    expect(d.order).toMatchObject({ status: 'paid', pay_by: null, paid_at: NOW, total_minor: 530 });
    expect(d.lines.every((l) => l.held === 0)).toBe(true);
    expect(Object.fromEntries(d.writes.stock)).toEqual({ A: { onHand: -2, reserved: -2, touched: true } });
    expect([...d.writes.channels]).toEqual([['claude', -2]]);
    expect(moves(d)).toEqual([
      ['sale', 'A', -2, -2, null],
      ['sale', 'E', 0, 0, null],
    ]);
    expect(d.writes.orderHeld.size).toBe(0);
  });

  it('payment mode on an expired cart holds its lines again first (all or nothing)', () => {
    const expired = { ...openCart, expires_at: NOW - 1 };
    const d = decideOrderCheckout(
      checkout({ cart: expired, lines: [line('A', 2, 0)], products: products(row('A', 5, 0)) }),
    );
    expect(moves(d)).toEqual([['reserve', 'A', 0, 2, 'cart revived']]);
    expect([...d.writes.orderHeld.values()]).toEqual([{ order_id: 'ord_1', sku: 'A', held: 2 }]);
    expect(
      refusal(() =>
        decideOrderCheckout(
          checkout({ cart: expired, lines: [line('A', 2, 0)], products: products(row('A', 1, 0)) }),
        ),
      ),
    ).toMatchObject({ code: 'OUT_OF_STOCK', sku: 'A', available: 1 });
  });

  it('an empty cart is refused in either mode', () => {
    for (const mode of ['payment', 'direct'] as const) {
      expect(refusal(() => decideOrderCheckout(checkout({ mode, lines: [] })))).toMatchObject({
        code: 'CART_EMPTY',
      });
    }
  });
});

describe('decideConfirmPayment', () => {
  const tracked = products(row('A', 5, 2));
  const confirm = (
    order: StoredOrder,
    lines: StoredOrderLine[],
    rows = tracked,
    expired = new Map<string, Hold[]>(),
  ) => decideConfirmPayment({ now: NOW + 60_000, order, lines, products: rows, reference: 'pi_1', expired });

  it('awaiting → paid: each line sold from its hold (sale), the hold cleared, the reference kept', () => {
    const d = confirm(stored({}), [orderLine('A', 2, 2)]);
    expect(d.changed).toBe(true);
    expect(d.order).toMatchObject({ status: 'paid', paid_at: NOW + 60_000, payment_reference: 'pi_1' });
    expect(moves(d)).toEqual([['sale', 'A', -2, -2, null]]);
    expect(d.writes.movements[0]).toMatchObject({ order_id: 'ord_1', cart_id: 'c1', channel: 'claude' });
    expect([...d.writes.channels]).toEqual([['claude', -2]]);
    expect([...d.writes.orderHeld.values()]).toEqual([{ order_id: 'ord_1', sku: 'A', held: 0 }]);
  });

  it('past pay_by but not yet swept, its units are still held: sold', () => {
    const d = decideConfirmPayment({
      now: NOW + WINDOW + 1,
      order: stored({}),
      lines: [orderLine('A', 2, 2)],
      products: tracked,
      reference: 'pi_1',
      expired: new Map(),
    });
    expect(d.order.status).toBe('paid');
    expect(moves(d)).toEqual([['sale', 'A', -2, -2, null]]);
  });

  it.each([
    ['paid', stored({ status: 'paid', paid_at: NOW, payment_reference: 'pi_1' })],
    [
      'flagged for refund',
      stored({ status: 'cancelled', cancel_reason: 'payment_timeout', needs_refund: true }),
    ],
  ])('%s: returned unchanged, nothing written (a repeated webhook)', (_, order) => {
    const d = confirm(order, [orderLine('A', 2, 0)]);
    expect(d.changed).toBe(false);
    expect(d.order).toBe(order);
    expect(d.writes.movements).toEqual([]);
  });

  it.each(['payment_timeout', 'payment_expired', 'grant_revoked'] as const)(
    'late payment (cancelled for %s) with stock left: sold again from what is available',
    (reason) => {
      const order = stored({ status: 'cancelled', cancel_reason: reason, cancelled_at: NOW + WINDOW });
      const d = confirm(order, [orderLine('A', 2, 0)], products(row('A', 5, 1)));
      expect(d.order).toMatchObject({
        status: 'paid',
        cancel_reason: null,
        cancelled_at: null,
        needs_refund: false,
      });
      expect(moves(d)).toEqual([['sale', 'A', -2, 0, 'late payment']]);
    },
  );

  it("late payment frees other carts' expired holds first", () => {
    const order = stored({ status: 'cancelled', cancel_reason: 'payment_timeout' });
    const expired = new Map([['A', [{ cart_id: 'old', held: 2, channel: 'web' }]]]);
    const d = confirm(order, [orderLine('A', 2, 0)], products(row('A', 2, 2)), expired);
    expect(d.order.status).toBe('paid');
    expect(moves(d)).toEqual([
      ['expire', 'A', 0, -2, null],
      ['sale', 'A', -2, 0, 'late payment'],
    ]);
  });

  it('late payment with the stock since sold: needs_refund with the reference, nothing sold or oversold', () => {
    const order = stored({
      status: 'cancelled',
      cancel_reason: 'payment_timeout',
      cancelled_at: NOW + WINDOW,
    });
    const d = confirm(
      order,
      [orderLine('A', 2, 0), orderLine('B', 1, 0)],
      products(row('A', 5, 4), row('B', 1, 0)),
    );
    expect(d.order).toMatchObject({
      status: 'cancelled',
      cancel_reason: 'payment_timeout',
      cancelled_at: NOW + WINDOW,
      needs_refund: true,
      payment_reference: 'pi_1',
    });
    expect(d.writes.movements).toEqual([]);
    expect(d.writes.stock.size).toBe(0);
  });

  it('cancelled by the merchant: ORDER_CLOSED, nothing changed', () => {
    const order = stored({ status: 'cancelled', cancel_reason: 'merchant' });
    expect(refusal(() => confirm(order, [orderLine('A', 2, 0)]))).toEqual({
      code: 'ORDER_CLOSED',
      order_id: 'ord_1',
      status: 'cancelled',
    });
  });

  it('an untracked line is recorded as sold with zero deltas', () => {
    const d = confirm(stored({}), [orderLine('E', 3, 0)], products(row('E', 0, 0, { track_stock: 0 })));
    expect(d.order.status).toBe('paid');
    expect(moves(d)).toEqual([['sale', 'E', 0, 0, null]]);
    expect(d.writes.stock.size).toBe(0);
  });
});

describe('decideCancelOrder', () => {
  const rows = products(row('A', 5, 2));
  const cancel = (
    order: StoredOrder,
    restock: boolean,
    reason: 'merchant' | 'payment_expired' = 'merchant',
  ) =>
    decideCancelOrder({
      now: NOW + 1_000,
      order,
      lines: [orderLine('A', 2, order.status === 'awaiting_payment' ? 2 : 0)],
      products: rows,
      restock,
      reason,
    });

  it('awaiting: its holds are released (restock makes no difference)', () => {
    for (const restock of [false, true]) {
      const d = cancel(stored({}), restock);
      expect(d.order).toMatchObject({
        status: 'cancelled',
        cancel_reason: 'merchant',
        cancelled_at: NOW + 1_000,
      });
      expect(moves(d)).toEqual([['release', 'A', 0, -2, 'merchant']]);
      expect(d.writes.movements[0]?.order_id).toBe('ord_1');
      expect([...d.writes.channels]).toEqual([['claude', -2]]);
    }
  });

  it('awaiting, the payment session expired: the holds expire', () => {
    const d = cancel(stored({}), false, 'payment_expired');
    expect(d.order.cancel_reason).toBe('payment_expired');
    expect(moves(d)).toEqual([['expire', 'A', 0, -2, 'payment_expired']]);
  });

  it('paid with restock: the units come back to on-hand (return)', () => {
    const d = cancel(stored({ status: 'paid', paid_at: NOW }), true);
    expect(d.order).toMatchObject({ status: 'cancelled', cancel_reason: 'merchant', paid_at: NOW });
    expect(moves(d)).toEqual([['return', 'A', 2, 0, 'order cancelled']]);
  });

  it('paid with restock, an untracked line: its return is recorded with no stock delta', () => {
    const d = decideCancelOrder({
      now: NOW,
      order: stored({ status: 'paid', paid_at: NOW }),
      lines: [orderLine('E', 3, 0)],
      products: products(row('E', 0, 0, { track_stock: 0 })),
      restock: true,
      reason: 'merchant',
    });
    expect(moves(d)).toEqual([['return', 'E', 0, 0, 'order cancelled']]);
    expect(d.writes.stock.size).toBe(0);
  });

  it('paid without restock: written off, nothing moves', () => {
    const d = cancel(stored({ status: 'paid', paid_at: NOW }), false);
    expect(d.order.status).toBe('cancelled');
    expect(d.writes.movements).toEqual([]);
  });

  it.each([
    ['a cancelled order', stored({ status: 'cancelled', cancel_reason: 'merchant' }), 'merchant'],
    ['a paid order whose session expired', stored({ status: 'paid', paid_at: NOW }), 'payment_expired'],
  ] as const)('%s is returned unchanged', (_, order, reason) => {
    const d = cancel(order, true, reason);
    expect(d.changed).toBe(false);
    expect(d.writes.movements).toEqual([]);
  });
});

describe('decideOrderTimeouts', () => {
  it('frees every hold of the overdue orders (expire, payment_timeout), cancelled as of pay_by', () => {
    const d = decideOrderTimeouts(
      [
        { order: stored({}), lines: [orderLine('A', 2, 2), orderLine('E', 1, 0)] },
        {
          order: stored({ id: 'ord_2', cart_id: 'c2', channel: 'web', pay_by: NOW + 5 }),
          lines: [orderLine('A', 1, 1)],
        },
      ],
      products(row('A', 5, 3)),
    );
    expect(d.units).toBe(3);
    expect(d.orders.map((o) => [o.id, o.status, o.cancel_reason, o.cancelled_at])).toEqual([
      ['ord_1', 'cancelled', 'payment_timeout', NOW + WINDOW],
      ['ord_2', 'cancelled', 'payment_timeout', NOW + 5],
    ]);
    expect(moves(d)).toEqual([
      ['expire', 'A', 0, -2, 'payment_timeout'],
      ['expire', 'A', 0, -1, 'payment_timeout'],
    ]);
    expect(Object.fromEntries(d.writes.channels)).toEqual({ claude: -2, web: -1 });
    expect(d.writes.stock.get('A')).toEqual({ onHand: 0, reserved: -3, touched: false });
  });
});

describe('orderView and orderSummary', () => {
  it('an order past pay_by reads as cancelled for timeout before any sweep', () => {
    const view = orderView(stored({}), [orderLine('A', 2, 2)], NOW + WINDOW);
    expect(view).toMatchObject({
      status: 'cancelled',
      cancel_reason: 'payment_timeout',
      cancelled_at: new Date(NOW + WINDOW).toISOString(),
    });
    expect(orderView(stored({}), [orderLine('A', 2, 2)], NOW + WINDOW - 1).status).toBe('awaiting_payment');
  });

  it('tells the shopper where to pay and by when', () => {
    const url = orderView(stored({ payment_url: 'https://pay.example/ord_1' }), [orderLine('A', 2, 2)], NOW);
    expect(orderSummary(url)).toBe(
      'Order ord_1 (5.00 EUR) awaits payment. Pay at https://pay.example/ord_1 by 14:30 UTC (2026-01-01T14:30:00.000Z); the items are held until then.',
    );
    const manual = orderView(stored({ payment_instructions: 'Pay on pickup.' }), [], NOW);
    expect(orderSummary(manual)).toContain('To pay by 14:30 UTC (2026-01-01T14:30:00.000Z): Pay on pickup.');
    const paid = orderView(stored({ status: 'paid', paid_at: NOW }), [], NOW);
    expect(orderSummary(paid)).toBe('Order ord_1 (5.00 EUR) is paid.');
  });
});

describe('checkout modes and the holder cap', () => {
  it.each([
    [undefined, true, 'payment'],
    [undefined, false, 'direct'],
    ['direct', true, 'direct'],
    ['payment', false, 'payment'],
  ] as const)('setting %s, OAuth-mapped %s: %s', (setting, mapped, expected) => {
    expect(checkoutModeOf(setting, mapped)).toBe(expected);
  });

  it('an OAuth host maps its channel: the presets unless the merchant denied or remapped their host', () => {
    expect([...oauthChannels([])].sort()).toEqual(['chatgpt', 'claude']);
    expect(
      [
        ...oauthChannels([
          { host: 'chatgpt.com', channel: null },
          { host: 'shop.example', channel: 'web-ai' },
        ]),
      ].sort(),
    ).toEqual(['claude', 'web-ai']);
    // claude.com still maps to claude when only claude.ai is denied.
    expect([...oauthChannels([{ host: 'claude.ai', channel: null }])].sort()).toEqual(['chatgpt', 'claude']);
  });

  const limits = { ...DEFAULT_LIMITS, maxHolderReserved: 5 };
  it.each([
    [{ held: 1, awaiting: 2, adding: 2, reviving: false }, 'ok'],
    [{ held: 1, awaiting: 3, adding: 2, reviving: false }, 'LIMIT_EXCEEDED'],
    [{ held: 0, awaiting: 5, adding: 1, reviving: false }, 'LIMIT_EXCEEDED'],
  ])('units in orders awaiting payment count: %o → %s', (check, expected) => {
    let result = 'ok';
    try {
      checkHolderCap(limits, 'grant_1', check);
    } catch (error) {
      result = (error as StockError).code;
      expect((error as StockError).message).toContain('in orders awaiting payment');
    }
    expect(result).toBe(expected);
  });
});
