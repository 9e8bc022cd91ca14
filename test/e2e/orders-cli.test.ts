// The built CLI on orders: channel modes, the order list with a refund owed standing out, show, paid, cancel.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../../src/domain/rules.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import { ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

const DEMO = join(ROOT, 'examples/demo-catalog.json');

describe('stocklock channel, orders and order', () => {
  it('sets modes, lists orders, confirms and cancels them, and the books balance', async () => {
    const dir = tempDir();
    const db = join(dir.dir, 'shop.db');
    expect(runCli(['import', DEMO, '--db', db]).status).toBe(0);
    expect(runCli(['channel', 'set', 'telegram', '--checkout', 'payment', '--db', db]).stdout).toContain(
      'Channel "telegram" checks out in payment mode',
    );
    const bad = runCli(['channel', 'set', 'telegram', '--checkout', 'later', '--db', db]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--checkout must be payment or direct, got "later"');
    const listed = runCli(['channel', 'list', '--json', '--db', db]);
    expect(JSON.parse(listed.stdout)).toEqual(
      expect.arrayContaining([
        { channel: 'claude', checkout: 'payment', explicit: false },
        { channel: 'telegram', checkout: 'payment', explicit: true },
      ]),
    );

    // An order awaiting payment, made through the store as a bot would.
    const store = openSqliteStore(db, {
      clock: new ManualClock(Date.now()),
      reservationTtlMs: 15 * 60_000,
      limits: DEFAULT_LIMITS,
      lockTimeoutMs: 5_000,
    });
    const bot = { channel: 'telegram' };
    const orderOf = async () => {
      const cart = await store.addToCart(bot, { sku: 'JACKET-LTD', quantity: 1 });
      return (await store.checkout(bot, { cartId: cart.cart_id })).order_id;
    };
    const first = await orderOf();
    await store.close();

    const awaiting = runCli(['orders', '--status', 'awaiting_payment', '--db', db]);
    expect(awaiting.stdout).toContain(first);
    expect(awaiting.stdout).toContain('awaiting payment');
    const paid = runCli(['order', 'paid', first, '--reference', 'transfer-1', '--db', db]);
    expect(paid.status, paid.stderr).toBe(0);
    expect(paid.stdout).toContain(`Order ${first} is paid.`);
    expect(paid.stdout).toContain('Payment:  transfer-1');
    const shown = JSON.parse(runCli(['order', 'show', first, '--json', '--db', db]).stdout);
    expect(shown).toMatchObject({ order_id: first, status: 'paid', payment_reference: 'transfer-1' });

    const cancelled = runCli(['order', 'cancel', first, '--restock', '--db', db]);
    expect(cancelled.stdout).toContain(`Order ${first} is cancelled.`);
    expect(runCli(['orders', '--status', 'cancelled', '--db', db]).stdout).toContain('cancelled (merchant)');
    const missing = runCli(['order', 'show', 'ord_nope', '--db', db]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('ORDER_NOT_FOUND');
    const wrong = runCli(['orders', '--status', 'pending', '--db', db]);
    expect(wrong.stderr).toContain('--status must be one of awaiting_payment, paid, cancelled');
    const stock = JSON.parse(runCli(['stock', 'JACKET-LTD', '--json', '--db', db]).stdout);
    expect(stock).toMatchObject([{ on_hand: 1, reserved: 0 }]);
    const audit = runCli(['audit', '--db', db]);
    expect(audit.stdout).toContain('OK: every invariant holds');
    dir.remove();
  });
});
