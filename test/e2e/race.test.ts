// Many OS processes on one SQLite file race for the last units: stocklock sells exactly them, a naive shop oversells.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Database } from '../../src/storage/sqlite/driver.js';
import { runCli, stdioClient } from '../helpers/cli.js';
import { sleep, waitFor } from '../helpers/http.js';
import { call, refusalCode } from '../helpers/mcp.js';
import { tempDir } from '../helpers/temp.js';

const PROCESSES = 4;
const BUYERS_PER_PROCESS = 8;
const LAST_UNITS = 20;
const SKU = 'LAST-ONES';
/** How long each wave's calls gather behind the write lock before it is released. */
const GATE_HELD_MS = 100;
const NAIVE_SHOP = fileURLToPath(new URL('../fixtures/naive-shop.mjs', import.meta.url));

/** A database holding LAST_UNITS of one SKU, imported by the real CLI. */
function lastUnits(name: string): string {
  const dir = tempDir().dir;
  const catalog = join(dir, 'catalog.json');
  writeFileSync(
    catalog,
    JSON.stringify([{ sku: SKU, name: 'The last ones', price: '10.00', currency: 'EUR', stock: LAST_UNITS }]),
  );
  const db = join(dir, name);
  expect(runCli(['import', catalog, '--db', db]).status).toBe(0);
  return db;
}

interface Buyer {
  shop: Client;
  sold: number;
  cartId?: string;
  /** Which call finally said OUT_OF_STOCK. */
  refusedBy?: 'add_to_cart' | 'checkout';
}

/**
 * Sends one call for every buyer while another connection holds the file's write lock, then lets go:
 * the lock is the barrier, so every process meets the others on the file at the same moment (a
 * sweep, an import or a backup holds it the same way in a real shop). It is held until every process
 * has read its calls (where /proc can tell) and at least GATE_HELD_MS.
 */
async function throughGate(
  gate: BetterSqlite3.Database,
  buyers: Buyer[],
  request: (buyer: Buyer) => [name: string, args: Record<string, unknown>],
): Promise<CallToolResult[]> {
  const shops = [...new Set(buyers.map((buyer) => buyer.shop))];
  gate.exec('BEGIN IMMEDIATE');
  const before = shops.map(bytesRead);
  const answers = Promise.all(buyers.map((buyer) => call(buyer.shop, ...request(buyer))));
  const allTookTheirCalls = () =>
    shops.every((shop, i) => {
      const [then, now] = [before[i], bytesRead(shop)];
      return then === undefined || now === undefined || now > then;
    });
  await Promise.all([sleep(GATE_HELD_MS), waitFor(allTookTheirCalls, 20_000, 5)]);
  gate.exec('COMMIT');
  return answers;
}

/** Bytes the shop's process has read so far (its calls arrive on stdin), or undefined off Linux. */
function bytesRead(shop: Client): number | undefined {
  const pid = (shop.transport as StdioClientTransport | undefined)?.pid;
  try {
    const rchar = /^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1];
    return rchar === undefined ? undefined : Number(rchar);
  } catch {
    return undefined;
  }
}

/**
 * The harness both shops run through: PROCESSES server processes on one file, BUYERS_PER_PROCESS buyers
 * on each, buying one unit at a time until the shop says OUT_OF_STOCK. Every process is started before
 * any buyer starts; in every round all buyers still buying ask for a cart at once, then all who got one
 * check out at once, each wave through the gate.
 */
async function race(db: string, startShop: (index: number) => Promise<Client>): Promise<Buyer[]> {
  const shops = await Promise.all(Array.from({ length: PROCESSES }, (_, i) => startShop(i)));
  const gate = new Database(db);
  gate.pragma('busy_timeout = 10000');
  try {
    // Interleaved by shop, so every process receives its first call of a wave at once.
    const buyers: Buyer[] = Array.from({ length: BUYERS_PER_PROCESS * PROCESSES }, (_, i) => ({
      shop: shops[i % PROCESSES] as Client,
      sold: 0,
    }));
    let buying = buyers;
    while (buying.length > 0) {
      const carts = await throughGate(gate, buying, () => ['add_to_cart', { sku: SKU, quantity: 1 }]);
      const withCart = buying.filter((buyer, i) => stillBuying(buyer, carts[i], 'add_to_cart'));
      const orders = await throughGate(gate, withCart, (buyer) => ['checkout', { cart_id: buyer.cartId }]);
      buying = withCart.filter((buyer, i) => stillBuying(buyer, orders[i], 'checkout'));
      for (const buyer of buying) buyer.sold++;
    }
    return buyers;
  } finally {
    gate.close();
    await Promise.all(shops.map((shop) => shop.close()));
  }
}

/** False once the shop refuses this buyer, which must be for OUT_OF_STOCK. */
function stillBuying(
  buyer: Buyer,
  result: CallToolResult | undefined,
  tool: 'add_to_cart' | 'checkout',
): boolean {
  if (!result) throw new Error(`no answer to ${tool}`);
  if (!result.isError) {
    if (tool === 'add_to_cart') buyer.cartId = (result.structuredContent as { cart_id: string }).cart_id;
    return true;
  }
  expect(refusalCode(result), tool).toBe('OUT_OF_STOCK');
  buyer.refusedBy = tool;
  return false;
}

const totalSold = (buyers: Buyer[]) => buyers.reduce((sum, buyer) => sum + buyer.sold, 0);

describe(`${PROCESSES} processes x ${BUYERS_PER_PROCESS} buyers buy the last ${LAST_UNITS} units until sold out`, () => {
  it('stocklock sells exactly the last units, never refuses a reserved checkout, and the audit is clean', async () => {
    const db = lastUnits('race.db');
    const buyers = await race(db, (i) => stdioClient(['--db', db, '--channel', `channel-${i}`]));
    expect(totalSold(buyers)).toBe(LAST_UNITS);
    // A reservation is a promise: checkout of a reserved cart never meets OUT_OF_STOCK.
    expect(buyers.filter((buyer) => buyer.refusedBy === 'checkout')).toHaveLength(0);
    const stock = JSON.parse(runCli(['stock', '--json', '--db', db]).stdout);
    expect(stock).toMatchObject([{ sku: SKU, on_hand: 0, reserved: 0 }]);
    const audit = runCli(['audit', '--db', db]);
    expect(audit.stdout).toContain('OK');
    expect(audit.status).toBe(0);
  });

  it('a naive read-then-write shop, in the same harness and with no sleep between read and write, oversells', async () => {
    const db = lastUnits('naive.db');
    const buyers = await race(db, async () => {
      const shop = new Client({ name: 'stocklock-e2e', version: '1.0.0' });
      await shop.connect(
        new StdioClientTransport({ command: process.execPath, args: [NAIVE_SHOP, db], stderr: 'pipe' }),
      );
      await shop.listTools();
      return shop;
    });
    // Lost updates: two checkouts read the same on_hand and both write it minus one.
    expect(totalSold(buyers)).toBeGreaterThan(LAST_UNITS);
  });
});
