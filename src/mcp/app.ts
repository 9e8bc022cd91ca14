// The shop's MCP App: one ui:// resource (the page built from app/ into dist/app/) and the tools that show it.
// Hosts without the extension ignore both: every tool's text and structuredContent stay whole.
import { readFileSync } from 'node:fs';
import {
  type McpUiAppToolConfig,
  registerAppResource,
  registerAppTool,
} from '@modelcontextprotocol/ext-apps/server';
import type { CallToolResult, McpServer, StandardSchemaWithJSON } from '@modelcontextprotocol/server';

export const APP_URI = 'ui://stocklock/shop.html';
export const APP_MIME_TYPE = 'text/html;profile=mcp-app';

/** The tools whose answers the page shows; the others (release_cart, admin tools) stay text only. */
export const APP_TOOLS = new Set([
  'search_products',
  'check_stock',
  'add_to_cart',
  'get_cart',
  'checkout',
  'get_order',
]);

// Two levels up from src/mcp (tests) and from dist/mcp (the package) is the package root.
const PAGE = new URL('../../dist/app/stocklock-app.html', import.meta.url);

/** No remote domain: the page is one document and talks only through the host. */
const UI_META = {
  csp: { connectDomains: [], resourceDomains: [] },
  prefersBorder: true,
};

const RESOURCE = {
  title: 'stocklock shop',
  description: 'Products with live stock, the cart and its hold, checkout and payment.',
  mimeType: APP_MIME_TYPE,
  _meta: { ui: UI_META },
};

let page: string | undefined;
function readPage(): string {
  page ??= readFileSync(PAGE, 'utf8');
  return page;
}

/**
 * The keys that link a tool to the page: `_meta.ui.resourceUri` (ext-apps' helper adds its older
 * `ui/resourceUri` twin), and the ones ChatGPT's Apps SDK still reads.
 */
export function appToolMeta(): Record<string, unknown> {
  return {
    ui: { resourceUri: APP_URI },
    'openai/outputTemplate': APP_URI,
    // The page calls tools itself (add, checkout, get_order) through the host's bridge.
    'openai/widgetAccessible': true,
  };
}

type RegisterTool = (
  name: string,
  config: { _meta?: Record<string, unknown> } & Record<string, unknown>,
  handler: (input: Record<string, unknown>) => Promise<CallToolResult>,
) => unknown;

/** server.registerTool, or ext-apps' registerAppTool for a tool the page shows when apps are on. */
export function toolRegistrar(server: McpServer, apps: boolean, name: string): RegisterTool {
  if (!apps || !APP_TOOLS.has(name)) return server.registerTool.bind(server) as unknown as RegisterTool;
  // The definitions' zod schemas fit either overload; the casts only pick one.
  return (toolName, config, handler) =>
    registerAppTool(
      server,
      toolName,
      { ...config, _meta: { ...appToolMeta(), ...config._meta } } as McpUiAppToolConfig & {
        inputSchema: StandardSchemaWithJSON;
        outputSchema: StandardSchemaWithJSON;
      },
      handler as never,
    );
}

/** Registers the page as a resource; its HTML is read once, on the first read. */
export function registerApp(server: McpServer): void {
  registerAppResource(server as never, 'stocklock shop', APP_URI, RESOURCE, async () => ({
    contents: [{ uri: APP_URI, mimeType: APP_MIME_TYPE, text: readPage(), _meta: { ui: UI_META } }],
  }));
}
