// The orders part of the InventoryStore contract, run against every store: checkout in both modes, payment on
// time and late, the payment window's end by the clock, cancellation with and without restock, the holder cap.
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS, DEFAULT_PAYMENT_WINDOW_MS, iso, type Limits } from '../../src/domain/rules.js';
import type { CallContext } from '../../src/domain/types.js';
import type { InventoryStore, StoreOptions } from '../../src/storage/store.js';
import { CONTRACT_CATALOG as CATALOG } from '../helpers/catalog.js';
import { admin, expectAuditOk, expectStockError, level, type MakeStore, T0, TTL, web } from './contract.js';

const WINDOW = DEFAULT_PAYMENT_WINDOW_MS;
/** An OAuth shopper on claude, a channel an OAuth host signs in as: it checks out with payment by default. */
const alice: CallContext = { channel: 'claude', holder: 'grant_alice' };
const bob: CallContext = { channel: 'claude', holder: 'grant_bob' };
const merchant: CallContext = { channel: 'cli', admin: true };

export function describeOrdersContract(name: string, makeStore: MakeStore): void {
  describe(`InventoryStore orders contract: ${name}`, () => {
    const open: InventoryStore[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((store) => store.close()));
    });

    async function setup(limits: Partial<Limits> = {}) {
      const clock = new ManualClock(T0);
      const options: StoreOptions = {
        clock,
        reservationTtlMs: TTL,
        limits: { ...DEFAULT_LIMITS, ...limits },
        lockTimeoutMs: 2_000,
        paymentWindowMs: WINDOW,
      };
      const store = await makeStore(options);
      open.push(store);
      await store.importProducts(admin, CATALOG);
      return { store, clock };
    }

    /** A checkout of `quantity` MUG by `ctx`. */
    async function buy(store: InventoryStore, ctx: CallContext, quantity = 2, sku = 'MUG') {
      const cart = await store.addToCart(ctx, { sku, quantity });
      return store.checkout(ctx, { cartId: cart.cart_id });
    }

    it('channel modes: presets of OAuth hosts pay first, others sell direct, the merchant decides', async () => {
      const { store } = await setup();
      await store.createToken('web', false);
      const modes = Object.fromEntries((await store.channelSettings()).map((s) => [s.channel, s]));
      expect(modes.claude).toEqual({ channel: 'claude', checkout: 'payment', explicit: false });
      expect(modes.chatgpt?.checkout).toBe('payment');
      expect(modes.web).toEqual({ channel: 'web', checkout: 'direct', explicit: false });
      expect(await store.setCheckoutMode('web', 'payment')).toEqual({
        channel: 'web',
        checkout: 'payment',
        explicit: true,
      });
      await store.setCheckoutMode('claude', 'direct');
      expect((await buy(store, web)).status).toBe('awaiting_payment');
      expect((await buy(store, alice, 1)).status).toBe('paid');
      await expectAuditOk(store);
    });

    it('payment mode: the order awaits payment until now + the window, its units still reserved', async () => {
      const { store, clock } = await setup();
      clock.advance(1_000);
      const order = await buy(store, alice);
      expect(order).toMatchObject({
        channel: 'claude',
        status: 'awaiting_payment',
        total_minor: 2500,
        pay_by: iso(T0 + 1_000 + WINDOW),
        paid_at: null,
        payment_url: null,
        needs_refund: false,
      });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 2, available: 3 });
      expect((await store.getCart(alice, order.cart_id)).status).toBe('checked_out');
      // The shopper sees it; another shopper or channel does not; the merchant sees every order.
      expect(await store.getOrder(alice, order.order_id)).toEqual(order);
      await expectStockError(store.getOrder(bob, order.order_id), 'ORDER_NOT_FOUND');
      await expectStockError(store.getOrder(web, order.order_id), 'ORDER_NOT_FOUND');
      expect(await store.getOrder(merchant, order.order_id)).toEqual(order);
      await expectAuditOk(store);
    });

    it('confirming sells the held units (sale); confirming again changes nothing', async () => {
      const { store, clock } = await setup();
      const order = await buy(store, alice);
      clock.advance(60_000);
      const paid = await store.confirmPayment(merchant, { orderId: order.order_id, reference: 'pi_1' });
      expect(paid).toMatchObject({ status: 'paid', paid_at: iso(T0 + 60_000), payment_reference: 'pi_1' });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0, available: 3 });
      expect(await store.confirmPayment(merchant, { orderId: order.order_id, reference: 'pi_1' })).toEqual(
        paid,
      );
      expect(await store.getOrder(alice, order.order_id)).toEqual(paid);
      await expectStockError(
        store.confirmPayment(merchant, { orderId: 'ord_nope', reference: 'x' }),
        'ORDER_NOT_FOUND',
      );
      await expectAuditOk(store);
    });

    it('the payment window ends by the clock: cancelled for timeout, its units back on sale', async () => {
      const { store, clock } = await setup();
      const order = await buy(store, alice);
      clock.advance(WINDOW);
      // Past pay_by it reads as cancelled before any sweep.
      expect(await store.getOrder(alice, order.order_id)).toMatchObject({
        status: 'cancelled',
        cancel_reason: 'payment_timeout',
      });
      expect(await store.sweepOverdueOrders()).toEqual({ orders: 1, units: 2 });
      expect(await store.sweepOverdueOrders()).toEqual({ orders: 0, units: 0 });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0, available: 5 });
      expect(await store.getOrder(alice, order.order_id)).toMatchObject({
        status: 'cancelled',
        cancel_reason: 'payment_timeout',
        cancelled_at: iso(T0 + WINDOW),
      });
      expect((await store.listOrders({ status: 'cancelled' })).map((o) => o.order_id)).toEqual([
        order.order_id,
      ]);
      await expectAuditOk(store);
    });

    it('a late payment with the stock still there sells it again', async () => {
      const { store, clock } = await setup();
      const order = await buy(store, alice);
      clock.advance(WINDOW + 1);
      await store.sweepOverdueOrders();
      const paid = await store.confirmPayment(merchant, { orderId: order.order_id, reference: 'late' });
      expect(paid).toMatchObject({ status: 'paid', cancel_reason: null, needs_refund: false });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0 });
      await expectAuditOk(store);
    });

    it('a late payment for stock since sold oversells nothing and is flagged needs_refund', async () => {
      const { store, clock } = await setup();
      const order = await buy(store, alice, 1, 'LAST-ONE');
      clock.advance(WINDOW + 1);
      await store.sweepOverdueOrders();
      expect((await buy(store, web, 1, 'LAST-ONE')).status).toBe('paid');
      const late = await store.confirmPayment(merchant, { orderId: order.order_id, reference: 'pi_late' });
      expect(late).toMatchObject({
        status: 'cancelled',
        cancel_reason: 'payment_timeout',
        needs_refund: true,
        payment_reference: 'pi_late',
      });
      expect(await level(store, 'LAST-ONE')).toMatchObject({ on_hand: 0, reserved: 0 });
      // A repeated webhook changes nothing; the merchant finds it in the list.
      expect(await store.confirmPayment(merchant, { orderId: order.order_id, reference: 'pi_late' })).toEqual(
        late,
      );
      const listed = await store.listOrders({ channel: 'claude' });
      expect(listed.find((o) => o.order_id === order.order_id)?.needs_refund).toBe(true);
      await expectAuditOk(store);
    });

    it('cancelling: awaiting releases, paid with restock returns, paid without writes off', async () => {
      const { store } = await setup();
      const awaiting = await buy(store, alice, 1);
      const cancelled = await store.cancelOrder(merchant, { orderId: awaiting.order_id, restock: false });
      expect(cancelled).toMatchObject({ status: 'cancelled', cancel_reason: 'merchant' });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0 });
      await expectStockError(
        store.confirmPayment(merchant, { orderId: awaiting.order_id, reference: 'x' }),
        'ORDER_CLOSED',
      );

      const returned = await buy(store, web, 2);
      await store.cancelOrder(merchant, { orderId: returned.order_id, restock: true });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 5, reserved: 0 });

      const writtenOff = await buy(store, web, 2);
      await store.cancelOrder(merchant, { orderId: writtenOff.order_id, restock: false });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0 });
      // Cancelling again changes nothing.
      await store.cancelOrder(merchant, { orderId: writtenOff.order_id, restock: true });
      expect(await level(store, 'MUG')).toMatchObject({ on_hand: 3, reserved: 0 });
      await expectAuditOk(store);
    });

    it("a holder's orders awaiting payment count toward its cap until paid", async () => {
      const { store } = await setup({ maxHolderReserved: 3 });
      const order = await buy(store, alice, 2);
      await expectStockError(store.addToCart(alice, { sku: 'MUG', quantity: 2 }), 'LIMIT_EXCEEDED', {
        cap: 'per_holder',
      });
      await store.addToCart(bob, { sku: 'MUG', quantity: 2 });
      await store.confirmPayment(merchant, { orderId: order.order_id, reference: 'pi' });
      await store.addToCart(alice, { sku: 'TSHIRT-M', quantity: 3 });
      await expectAuditOk(store);
    });

    it('a payment link is attached after the commit; a keyed retry and the reference find it', async () => {
      const { store } = await setup();
      const cart = await store.addToCart(alice, { sku: 'MUG', quantity: 1 });
      const order = await store.checkout(alice, { cartId: cart.cart_id, idempotencyKey: 'k1' });
      const linked = await store.attachPayment(order.order_id, {
        url: 'https://pay.example/ord',
        reference: 'cs_1',
      });
      expect(linked).toMatchObject({ payment_url: 'https://pay.example/ord', payment_reference: 'cs_1' });
      expect(await store.checkout(alice, { cartId: cart.cart_id, idempotencyKey: 'k1' })).toEqual(linked);
      expect(await store.checkout(alice, { cartId: cart.cart_id })).toEqual(linked);
      expect(await store.findOrderByReference('cs_1')).toEqual(linked);
      expect(await store.findOrderByReference('cs_other')).toBeUndefined();
      await expectAuditOk(store);
    });

    it('lists orders newest first, by status and channel', async () => {
      const { store, clock } = await setup();
      const a = await buy(store, alice, 1);
      clock.advance(1);
      const b = await buy(store, web, 1);
      clock.advance(1);
      const c = await buy(store, bob, 1);
      const ids = (orders: { order_id: string }[]) => orders.map((o) => o.order_id);
      expect(ids(await store.listOrders({}))).toEqual([c.order_id, b.order_id, a.order_id]);
      expect(ids(await store.listOrders({ status: 'paid' }))).toEqual([b.order_id]);
      expect(ids(await store.listOrders({ status: 'awaiting_payment', channel: 'claude' }))).toEqual([
        c.order_id,
        a.order_id,
      ]);
      expect(ids(await store.listOrders({ limit: 1 }))).toEqual([c.order_id]);
      expect((await store.listOrders({}))[0]?.lines).toEqual(c.lines);
    });
  });
}
