// The lock-free sold-out refusal against the locked decision it stands in for: whenever it refuses, decideAddToCart
// on the same rows refuses identically; it stays silent wherever another answer could come first.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { soldOutWithoutLock } from '../../src/domain/catalog-decisions.js';
import { decideAddToCart } from '../../src/domain/decisions.js';
import { StockError } from '../../src/domain/errors.js';
import type { Limits } from '../../src/domain/rules.js';
import type { ProductRow } from '../../src/domain/views.js';
import type { Hold } from '../../src/domain/writes.js';

const NOW = Date.UTC(2026, 0, 1, 12);
const LIMITS: Limits = {
  maxLineQuantity: 4,
  maxCartQuantity: 6,
  maxChannelReserved: 50,
  maxHolderReserved: 50,
};

function row(onHand: number, reserved: number, extra: Partial<ProductRow> = {}): ProductRow {
  return {
    sku: 'A',
    name: 'A',
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

/** What the locked decision says for a new cart: 'ok', or the refusal's code and details. */
function locked(product: ProductRow | undefined, quantity: number, expired: Hold[]): unknown {
  try {
    decideAddToCart({
      now: NOW,
      ttlMs: 60_000,
      maxHoldMs: 3_600_000,
      limits: LIMITS,
      channel: 'web',
      sku: 'A',
      quantity,
      cart: undefined,
      cartId: undefined,
      lines: [],
      products: new Map(product ? [['A', product]] : []),
      expired: new Map([['A', expired]]),
      newCartId: 'cart_new',
    });
    return 'ok';
  } catch (error) {
    if (!(error instanceof StockError)) throw error;
    return { code: error.code, details: error.details };
  }
}

describe('soldOutWithoutLock', () => {
  it('refuses only what the locked decision refuses with OUT_OF_STOCK, with the same details', () => {
    fc.assert(
      fc.property(
        fc.option(
          fc.record({
            onHand: fc.nat(6),
            reservedShare: fc.nat(6),
            track: fc.boolean(),
            active: fc.boolean(),
          }),
        ),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 3 }),
        (drawn, quantity, expiredHolds) => {
          const expired = expiredHolds.map((held, i) => ({ cart_id: `old${i}`, held, channel: 'bot' }));
          const expiredHeld = expiredHolds.reduce((a, b) => a + b, 0);
          // Reserved always covers the expired holds, as the books require.
          const product = drawn
            ? row(drawn.onHand + expiredHeld, Math.min(drawn.onHand, drawn.reservedShare) + expiredHeld, {
                track_stock: drawn.track ? 1 : 0,
                active: drawn.active ? 1 : 0,
              })
            : undefined;
          const refusal = soldOutWithoutLock(
            { sku: 'A', quantity, limits: LIMITS },
            { product, expiredHeld },
          );
          const decided = locked(product, quantity, expired);
          if (refusal) expect({ code: refusal.code, details: refusal.details }).toEqual(decided);
          // Every OUT_OF_STOCK of a new cart without a key is caught without the lock.
          else expect(decided).not.toMatchObject({ code: 'OUT_OF_STOCK' });
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('leaves keyed calls and calls into a cart to the locked decision', () => {
    const read = { product: row(1, 1), expiredHeld: 0 };
    expect(soldOutWithoutLock({ sku: 'A', quantity: 1, limits: LIMITS }, read)?.code).toBe('OUT_OF_STOCK');
    expect(soldOutWithoutLock({ sku: 'A', quantity: 1, limits: LIMITS, idempotencyKey: 'k' }, read)).toBe(
      undefined,
    );
    expect(soldOutWithoutLock({ sku: 'A', quantity: 1, limits: LIMITS, cartId: 'cart_x' }, read)).toBe(
      undefined,
    );
  });
});
