// Orders over real HTTP through the SDK's client: a payment channel's checkout awaits payment with its units held,
// the admin's confirm_payment sells them, and a direct channel still sells at checkout; the books balance.
import { afterEach, describe, expect, it } from 'vitest';
import { call, firstText, type HttpFixture, startHttp } from '../helpers/http.js';

describe('orders over HTTP', () => {
  const fixtures: HttpFixture[] = [];
  afterEach(async () => {
    await Promise.all(fixtures.splice(0).map((fixture) => fixture.dispose()));
  });

  it('a payment channel awaits payment, confirm_payment makes it paid; a direct channel sells at checkout', async () => {
    const http = await startHttp();
    fixtures.push(http);
    // A channel the merchant sets to payment (an OAuth host's channel, such as claude, is by default).
    await http.store.setCheckoutMode('shop-ai', 'payment');
    const shopper = await http.connect(await http.token('shop-ai'));
    const backend = await http.connect(await http.token('web'));
    const merchant = await http.connect(await http.token('ops', true));

    const added = await call(shopper, 'add_to_cart', { sku: 'LAST-FIVE', quantity: 2 });
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;
    const order = await call(shopper, 'checkout', { cart_id: cartId, idempotency_key: 'pay-1' });
    expect(order.isError, firstText(order)).toBeFalsy();
    const awaiting = order.structuredContent as { order_id: string; status: string; pay_by: string };
    expect(awaiting).toMatchObject({ status: 'awaiting_payment', total_minor: 19800, channel: 'shop-ai' });
    expect(firstText(order)).toContain('the items are held until then');
    expect((await http.store.stockLevels(['LAST-FIVE']))[0]).toMatchObject({ on_hand: 5, reserved: 2 });

    // Another channel cannot see it; the shopper can, and is told when it is paid.
    const foreign = await call(backend, 'get_order', { order_id: awaiting.order_id });
    expect(firstText(foreign)).toMatch(/^ORDER_NOT_FOUND: /);
    // An admin tool is unknown on a customer connection: JSON-RPC -32602.
    await expect(
      call(shopper, 'confirm_payment', { order_id: awaiting.order_id, reference: 'x' }),
    ).rejects.toMatchObject({ code: -32602 });

    const paid = await call(merchant, 'confirm_payment', {
      order_id: awaiting.order_id,
      reference: 'bank-7',
    });
    expect(paid.structuredContent).toMatchObject({ status: 'paid', payment_reference: 'bank-7' });
    const seen = await call(shopper, 'get_order', { order_id: awaiting.order_id });
    expect(seen.structuredContent).toMatchObject({ status: 'paid' });
    expect(firstText(seen)).toMatch(/is paid\.$/);
    expect((await http.store.stockLevels(['LAST-FIVE']))[0]).toMatchObject({ on_hand: 3, reserved: 0 });

    // A direct channel: the checkout is the sale.
    const direct = await call(backend, 'add_to_cart', { sku: 'LAST-FIVE', quantity: 1 });
    const sold = await call(backend, 'checkout', {
      cart_id: (direct.structuredContent as { cart_id: string }).cart_id,
    });
    expect(sold.structuredContent).toMatchObject({ status: 'paid', pay_by: null });
    expect((await http.store.stockLevels(['LAST-FIVE']))[0]).toMatchObject({ on_hand: 2, reserved: 0 });

    // The merchant cancels the paid sale with restock: the unit comes back.
    const orderId = (sold.structuredContent as { order_id: string }).order_id;
    const cancelled = await call(merchant, 'cancel_order', { order_id: orderId, restock: true });
    expect(cancelled.structuredContent).toMatchObject({ status: 'cancelled', cancel_reason: 'merchant' });
    expect((await http.store.stockLevels(['LAST-FIVE']))[0]).toMatchObject({ on_hand: 3, reserved: 0 });
    expect((await http.store.audit()).ok).toBe(true);
  });
});
