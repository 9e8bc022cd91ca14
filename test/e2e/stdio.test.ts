// The built CLI over stdio, driven by the SDK's real client, as Claude Desktop would.
import { join } from 'node:path';
import { Client as V2Client } from '@modelcontextprotocol/client';
import { StdioClientTransport as V2StdioTransport } from '@modelcontextprotocol/client/stdio';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, runCli, stdioClient } from '../helpers/cli.js';
import { call, refusalCode, text } from '../helpers/mcp.js';
import { tempDir } from '../helpers/temp.js';

const DEMO = join(ROOT, 'examples/demo-catalog.json');

describe('stocklock serve --stdio', () => {
  it('sells the demo catalog end to end and keeps the books balanced', async () => {
    const db = join(tempDir().dir, 'shop.db');
    expect(runCli(['import', DEMO, '--db', db]).status).toBe(0);
    // Claude Desktop on the merchant's own machine: the merchant sells direct on this channel.
    const set = runCli(['channel', 'set', 'claude', '--checkout', 'direct', '--db', db]);
    expect(set.stdout).toContain('Channel "claude" checks out in direct mode');
    const client = await stdioClient(['--db', db, '--channel', 'claude']);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).not.toContain('restock');
      const cart = await call(client, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 1 });
      const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
      const order = await call(client, 'checkout', { cart_id: cartId });
      expect(text(order)).toMatch(
        /^Order ord_\w+ placed: 1 × Limited edition rain jacket, total 149.00 EUR\.$/,
      );
      expect(refusalCode(await call(client, 'add_to_cart', { sku: 'JACKET-LTD', quantity: 1 }))).toBe(
        'OUT_OF_STOCK',
      );
    } finally {
      await client.close();
    }
    const stock = runCli(['stock', 'JACKET-LTD', '--json', '--db', db]);
    expect(JSON.parse(stock.stdout)).toMatchObject([
      { sku: 'JACKET-LTD', on_hand: 0, reserved: 0, available: 0 },
    ]);
    const audit = runCli(['audit', '--db', db]);
    expect(audit.stdout).toContain('OK: every invariant holds');
    expect(audit.status).toBe(0);
  });

  it('offers admin tools only when started with --admin, and takes flags from the environment', async () => {
    const db = join(tempDir().dir, 'shop.db');
    runCli(['import', DEMO, '--db', db]);
    const client = await stdioClient([], {
      STOCKLOCK_DB: db,
      STOCKLOCK_CHANNEL: 'ops',
      STOCKLOCK_ADMIN: '1',
    });
    try {
      const restocked = await call(client, 'restock', { sku: 'JACKET-LTD', quantity: 2 });
      expect(restocked.structuredContent).toMatchObject({ sku: 'JACKET-LTD', on_hand: 3 });
    } finally {
      await client.close();
    }
  });

  it('migrates a brand-new database on start and on `migrate`', () => {
    const db = join(tempDir().dir, 'fresh.db');
    const migrate = runCli(['migrate', '--db', db]);
    expect(migrate.status).toBe(0);
    expect(runCli(['stock', '--json', '--db', db]).stdout.trim()).toBe('[]');
  });

  it('answers --help and --version', () => {
    expect(runCli(['--help']).stdout).toContain('serve');
    expect(runCli(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(CLI).toMatch(/dist\/cli\.js$/);
  });

  it.each(['auto', 'legacy'] as const)(
    'serves the v2 client with versionNegotiation %s on its own era',
    async (mode) => {
      const db = join(tempDir().dir, 'shop.db');
      expect(runCli(['import', DEMO, '--db', db]).status).toBe(0);
      expect(runCli(['channel', 'set', 'claude', '--checkout', 'direct', '--db', db]).status).toBe(0);
      const client = new V2Client(
        { name: 'stocklock-e2e', version: '1.0.0' },
        { versionNegotiation: { mode } },
      );
      await client.connect(
        new V2StdioTransport({
          command: process.execPath,
          args: [CLI, 'serve', '--stdio', '--db', db, '--channel', 'claude'],
          env: { ...(process.env as Record<string, string>), STOCKLOCK_LOG_LEVEL: 'warn' },
          stderr: 'pipe',
        }),
      );
      try {
        expect(client.getProtocolEra()).toBe(mode === 'auto' ? 'modern' : 'legacy');
        expect((await client.listTools()).tools).toHaveLength(7);
        const cart = await client.callTool({
          name: 'add_to_cart',
          arguments: { sku: 'JACKET-LTD', quantity: 1 },
        });
        const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
        const order = await client.callTool({ name: 'checkout', arguments: { cart_id: cartId } });
        expect((order.structuredContent as { status: string }).status).toBe('paid');
      } finally {
        await client.close();
      }
    },
  );
});
