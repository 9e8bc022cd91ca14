// Every HTTP refusal as a JSON-RPC error body: unknown paths, body-parser failures, anything thrown.
import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from '../../logger.js';

/** A JSON-RPC error with no id, written with Node's own API so it serves express and plain node:http alike. */
export function writeRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null });
  res
    .writeHead(status, {
      ...headers,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
    })
    .end(text);
}

export const sendRpcError = writeRpcError;

export const notFound: RequestHandler = (_req, res) => {
  sendRpcError(res, 404, -32000, 'Not found: the MCP endpoint is /mcp and the health check /healthz.');
};

/** Body-parser failures and anything thrown: always JSON, never express's HTML pages. */
export function jsonErrors(maxBodyBytes: number, logger: Logger) {
  return (err: unknown, _req: Request, res: Response, next: NextFunction): void => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const { type, status } = (err ?? {}) as { type?: string; status?: number };
    if (type === 'entity.parse.failed') {
      sendRpcError(res, 400, -32700, 'Parse error: the request body is not valid JSON.');
    } else if (type === 'entity.too.large') {
      sendRpcError(res, 413, -32000, `Request body too large: at most ${maxBodyBytes} bytes.`, {
        Connection: 'close',
      });
    } else if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
      sendRpcError(res, 415, -32000, 'Unsupported Media Type: send UTF-8 JSON.');
    } else if (typeof status === 'number' && status >= 400 && status < 500) {
      sendRpcError(res, status, -32000, `Bad Request: ${(err as Error).message}`);
    } else {
      logger.error({ err }, 'HTTP request failed');
      sendRpcError(res, 500, -32603, 'Internal error.');
    }
  };
}
