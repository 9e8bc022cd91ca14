// Scenario: what the MCP App costs. The same built server over HTTP with the app declared (the default) and with
// --no-apps: the size of tools/list and of the app's resource, and tool calls per second, interleaved.
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Caller, httpClient, type RunningServer, startStocklockHttp } from './clients.js';
import {
  concurrentThroughput,
  fmt,
  HOT_SKU,
  interleaved,
  type RunSettings,
  type Section,
  section,
} from './lib.js';
import { prepareDatabase } from './raw.js';

const SESSIONS = [1, 8];

/** A shopper's round: search, reserve, look at the cart, give the unit back: four calls. */
async function shop(caller: Caller): Promise<void> {
  await caller.call('search_products', { query: 'bench', limit: 10 });
  const cart = await caller.call('add_to_cart', { sku: HOT_SKU, quantity: 1 });
  const cartId = (cart.structuredContent as { cart_id: string }).cart_id;
  await caller.call('get_cart', { cart_id: cartId });
  await caller.call('release_cart', { cart_id: cartId });
}

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

export async function appScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    'The MCP App: declared vs --no-apps',
    'The built server (`dist/cli.js serve --http`, SQLite NORMAL, bearer token) twice: as it ships, with the MCP ' +
      'App declared (one `ui://` resource, `_meta` on six tools), and with `--no-apps`. Calls per second through ' +
      "the SDK `Client` for a shopper's round of four calls (`search_products`, `add_to_cart`, `get_cart`, " +
      '`release_cart`), both servers alternating in the same windows. Sizes are the JSON of the result a customer ' +
      'connection gets.',
    ['measure', 'app declared', '--no-apps', 'ratio'],
  );
  const servers: { app?: RunningServer; plain?: RunningServer } = {};
  try {
    for (const kind of ['app', 'plain'] as const) {
      const db = join(settings.dir, `app-${kind}.db`);
      await prepareDatabase(db, 'NORMAL');
      servers[kind] = await startStocklockHttp(db, 'NORMAL', kind === 'plain' ? ['--no-apps'] : []);
    }
    const app = servers.app as RunningServer;
    const plain = servers.plain as RunningServer;

    const listed: Client[] = [await httpClient(app.url, app.token), await httpClient(plain.url, plain.token)];
    const [withApp, without] = listed as [Client, Client];
    const toolsWith = bytes(await withApp.listTools());
    const toolsWithout = bytes(await without.listTools());
    out.rows.push([
      '`tools/list` bytes',
      fmt.rate(toolsWith),
      fmt.rate(toolsWithout),
      fmt.ratio(toolsWith / toolsWithout),
    ]);
    const { resources } = await withApp.listResources();
    const page = await withApp.readResource({ uri: resources[0]?.uri ?? '' });
    out.rows.push([
      '`resources/read` of the app, bytes (once per host, cacheable)',
      fmt.rate(bytes(page)),
      '—',
      '',
    ]);
    await Promise.all(listed.map((client) => client.close()));

    for (const sessions of SESSIONS) {
      const open = (server: RunningServer) =>
        Promise.all(
          Array.from({ length: sessions }, () =>
            Caller.open(() => httpClient(server.url, server.token), true),
          ),
        );
      const callers = { app: await open(app), plain: await open(plain) };
      const rate = (list: Caller[]) => () =>
        concurrentThroughput(sessions, settings.windowMs * 2, (worker) => shop(list[worker] as Caller)).then(
          (rounds) => rounds * 4,
        );
      const figures = await interleaved(settings.repeats, {
        app: rate(callers.app),
        plain: rate(callers.plain),
      });
      out.rows.push([
        `calls/s, ${sessions} session${sessions > 1 ? 's' : ''}`,
        fmt.rate(figures.app),
        fmt.rate(figures.plain),
        fmt.ratio(figures.app / figures.plain),
      ]);
      if (sessions === 1) {
        out.rows.push([
          'ms per call, 1 session',
          fmt.ms(1000 / figures.app),
          fmt.ms(1000 / figures.plain),
          fmt.ratio(figures.plain / figures.app),
        ]);
      }
      await Promise.all([...callers.app, ...callers.plain].map((caller) => caller.close()));
    }
    out.notes.push(
      'The app adds nothing to a tool call itself: the answers are the same bytes (test/mcp/app.test.ts), so ' +
        'any difference in calls/s is noise; what it adds is the `_meta` in `tools/list` and the page, which a ' +
        'host reads once.',
    );
  } finally {
    await Promise.all(Object.values(servers).map((server) => server?.stop()));
  }
  return [out];
}
