// POST /mcp, served on node:http without express (its router and body parser cost a tenth of a tool call).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../logger.js';
import { readJsonBody } from './body.js';
import type { Identity } from './credentials.js';
import { sendRpcError } from './replies.js';

export interface McpPostRoute {
  /** The Host/Origin guard: calls next only when both are allowed. */
  guard(req: IncomingMessage, res: ServerResponse, next: () => void): void;
  /** Counts the POST as in flight until its response closes. */
  track(req: IncomingMessage, res: ServerResponse): void;
  /** The identity, or undefined once the 401 is answered. */
  identify(req: IncomingMessage, res: ServerResponse): Promise<Identity | undefined>;
  handle(req: IncomingMessage, res: ServerResponse, identity: Identity, body: unknown): Promise<void>;
  maxBodyBytes: number;
  logger: Logger;
}

/** Every POST to the MCP endpoint: /mcp or /mcp/, any case, any query (the paths express's route matched). */
export function isMcpPost(req: IncomingMessage): boolean {
  if (req.method !== 'POST' || req.url === undefined) return false;
  const path = req.url.split('?', 1)[0]?.toLowerCase();
  return path === '/mcp' || path === '/mcp/';
}

/**
 * Guard, in-flight tracking, credentials, then the body, then the session. Never rejects: a failure is
 * answered 500.
 */
export async function serveMcpPost(
  route: McpPostRoute,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    let allowed = false;
    route.guard(req, res, () => {
      allowed = true;
    });
    if (!allowed) return;
    route.track(req, res);
    const identity = await route.identify(req, res);
    if (!identity) return;
    const body = await readJsonBody(req, route.maxBodyBytes);
    if (!body.ok) {
      if (body.status === 0) return;
      // A 413 ends the connection: a body past the drain limit is still arriving.
      sendRpcError(
        res,
        body.status,
        body.code,
        body.message,
        body.status === 413 ? { Connection: 'close' } : {},
      );
      return;
    }
    await route.handle(req, res, identity, body.value);
  } catch (err) {
    route.logger.error({ err }, 'HTTP request failed');
    if (!res.headersSent) sendRpcError(res, 500, -32603, 'Internal error.');
    else res.destroy();
  }
}
