// stdio: one connection, one channel, for Claude Desktop, Claude Code and other local hosts.

import type { Logger } from '../logger.js';
import { serveStdioBothEras } from '../mcp/modern.js';
import { createServer } from '../mcp/server.js';
import type { InventoryStore } from '../storage/store.js';

export interface StdioOptions {
  channel: string;
  admin: boolean;
  version: string;
}

/**
 * Serves until the host closes stdin; resolves once the connection is closed. Both eras: a host that opens
 * with initialize gets a 2025 session, one that sends enveloped requests (server/discover) gets 2026-07-28.
 */
export async function serveStdio(
  store: InventoryStore,
  options: StdioOptions,
  logger: Logger,
): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    process.stdin.once('end', () => resolve());
    process.stdin.once('close', () => resolve());
  });
  const connection = serveStdioBothEras(
    () => createServer({ store, logger, ...options }),
    (err) => logger.debug({ err }, 'MCP stdio message refused'),
  );
  logger.info({ channel: options.channel, admin: options.admin }, 'serving MCP over stdio');
  await closed;
  await connection.close();
}
