import { afterEach, describe, expect, it } from 'vitest';
import { ALL_TOOLS } from '../../src/mcp/tools/index.js';
import { call, connect, details, refusalCode, text } from '../helpers/mcp.js';
import { sqliteStore, type TestStore } from '../helpers/sqlite.js';

let open: TestStore[] = [];
async function setup(...args: Parameters<typeof sqliteStore>) {
  const t = await sqliteStore(...args);
  open.push(t);
  return t;
}
afterEach(async () => {
  for (const t of open) {
    expect((await t.store.audit()).violations).toEqual([]);
    await t.store.close();
  }
  open = [];
});

const CUSTOMER_TOOLS = [
  'search_products',
  'check_stock',
  'add_to_cart',
  'get_cart',
  'checkout',
  'get_order',
  'release_cart',
];

describe('tool listing', () => {
  it('offers the seven customer tools to a customer connection and eleven to an admin', async () => {
    const { store } = await setup();
    const customer = await connect(store, 'web');
    const admin = await connect(store, 'web', true);
    expect((await customer.listTools()).tools.map((t) => t.name)).toEqual(CUSTOMER_TOOLS);
    expect((await admin.listTools()).tools.map((t) => t.name)).toEqual([
      ...CUSTOMER_TOOLS,
      'restock',
      'set_stock',
      'upsert_product',
      'confirm_payment',
      'cancel_order',
    ]);
  });

  it('describes every tool for a language model: title, all four hints, output schema, described fields', async () => {
    const { store } = await setup();
    const { tools } = await (await connect(store, 'web', true)).listTools();
    for (const tool of tools) {
      expect(tool.title, tool.name).toBeTruthy();
      expect(tool.description?.length, tool.name).toBeGreaterThan(40);
      expect(tool.outputSchema, tool.name).toBeDefined();
      for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const) {
        expect(typeof tool.annotations?.[hint], `${tool.name}.${hint}`).toBe('boolean');
      }
      for (const [field, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
        expect((schema as { description?: string }).description, `${tool.name}.${field}`).toBeTruthy();
      }
    }
  });

  it('refuses every admin tool on a customer connection exactly like an unknown tool, changing nothing', async () => {
    const { store } = await setup();
    const customer = await connect(store, 'web');
    const admin = await connect(store, 'web', true);
    const customerTools = new Set((await customer.listTools()).tools.map((t) => t.name));
    const adminOnly = (await admin.listTools()).tools.map((t) => t.name).filter((n) => !customerTools.has(n));
    expect(adminOnly).toEqual(['restock', 'set_stock', 'upsert_product', 'confirm_payment', 'cancel_order']);
    // An order to confirm and cancel: web checks out direct, so it is paid.
    const cart = await store.addToCart({ channel: 'web' }, { sku: 'JACKET-LTD', quantity: 1 });
    const { order_id } = await store.checkout({ channel: 'web' }, { cartId: cart.cart_id });
    // Valid arguments: the admin connection accepts each call below, so only the scope refuses it.
    const validCalls: Record<string, Record<string, unknown>> = {
      restock: { sku: 'JACKET-LTD', quantity: 5 },
      set_stock: { sku: 'JACKET-LTD', quantity: 7 },
      upsert_product: { sku: 'NEW-1', name: 'New thing', price_minor: 999, currency: 'EUR' },
      confirm_payment: { order_id, reference: 'cash' },
      cancel_order: { order_id, restock: true },
    };
    // An unknown tool is a JSON-RPC error -32602 (the spec's "Unknown tool" example), not a tool result.
    const refusal = (name: string, args: Record<string, unknown>) =>
      call(customer, name, args).then(
        () => 'answered',
        (error: { code?: number; message?: string }) => `${error.code}: ${error.message}`,
      );
    const unknown = await refusal('no_such_tool', {});
    expect(unknown).toMatch(/^-32602: .*Tool no_such_tool not found/);

    const before = await store.stockLevels();
    const movements = (await store.audit()).checked;
    for (const tool of adminOnly) {
      expect(await refusal(tool, validCalls[tool] ?? {}), tool).toBe(unknown.replace('no_such_tool', tool));
    }
    expect(await store.stockLevels()).toEqual(before);
    expect((await store.audit()).checked).toEqual(movements);

    for (const tool of adminOnly) {
      const accepted = await call(admin, tool, validCalls[tool] ?? {});
      expect(accepted.isError, `${tool}: ${text(accepted)}`).toBeFalsy();
    }
    expect(await store.stockLevels()).not.toEqual(before);
  });
});

describe('a sale through the tools', () => {
  it('searches, reserves, checks out, and every result matches its output schema', async () => {
    const { store } = await setup();
    const client = await connect(store, 'claude');
    const found = await call(client, 'search_products', { query: 'jacket' });
    expect(found.structuredContent).toMatchObject({
      products: [{ sku: 'JACKET-LTD', available: 1, in_stock: true }],
    });
    expect(text(found)).toContain('JACKET-LTD');

    const cart = await call(client, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 1 });
    const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
    expect(cartId).toMatch(/^cart_[0-9A-Za-z]{22}$/);
    expect(text(cart)).toContain('149.00 EUR');

    const stock = await call(client, 'check_stock', { skus: ['JACKET-LTD', 'NOPE'] });
    expect(stock.structuredContent).toMatchObject({
      products: [{ sku: 'JACKET-LTD', available: 0, in_stock: false }],
      unknown_skus: ['NOPE'],
    });

    // claude is a channel an OAuth host signs in as: its checkout awaits payment, the jacket held meanwhile.
    const order = await call(client, 'checkout', { cart_id: cartId });
    expect(order.structuredContent).toMatchObject({
      cart_id: cartId,
      total_minor: 14900,
      currency: 'EUR',
      status: 'awaiting_payment',
    });
    expect(text(order)).toMatch(/awaits payment\. .*; the items are held until then\.$/);
    const again = await call(client, 'checkout', { cart_id: cartId });
    expect(again.structuredContent).toEqual(order.structuredContent);
    const orderId = (order.structuredContent as { order_id: string }).order_id;
    const shown = await call(client, 'get_order', { order_id: orderId });
    expect(shown.structuredContent).toEqual(order.structuredContent);
    expect((await store.stockLevels(['JACKET-LTD']))[0]).toMatchObject({ on_hand: 1, reserved: 1 });
    const admin = await connect(store, 'web', true);
    const paid = await call(admin, 'confirm_payment', { order_id: orderId, reference: 'bank-42' });
    expect(paid.structuredContent).toMatchObject({ status: 'paid', payment_reference: 'bank-42' });

    const got = await call(client, 'get_cart', { cart_id: cartId });
    expect(got.structuredContent).toMatchObject({
      status: 'checked_out',
      order_id: (order.structuredContent as { order_id: string }).order_id,
    });

    // The client validated each structuredContent against the listed schema; check it here as well.
    for (const [tool, result] of [
      ['search_products', found],
      ['check_stock', stock],
      ['add_to_cart', cart],
      ['checkout', order],
      ['get_order', shown],
      ['confirm_payment', paid],
      ['get_cart', got],
    ] as const) {
      const definition = ALL_TOOLS.find((t) => t.name === tool);
      expect(definition?.outputSchema.safeParse(result.structuredContent).success, tool).toBe(true);
    }
    expect((await store.stockLevels(['JACKET-LTD']))[0]).toMatchObject({ on_hand: 0, reserved: 0 });
  });

  it('releases a line and then the whole cart', async () => {
    const { store } = await setup();
    const client = await connect(store, 'web');
    const cart = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
    const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
    await call(client, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 3, cart_id: cartId });
    const line = await call(client, 'release_cart', { cart_id: cartId, sku: 'MUG-WHT' });
    expect(line.structuredContent).toMatchObject({
      cart: { status: 'open', item_count: 3 },
      released: [{ sku: 'MUG-WHT', quantity: 2 }],
    });
    const all = await call(client, 'release_cart', { cart_id: cartId });
    expect(all.structuredContent).toMatchObject({
      cart: { status: 'released' },
      released: [{ sku: 'TEE-BLK-M', quantity: 3 }],
    });
    const twice = await call(client, 'release_cart', { cart_id: cartId });
    expect(twice.structuredContent).toMatchObject({ released: [] });
    expect(refusalCode(await call(client, 'checkout', { cart_id: cartId }))).toBe('CART_CLOSED');
    expect((await store.stockLevels(['MUG-WHT', 'TEE-BLK-M'])).map((l) => l.reserved)).toEqual([0, 0]);
  });

  it('lets admin tools change stock and the catalog', async () => {
    const { store } = await setup();
    const admin = await connect(store, 'ops', true);
    expect(
      (await call(admin, 'restock', { sku: 'JACKET-LTD', quantity: 4 })).structuredContent,
    ).toMatchObject({ on_hand: 5 });
    expect(
      (await call(admin, 'set_stock', { sku: 'JACKET-LTD', quantity: 2 })).structuredContent,
    ).toMatchObject({ on_hand: 2 });
    const created = await call(admin, 'upsert_product', {
      sku: 'NEW-1',
      name: 'New thing',
      price_minor: 999,
      currency: 'EUR',
    });
    expect(created.structuredContent).toMatchObject({ sku: 'NEW-1', available: 0, in_stock: false });
    const cart = await call(admin, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 2 });
    expect(cart.isError).toBeFalsy();
    const below = await call(admin, 'set_stock', { sku: 'JACKET-LTD', quantity: 1 });
    expect(refusalCode(below)).toBe('BELOW_RESERVED');
    expect(details(below)).toMatchObject({ sku: 'JACKET-LTD', reserved: 2 });
  });
});

describe('refusals', () => {
  it('reports OUT_OF_STOCK with details and no structuredContent', async () => {
    const { store } = await setup();
    const client = await connect(store, 'web');
    const result = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 6 });
    expect(refusalCode(result)).toBe('OUT_OF_STOCK');
    expect(details(result)).toMatchObject({ sku: 'MUG-WHT', requested: 6, available: 5 });
    expect(text(result)).toMatch(/^OUT_OF_STOCK: Only 5 of "MUG-WHT" available, 6 requested/);
  });

  it('hides a cart from every other channel', async () => {
    const { store } = await setup();
    const web = await connect(store, 'web');
    const telegram = await connect(store, 'telegram');
    const cart = await call(web, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
    for (const [tool, args] of [
      ['get_cart', { cart_id: cartId }],
      ['add_to_cart', { cart_id: cartId, sku: 'MUG-WHT', quantity: 1 }],
      ['checkout', { cart_id: cartId }],
      ['release_cart', { cart_id: cartId }],
    ] as const) {
      const result = await call(telegram, tool, args);
      expect(refusalCode(result), tool).toBe('CART_NOT_FOUND');
      expect(details(result)).toMatchObject({ cart_id: cartId });
    }
    expect((await call(web, 'get_cart', { cart_id: cartId })).structuredContent).toMatchObject({
      status: 'open',
      item_count: 1,
    });
  });

  it('replays an idempotent add_to_cart and refuses a reused key for another request', async () => {
    const { store } = await setup();
    const client = await connect(store, 'voice');
    const first = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2, idempotency_key: 'k-1' });
    const replay = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2, idempotency_key: 'k-1' });
    expect(replay.structuredContent).toEqual(first.structuredContent);
    expect((await store.stockLevels(['MUG-WHT']))[0]?.reserved).toBe(2);
    const conflict = await call(client, 'add_to_cart', {
      sku: 'MUG-WHT',
      quantity: 3,
      idempotency_key: 'k-1',
    });
    expect(refusalCode(conflict)).toBe('IDEMPOTENCY_CONFLICT');
    expect((await store.stockLevels(['MUG-WHT']))[0]?.reserved).toBe(2);
  });

  // Each row: tool, arguments, expected code. Every one must change nothing.
  const BAD_INPUTS: [string, Record<string, unknown>, string][] = [
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 0 }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: -1 }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 1.5 }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 1e12 }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: '2' }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'MUG-WHT' }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: '', quantity: 1 }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'X'.repeat(65), quantity: 1 }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: "MUG'; DROP TABLE products;--", quantity: 1 }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 1, channel: 'admin' }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'NOPE', quantity: 1 }, 'UNKNOWN_SKU'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 101 }, 'LIMIT_EXCEEDED'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 1, cart_id: 'cart_doesnotexist' }, 'CART_NOT_FOUND'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 1, idempotency_key: '' }, 'INVALID_INPUT'],
    ['add_to_cart', { sku: 'MUG-WHT', quantity: 1, cart_id: 'c'.repeat(101) }, 'INVALID_INPUT'],
    ['check_stock', { skus: [] }, 'INVALID_INPUT'],
    ['check_stock', { skus: Array.from({ length: 101 }, (_, i) => `S${i}`) }, 'INVALID_INPUT'],
    ['check_stock', { skus: 'MUG-WHT' }, 'INVALID_INPUT'],
    ['check_stock', { skus: ['../../etc/passwd'] }, 'INVALID_INPUT'],
    ['search_products', { query: 'mug', limit: 0 }, 'INVALID_INPUT'],
    ['search_products', { query: 'mug', limit: 51 }, 'INVALID_INPUT'],
    ['search_products', { query: 'x'.repeat(201) }, 'INVALID_INPUT'],
    ['get_cart', {}, 'INVALID_INPUT'],
    ['get_cart', { cart_id: 'cart_nope' }, 'CART_NOT_FOUND'],
    ['checkout', { cart_id: 42 }, 'INVALID_INPUT'],
    ['checkout', { cart_id: 'cart_nope' }, 'CART_NOT_FOUND'],
    ['release_cart', { cart_id: 'cart_nope', sku: 'MUG WHT' }, 'INVALID_INPUT'],
    ['release_cart', { cart_id: 'cart_nope' }, 'CART_NOT_FOUND'],
  ];

  it.each(BAD_INPUTS)('%s %j is refused with %s and changes nothing', async (tool, args, code) => {
    const { store } = await setup();
    const client = await connect(store, 'web');
    const before = await store.stockLevels();
    const moves = (await store.audit()).checked;
    const result = await call(client, tool, args);
    expect(refusalCode(result)).toBe(code);
    expect(text(result)).not.toMatch(/MCP error/);
    expect(await store.stockLevels()).toEqual(before);
    expect((await store.audit()).checked).toEqual(moves);
  });

  it('names the field in an INVALID_INPUT refusal', async () => {
    const { store } = await setup();
    const client = await connect(store, 'web');
    const result = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 0 });
    expect(text(result)).toBe(
      'INVALID_INPUT: Invalid arguments for add_to_cart: quantity: must be at least 1. Fix the arguments and call again.',
    );
    expect(details(result)).toMatchObject({ tool: 'add_to_cart', issues: [{ field: 'quantity' }] });
  });

  it('rejects a checkout of an empty cart with CART_EMPTY', async () => {
    const { store } = await setup();
    const client = await connect(store, 'web');
    const cart = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 1 });
    const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
    await call(client, 'release_cart', { cart_id: cartId, sku: 'MUG-WHT' });
    expect(refusalCode(await call(client, 'checkout', { cart_id: cartId }))).toBe('CART_EMPTY');
  });
});

describe('hoarding', () => {
  it('stops a channel that opens cart after cart at the per-channel cap, and no other channel', async () => {
    const { store } = await setup({ limits: { maxChannelReserved: 8 } }, [
      { sku: 'PLENTY', name: 'Plenty of stock', price_minor: 100, currency: 'EUR', stock: 1_000 },
    ]);
    const hoarder = await connect(store, 'bot');
    const shopper = await connect(store, 'web');
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) {
      const result = await call(hoarder, 'add_to_cart', { sku: 'PLENTY', quantity: 1 });
      outcomes.push(result.isError ? refusalCode(result) : 'ok');
      if (result.isError) expect(details(result)).toMatchObject({ cap: 'per_channel', limit: 8 });
    }
    expect(outcomes).toEqual([...Array(8).fill('ok'), ...Array(4).fill('LIMIT_EXCEEDED')]);
    expect((await call(shopper, 'add_to_cart', { sku: 'PLENTY', quantity: 5 })).isError).toBeFalsy();
    expect((await store.stockLevels(['PLENTY']))[0]).toMatchObject({ reserved: 13, available: 987 });
  });
});

describe('expiry seen through the tools', () => {
  it('shows an expired cart as expired and its stock as available before any sweep', async () => {
    const { store, clock } = await setup({ reservationTtlMs: 60_000 });
    const web = await connect(store, 'web');
    const voice = await connect(store, 'voice');
    const cart = await call(web, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 1 });
    const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
    expect(refusalCode(await call(voice, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 1 }))).toBe(
      'OUT_OF_STOCK',
    );
    clock.advance(60_001);
    expect((await call(web, 'get_cart', { cart_id: cartId })).structuredContent).toMatchObject({
      status: 'expired',
    });
    expect((await call(voice, 'check_stock', { skus: ['JACKET-LTD'] })).structuredContent).toMatchObject({
      products: [{ available: 1 }],
    });
    const won = await call(voice, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 1 });
    expect(won.isError).toBeFalsy();
    const late = await call(web, 'checkout', { cart_id: cartId });
    expect(refusalCode(late)).toBe('OUT_OF_STOCK');
    expect(details(late)).toMatchObject({ sku: 'JACKET-LTD', requested: 1, available: 0 });
  });
});
