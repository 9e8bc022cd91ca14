// The built CLI over Streamable HTTP: `serve --http` with a token from `token create`, and `start` on a brand-new database.
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningCli, spawnCli, waitHealthy } from '../helpers/cli.js';
import {
  ADMIN_TOOLS,
  CUSTOMER_TOOLS,
  call,
  connectClient,
  firstText,
  freePort,
  healthz,
  rawInitialize,
  waitFor,
} from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli.js');
const DEMO = join(ROOT, 'examples', 'demo-catalog.json');
const run = promisify(execFile);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function spawnTracked(args: string[]): RunningCli {
  const running = spawnCli(args);
  cleanups.push(running.kill);
  return running;
}

describe('stocklock serve --http (built CLI)', () => {
  it('serves tools to a token from `token create` and exits 0 on SIGTERM', async () => {
    const tmp = tempDir('stocklock-e2e-http-');
    cleanups.push(tmp.remove);
    const db = join(tmp.dir, 'stocklock.db');
    await run(process.execPath, [CLI, 'import', DEMO, '--db', db]);
    const created = await run(process.execPath, [CLI, 'token', 'create', '--channel', 'web', '--db', db]);
    const token = created.stdout.trim();
    expect(token).toMatch(/^slk_/);

    const port = await freePort();
    const server = spawnTracked(['serve', '--http', '--port', String(port), '--db', db]);
    const url = `http://127.0.0.1:${port}/mcp`;
    await waitHealthy(url, server);

    await expect(connectClient(url)).rejects.toMatchObject({ code: 401 });
    const client = await connectClient(url, token);
    cleanups.push(() => client.close().catch(() => undefined));
    const tools = (await client.listTools()).tools.map((tool) => tool.name);
    expect(tools.sort()).toEqual(CUSTOMER_TOOLS);

    const added = await call(client, 'add_to_cart', { sku: 'MUG-WHT', quantity: 2 });
    expect(added.isError, firstText(added)).toBeFalsy();
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;
    const order = await call(client, 'checkout', { cart_id: cartId });
    expect(order.isError, firstText(order)).toBeFalsy();
    expect((order.structuredContent as { order_id: string }).order_id).toMatch(/^ord_/);

    // SIGTERM with a client still connected (its GET stream open): a clean exit.
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.stderr()).not.toContain(token);

    const audit = await run(process.execPath, [CLI, 'audit', '--db', db]);
    expect(audit.stdout).toContain('OK');
    const stock = await run(process.execPath, [CLI, 'stock', 'MUG-WHT', '--json', '--db', db]);
    expect(JSON.parse(stock.stdout)).toMatchObject([{ sku: 'MUG-WHT', on_hand: 58, reserved: 0 }]);
  });

  it("answers an 8 MB POST with a 413 that Node's fetch and the SDK client read, not a broken pipe", async () => {
    const tmp = tempDir('stocklock-e2e-http-');
    cleanups.push(tmp.remove);
    const db = join(tmp.dir, 'stocklock.db');
    await run(process.execPath, [CLI, 'import', DEMO, '--db', db]);
    const token = (
      await run(process.execPath, [CLI, 'token', 'create', '--channel', 'web', '--db', db])
    ).stdout.trim();
    const port = await freePort();
    const server = spawnTracked(['serve', '--http', '--port', String(port), '--db', db]);
    const url = `http://127.0.0.1:${port}/mcp`;
    await waitHealthy(url, server);
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      Authorization: `Bearer ${token}`,
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      const response = await fetch(url, { method: 'POST', headers, body: 'x'.repeat(8 * 1024 * 1024) });
      expect(response.status).toBe(413);
      expect(await response.json()).toMatchObject({ error: { code: -32000 } });
    }
    const client = await connectClient(url, token);
    cleanups.push(() => client.close().catch(() => undefined));
    await expect(
      call(client, 'search_products', { query: 'q'.repeat(8 * 1024 * 1024) }),
    ).rejects.toMatchObject({
      code: 413,
    });
    expect((await call(client, 'search_products', { query: 'mug' })).isError).toBeFalsy();
  });

  it('exits on SIGTERM with 1,000 sessions open after the reader of its output has gone', async () => {
    const tmp = tempDir('stocklock-e2e-http-');
    cleanups.push(tmp.remove);
    const db = join(tmp.dir, 'stocklock.db');
    await run(process.execPath, [CLI, 'import', DEMO, '--db', db]);
    const port = await freePort();
    const server = spawnTracked([
      'serve',
      '--http',
      '--no-auth',
      '--port',
      String(port),
      '--db',
      db,
      '--max-sessions',
      '2000',
      '--max-sessions-per-credential',
      '2000',
    ]);
    const url = `http://127.0.0.1:${port}/mcp`;
    await waitHealthy(url, server);
    for (let opened = 0; opened < 1_000; opened += 50) {
      await Promise.all(Array.from({ length: 50 }, () => rawInitialize(url)));
    }
    expect((await healthz(url)).body.sessions).toBe(1_000);

    // The log collector dies: both output pipes lose their reader, then the signal comes.
    server.child.stdout?.destroy();
    server.child.stderr?.destroy();
    server.child.kill('SIGTERM');
    const exit = await Promise.race([
      server.exited,
      new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 15_000)),
    ]);
    expect(exit).toBe(0);
  });

  it('`start` that cannot bind its port exits 1 and leaves no admin token behind', async () => {
    const tmp = tempDir('stocklock-e2e-start-busy-');
    cleanups.push(tmp.remove);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as AddressInfo).port;
    const db = join(tmp.dir, 'stocklock.db');
    const server = spawnTracked(['start', '--port', String(port), '--db', db]);
    expect(await server.exited).toBe(1);
    expect(server.stderr()).toContain(`port ${port} on 127.0.0.1 is already in use`);
    const tokens = await run(process.execPath, [CLI, 'token', 'list', '--json', '--db', db]);
    expect(JSON.parse(tokens.stdout)).toEqual([]);
  });

  it('`start` on an empty directory loads the demo catalog and prints a working development token', async () => {
    const tmp = tempDir('stocklock-e2e-start-');
    cleanups.push(tmp.remove);
    const port = await freePort();
    const server = spawnTracked(['start', '--port', String(port), '--db', join(tmp.dir, 'stocklock.db')]);
    const url = `http://127.0.0.1:${port}/mcp`;
    await waitHealthy(url, server);

    let token: string | undefined;
    await waitFor(() => {
      const exported = server
        .stderr()
        .split('\n')
        .map((line) => line.trim())
        .find((line) => line.startsWith('export STOCKLOCK_TOKEN=slk_'));
      token = exported?.slice('export STOCKLOCK_TOKEN='.length);
      return token !== undefined;
    });
    expect(server.stderr()).toContain(url);

    const client = await connectClient(url, token);
    cleanups.push(() => client.close().catch(() => undefined));
    const found = await call(client, 'search_products', { query: 'JACKET' });
    expect(found.isError, firstText(found)).toBeFalsy();
    const products = (found.structuredContent as { products: { sku: string; available: number | null }[] })
      .products;
    expect(products).toContainEqual(expect.objectContaining({ sku: 'JACKET-LTD', available: 1 }));
    // The development token is an admin token.
    expect((await client.listTools()).tools.map((tool) => tool.name).sort()).toEqual(ADMIN_TOOLS);

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });
});
