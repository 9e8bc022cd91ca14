// What a decision writes: stock deltas, line holds, channel counters and ledger rows, for a store to apply.
import type { MovementKind } from './types.js';
import type { ProductRow } from './views.js';

export interface Movement {
  sku: string;
  kind: MovementKind;
  quantity: number;
  on_hand_delta: number;
  reserved_delta: number;
  cart_id: string | null;
  order_id: string | null;
  channel: string | null;
  note: string | null;
}

/** A cart line as stored: how many units it wants and how many it holds right now. */
export interface StoredLine {
  sku: string;
  quantity: number;
  held: number;
}

/** A hold of another cart, found under the SKU's lock; with `order_id`, a line of that cart's order awaiting payment. */
export interface Hold {
  cart_id: string;
  held: number;
  channel: string;
  order_id?: string | null;
}

export interface StockDelta {
  onHand: number;
  reserved: number;
  /** The product's updated_at moves too (stock counts changed, not only holds). */
  touched: boolean;
}

/**
 * The writes of one transaction, in the order a store applies them: products' counts (one delta per SKU),
 * lines' holds (their new value), channel hold counters, then the ledger. Decisions add to it through the
 * methods below, which keep every invariant `audit` checks true by construction: a hold moves `reserved`, its
 * channel's counter and the ledger together.
 */
export class Writes {
  readonly stock = new Map<string, StockDelta>();
  /** `cart_id sku` → the line's new `held`. */
  readonly held = new Map<string, { cart_id: string; sku: string; held: number }>();
  /** `order_id sku` → the order line's new `held` (an order awaiting payment holds its units). */
  readonly orderHeld = new Map<string, { order_id: string; sku: string; held: number }>();
  readonly channels = new Map<string, number>();
  readonly movements: Movement[] = [];

  constructor(
    /** The product rows read under their locks; decisions read them through available() and current(). */
    private readonly products: ReadonlyMap<string, ProductRow>,
  ) {}

  /** The product row as it will be after the writes so far. */
  current(sku: string): ProductRow {
    const row = this.products.get(sku);
    if (!row) throw new Error(`product ${sku} decided on without its row`);
    const delta = this.stock.get(sku);
    if (!delta) return row;
    return { ...row, on_hand: row.on_hand + delta.onHand, reserved: row.reserved + delta.reserved };
  }

  available(sku: string): number {
    const row = this.current(sku);
    return row.on_hand - row.reserved;
  }

  changeStock(sku: string, onHand: number, reserved: number, touched: boolean): void {
    const delta = this.stock.get(sku) ?? { onHand: 0, reserved: 0, touched: false };
    delta.onHand += onHand;
    delta.reserved += reserved;
    delta.touched ||= touched;
    this.stock.set(sku, delta);
  }

  setHeld(cartId: string, sku: string, held: number): void {
    this.held.set(`${cartId} ${sku}`, { cart_id: cartId, sku, held });
  }

  setOrderHeld(orderId: string, sku: string, held: number): void {
    this.orderHeld.set(`${orderId} ${sku}`, { order_id: orderId, sku, held });
  }

  addChannel(channel: string, delta: number): void {
    if (delta !== 0) this.channels.set(channel, (this.channels.get(channel) ?? 0) + delta);
  }

  record(movement: Omit<Movement, 'note'> & { note?: string | null }): void {
    this.movements.push({ note: null, ...movement });
  }

  /** Frees one line's hold (a cart's, or its order's): the line, `reserved`, the channel's counter and a row. */
  release(sku: string, hold: Hold, kind: 'release' | 'expire', note: string | null = null): void {
    if (hold.held <= 0) return;
    if (hold.order_id) this.setOrderHeld(hold.order_id, sku, 0);
    else this.setHeld(hold.cart_id, sku, 0);
    this.changeStock(sku, 0, -hold.held, false);
    this.addChannel(hold.channel, -hold.held);
    this.record({
      sku,
      kind,
      quantity: hold.held,
      on_hand_delta: 0,
      reserved_delta: -hold.held,
      cart_id: hold.cart_id,
      order_id: hold.order_id ?? null,
      channel: hold.channel,
      note,
    });
  }
}
