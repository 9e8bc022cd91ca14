// SIGKILL an HTTP server in the middle of concurrent checkouts, and in the middle of batched add_to_carts: every
// acknowledged call survives, the books balance.
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { Database } from '../../src/storage/sqlite/driver.js';
import { ROOT, runCliAsync, spawnCli, waitHealthy } from '../helpers/cli.js';
import { call, connectClient, freePort, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';

const BUYERS = 16;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const ORDERS_BEFORE_KILL = 20;

/** Buys one unit at a time until the server dies, adding each order id the server acknowledged. */
async function buyUntilCut(client: Client, stop: { now: boolean }, acknowledged: string[]): Promise<void> {
  while (!stop.now) {
    try {
      const cart = await call(client, 'add_to_cart', { sku: 'STICKER-PACK', quantity: 1 });
      if (cart.isError) continue;
      const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
      const order = await call(client, 'checkout', { cart_id: cartId });
      if (!order.isError) acknowledged.push((order.structuredContent as { order_id: string }).order_id);
    } catch {
      return; // the connection died with the server
    }
  }
}

describe('crash safety', () => {
  it('keeps every acknowledged order across a SIGKILL under load, and serves again after restart', async () => {
    const tmp = tempDir('stocklock-crash-');
    cleanups.push(tmp.remove);
    const db = join(tmp.dir, 'stocklock.db');
    expect((await runCliAsync(['import', join(ROOT, 'examples/demo-catalog.json'), '--db', db])).status).toBe(
      0,
    );
    const token = (await runCliAsync(['token', 'create', '--channel', 'web', '--db', db])).stdout.trim();

    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    const server = spawnCli(['serve', '--http', '--port', String(port), '--db', db]);
    cleanups.push(server.kill);
    await waitHealthy(url, server);
    const clients = await Promise.all(Array.from({ length: BUYERS }, () => connectClient(url, token)));
    cleanups.push(() =>
      Promise.all(clients.map((c) => c.close().catch(() => undefined))).then(() => undefined),
    );

    const stop = { now: false };
    const acknowledged: string[] = [];
    const buying = Promise.all(clients.map((client) => buyUntilCut(client, stop, acknowledged)));
    // Kill once sales are flowing, however slow the machine is.
    await waitFor(() => {
      if (server.child.exitCode !== null) throw new Error(`the server exited early:\n${server.stderr()}`);
      return acknowledged.length >= ORDERS_BEFORE_KILL;
    }, 30_000);
    server.child.kill('SIGKILL');
    await server.exited;
    stop.now = true;
    // A call whose response stream was cut is not failed by the SDK: it would wait out the 60 s
    // request timeout. Closing the clients fails every call in flight at once.
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await buying;
    expect(acknowledged.length).toBeGreaterThanOrEqual(ORDERS_BEFORE_KILL);

    // Every order a client saw acknowledged is in the database; nothing is half-written.
    const conn = new Database(db, { readonly: true });
    const stored = new Set(
      (conn.prepare('SELECT id FROM orders').all() as { id: string }[]).map((r) => r.id),
    );
    conn.close();
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    const audit = await runCliAsync(['audit', '--db', db]);
    expect(audit.stdout).toContain('OK');
    expect(audit.status).toBe(0);

    // The same file serves again, and sales go on from where the books stand.
    const restarted = spawnCli(['serve', '--http', '--port', String(port), '--db', db]);
    cleanups.push(restarted.kill);
    await waitHealthy(url, restarted);
    const client = await connectClient(url, token);
    cleanups.push(() => client.close().catch(() => undefined));
    const stock = await call(client, 'check_stock', { skus: ['STICKER-PACK'] });
    const available = (stock.structuredContent as { products: { available: number }[] }).products[0]
      ?.available;
    expect(available).toBe(200 - stored.size - heldAtCrash(db));
  });
});

const ADDERS = 32;
const ADDS_BEFORE_KILL = 200;

/** add_to_cart of one unit into a new cart, again and again until the server dies, noting every acknowledged cart. */
async function addUntilCut(client: Client, stop: { now: boolean }, acknowledged: string[]): Promise<void> {
  while (!stop.now) {
    try {
      const cart = await call(client, 'add_to_cart', { sku: 'STICKER-PACK', quantity: 1 });
      if (!cart.isError) acknowledged.push((cart.structuredContent as { cart_id: string }).cart_id);
    } catch {
      return;
    }
  }
}

describe('crash safety with group commit', () => {
  it('keeps every acknowledged add_to_cart when SIGKILL lands while batches of them are being written', async () => {
    const tmp = tempDir('stocklock-crash-batch-');
    cleanups.push(tmp.remove);
    const db = join(tmp.dir, 'stocklock.db');
    expect((await runCliAsync(['import', join(ROOT, 'examples/demo-catalog.json'), '--db', db])).status).toBe(
      0,
    );
    // Far more stickers than the run can add, so every call is a write (a sold-out refusal would not be).
    expect((await runCliAsync(['set-stock', 'STICKER-PACK', '100000', '--db', db])).status).toBe(0);
    const token = (await runCliAsync(['token', 'create', '--channel', 'web', '--db', db])).stdout.trim();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    // 32 clients keep 32 calls in flight, so the writes the kill interrupts are batches, not lone writes.
    const server = spawnCli([
      'serve',
      '--http',
      '--port',
      String(port),
      '--db',
      db,
      '--max-channel-reserved',
      '100000',
    ]);
    cleanups.push(server.kill);
    await waitHealthy(url, server);
    const clients = await Promise.all(Array.from({ length: ADDERS }, () => connectClient(url, token)));
    cleanups.push(() =>
      Promise.all(clients.map((c) => c.close().catch(() => undefined))).then(() => undefined),
    );

    const stop = { now: false };
    const acknowledged: string[] = [];
    const adding = Promise.all(clients.map((client) => addUntilCut(client, stop, acknowledged)));
    await waitFor(() => {
      if (server.child.exitCode !== null) throw new Error(`the server exited early:\n${server.stderr()}`);
      return acknowledged.length >= ADDS_BEFORE_KILL;
    }, 30_000);
    server.child.kill('SIGKILL');
    await server.exited;
    stop.now = true;
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await adding;

    const conn = new Database(db, { readonly: true });
    const held = new Map(
      (
        conn.prepare("SELECT cart_id, held FROM cart_lines WHERE sku = 'STICKER-PACK'").all() as {
          cart_id: string;
          held: number;
        }[]
      ).map((row) => [row.cart_id, row.held]),
    );
    conn.close();
    // Every acknowledged cart is there, holding its unit; the crash may add carts nobody was told about, never lose one.
    expect(acknowledged.filter((id) => held.get(id) !== 1)).toEqual([]);
    expect(held.size).toBeGreaterThanOrEqual(acknowledged.length);
    expect(heldAtCrash(db)).toBe(held.size);
    const audit = await runCliAsync(['audit', '--db', db]);
    expect(audit.stdout).toContain('OK');
    expect(audit.status).toBe(0);
  });
});

/** Units held by carts the crash left open (they expire later like any abandoned cart). */
function heldAtCrash(db: string): number {
  const conn = new Database(db, { readonly: true });
  const row = conn.prepare("SELECT reserved FROM products WHERE sku = 'STICKER-PACK'").get() as {
    reserved: number;
  };
  conn.close();
  return row.reserved;
}
