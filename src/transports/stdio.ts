// stdio: one connection, one channel, for Claude Desktop, Claude Code and other local hosts.

import type { Logger } from '../logger.js';
import { StdioServerTransport } from '../mcp/sdk.js';
import { createServer } from '../mcp/server.js';
import type { InventoryStore } from '../storage/store.js';

export interface StdioOptions {
  channel: string;
  admin: boolean;
  version: string;
  /** false (--no-apps): tools without the MCP App. */
  apps?: boolean;
}

/** Serves until the host closes stdin; resolves once the connection is closed. */
export async function serveStdio(
  store: InventoryStore,
  options: StdioOptions,
  logger: Logger,
): Promise<void> {
  const server = createServer({ store, logger, ...options });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.connect(transport);
  logger.info({ channel: options.channel, admin: options.admin }, 'serving MCP over stdio');
  await closed;
  await server.close();
}
