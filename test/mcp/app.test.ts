// The MCP App as a client sees it: one ui:// resource of the app type with a CSP naming no remote domain, linked
// from the shop's tools; with apps off the same tools list without the link, and every answer is the same.
import { existsSync } from 'node:fs';
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from '@modelcontextprotocol/client';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { APP_TOOLS, APP_URI } from '../../src/mcp/app.js';
import { stdioClient } from '../helpers/cli.js';
import { startHttp } from '../helpers/http.js';
import { call, connect } from '../helpers/mcp.js';
import { sqliteStore, type TestStore } from '../helpers/sqlite.js';

const PAGE = new URL('../../dist/app/stocklock-app.html', import.meta.url);

describe('the MCP App', () => {
  const stores: TestStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map(({ store }) => store.close()));
  });
  async function open() {
    const opened = await sqliteStore();
    stores.push(opened);
    return opened;
  }

  it('is one self-contained resource, declared on the six shop tools only', async () => {
    const { store } = await open();
    const client = await connect(store, 'web');
    const { resources } = await client.listResources();
    expect(resources).toEqual([
      expect.objectContaining({
        uri: APP_URI,
        mimeType: 'text/html;profile=mcp-app',
        _meta: { ui: { csp: { connectDomains: [], resourceDomains: [] }, prefersBorder: true } },
      }),
    ]);
    const { tools } = await client.listTools();
    const linked = tools.filter((tool) => tool._meta?.ui).map((tool) => tool.name);
    expect(linked.sort()).toEqual([...APP_TOOLS].sort());
    for (const tool of tools.filter((candidate) => APP_TOOLS.has(candidate.name))) {
      expect(tool._meta).toEqual({
        ui: { resourceUri: APP_URI },
        'ui/resourceUri': APP_URI,
        'openai/outputTemplate': APP_URI,
        'openai/widgetAccessible': true,
      });
    }

    // The page is built by `npm run build`; it names no other origin and loads nothing.
    expect(existsSync(PAGE), 'run npm run build first').toBe(true);
    const read = await client.readResource({ uri: APP_URI });
    const [content] = read.contents;
    expect(content).toMatchObject({ uri: APP_URI, mimeType: 'text/html;profile=mcp-app' });
    const html = (content as { text: string }).text;
    expect(html).toMatch(/^<!doctype html>/);
    // One inline style and one inline script; the markup around them names nothing to load.
    const style = html.slice(html.indexOf('<style>') + 7, html.indexOf('</style>'));
    const markup = html.slice(0, html.indexOf('<script>')) + html.slice(html.lastIndexOf('</script>'));
    expect(markup.replace(style, '')).not.toMatch(/\b(src|href)=|<link|<iframe/i);
    expect(style).not.toMatch(/@import|url\(/);
    expect(html.match(/<script\b/g)).toHaveLength(1);
    expect(markup).toContain('Your cart');
  });

  it('off (--no-apps): no resource, no link, and the tools list and answer exactly as with it', async () => {
    const { store } = await open();
    const withApp = await connect(store, 'web');
    const without = await connect(store, 'web', false, false);
    await expect(without.listResources()).rejects.toThrow(/Method not found/);
    const strip = async (client: Client) =>
      (await client.listTools()).tools.map(({ _meta, ...tool }) => tool);
    expect((await without.listTools()).tools.every((tool) => tool._meta === undefined)).toBe(true);
    expect(await strip(without)).toEqual(await strip(withApp));

    // Text and structuredContent are whole either way (a sold-out SKU is left for the refusal below).
    const search = { query: '', limit: 50 };
    expect(await call(without, 'search_products', search)).toEqual(
      await call(withApp, 'search_products', search),
    );
    const added = await call(withApp, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 1 });
    expect(added.content).toHaveLength(1);
    const cartId = (added.structuredContent as { cart_id: string }).cart_id;
    expect(await call(without, 'get_cart', { cart_id: cartId })).toEqual(
      await call(withApp, 'get_cart', { cart_id: cartId }),
    );
    const refusedWith = await call(withApp, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 999 });
    const refusedWithout = await call(without, 'add_to_cart', { sku: 'TEE-BLK-M', quantity: 999 });
    expect(refusedWith.isError).toBe(true);
    expect(refusedWithout).toEqual(refusedWith);
  });

  it('the built CLI offers it by default and leaves it out with --no-apps or STOCKLOCK_NO_APPS=true', async () => {
    const { path } = await open();
    const linkedTools = async (client: Client) => {
      try {
        return (await client.listTools()).tools.filter((tool) => tool._meta?.ui).length;
      } finally {
        await client.close();
      }
    };
    expect(await linkedTools(await stdioClient(['--db', path]))).toBe(APP_TOOLS.size);
    expect(await linkedTools(await stdioClient(['--db', path, '--no-apps']))).toBe(0);
    expect(await linkedTools(await stdioClient(['--db', path], { STOCKLOCK_NO_APPS: 'true' }))).toBe(0);
  });

  it('is offered on the 2026-07-28 path too, and left out there by apps: false', async () => {
    for (const apps of [true, false]) {
      const http = await startHttp({ auth: false, ...(apps ? {} : { apps: false }) });
      const client = new ModernClient(
        { name: 'stocklock-test', version: '1.0.0' },
        { versionNegotiation: { mode: { pin: '2026-07-28' } } },
      );
      try {
        await client.connect(new ModernTransport(new URL(http.url)));
        const { tools } = await client.listTools();
        expect(tools.filter((tool) => tool._meta?.ui).length).toBe(apps ? APP_TOOLS.size : 0);
        if (apps) {
          const read = await client.readResource({ uri: APP_URI });
          expect(read.contents[0]).toMatchObject({ mimeType: 'text/html;profile=mcp-app' });
        }
      } finally {
        await client.close();
        await http.dispose();
      }
    }
  });
});
