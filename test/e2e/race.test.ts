// Many OS processes on one SQLite file race for the last units: stocklock sells exactly K, a naive shop oversells.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { describe, expect, it } from 'vitest';
import { runCli, stdioClient } from '../helpers/cli.js';
import { call, refusalCode } from '../helpers/mcp.js';
import { tempDir } from '../helpers/sqlite.js';

const PROCESSES = 4;
const BUYERS_PER_PROCESS = 8;
const LAST_UNITS = 5;
const NAIVE_BUYER = fileURLToPath(new URL('../fixtures/naive-buyer.mjs', import.meta.url));

function catalog(dir: string): string {
  const path = join(dir, 'catalog.json');
  const rows = [
    { sku: 'LAST-ONES', name: 'The last ones', price: '10.00', currency: 'EUR', stock: LAST_UNITS },
  ];
  writeFileSync(path, JSON.stringify(rows));
  return path;
}

async function buy(client: Client): Promise<'sold' | 'refused'> {
  const cart = await call(client, 'add_to_cart', { sku: 'LAST-ONES', quantity: 1 });
  if (cart.isError) {
    expect(refusalCode(cart)).toBe('OUT_OF_STOCK');
    return 'refused';
  }
  const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
  const order = await call(client, 'checkout', { cart_id: cartId });
  expect(order.isError, JSON.stringify(order.content)).toBeFalsy();
  return 'sold';
}

describe(`${PROCESSES} processes x ${BUYERS_PER_PROCESS} buyers for the last ${LAST_UNITS} units`, () => {
  it('stocklock sells exactly the last units and the audit is clean', async () => {
    const dir = tempDir();
    const db = join(dir, 'race.db');
    expect(runCli(['import', catalog(dir), '--db', db]).status).toBe(0);
    const clients = await Promise.all(
      Array.from({ length: PROCESSES }, (_, i) => stdioClient(['--db', db, '--channel', `channel-${i}`])),
    );
    try {
      const outcomes = await Promise.all(
        clients.flatMap((client) => Array.from({ length: BUYERS_PER_PROCESS }, () => buy(client))),
      );
      expect(outcomes.filter((o) => o === 'sold')).toHaveLength(LAST_UNITS);
      expect(outcomes.filter((o) => o === 'refused')).toHaveLength(
        PROCESSES * BUYERS_PER_PROCESS - LAST_UNITS,
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    const stock = JSON.parse(runCli(['stock', '--json', '--db', db]).stdout);
    expect(stock).toMatchObject([{ sku: 'LAST-ONES', on_hand: 0, reserved: 0 }]);
    const audit = runCli(['audit', '--db', db]);
    expect(audit.stdout).toContain('OK');
    expect(audit.status).toBe(0);
  });

  it('the naive read-then-write shop oversells in the same race, so this race can catch an oversell', async () => {
    const dir = tempDir();
    const db = join(dir, 'naive.db');
    expect(runCli(['import', catalog(dir), '--db', db]).status).toBe(0);
    const workers = Array.from({ length: PROCESSES }, () =>
      spawn(process.execPath, [NAIVE_BUYER, db, 'LAST-ONES', String(BUYERS_PER_PROCESS)], { stdio: 'pipe' }),
    );
    const sold = Promise.all(
      workers.map(
        (worker) =>
          new Promise<number>((resolve, reject) => {
            let out = '';
            worker.stdout.on('data', (chunk) => {
              out += chunk;
            });
            worker.on('error', reject);
            worker.on('exit', (code) =>
              code === 0 ? resolve(Number(out.trim())) : reject(new Error(`exit ${code}`)),
            );
          }),
      ),
    );
    // Every worker is connected before any buyer starts.
    await new Promise((r) => setTimeout(r, 300));
    for (const worker of workers) worker.stdin.end('go\n');
    const total = (await sold).reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(LAST_UNITS);
  });
});
