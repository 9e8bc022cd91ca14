// The hot path: a plain POST /mcp served on node:http without express, with the same checks and answers.
/*
 * Why: express's router, body-parser and raw-body cost about 80 µs of server CPU per tool call (bench/findings.md,
 * "stocklock's own CPU per call"), a tenth of an add_to_cart over HTTP. Only the common shape takes this path: POST
 * to exactly /mcp, a body announced by Content-Length or Transfer-Encoding, no Content-Encoding, and Content-Type
 * application/json with no parameter but charset=utf-8. Everything else (compressed or other-charset bodies, /mcp/,
 * GET, DELETE, the shutdown's 503) goes through express as before, so its answers stay exactly express's.
 * The order and the answers mirror the express route: Host/Origin guard, in-flight tracking, credentials, then the
 * body (413 with Connection: close over the limit, 400 -32700 for JSON body-parser would refuse), then sessions.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../logger.js';
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

/** type-is's hasBody: a request carries a body when it announces one, even an empty one. */
export function hasBody(req: IncomingMessage): boolean {
  return (
    req.headers['transfer-encoding'] !== undefined ||
    !Number.isNaN(Number.parseInt(req.headers['content-length'] ?? '', 10))
  );
}

const PLAIN_JSON = new Set([
  'application/json',
  'application/json;charset=utf-8',
  'application/json;charset="utf-8"',
]);

/** True for the shape the fast path serves exactly as express would; anything else is left to express. */
export function isPlainMcpPost(req: IncomingMessage): boolean {
  if (req.method !== 'POST' || req.url !== '/mcp') return false;
  if (req.headers['content-encoding'] !== undefined || !hasBody(req)) return false;
  const type = req.headers['content-type'];
  return type !== undefined && PLAIN_JSON.has(type.replace(/[ \t]/g, '').toLowerCase());
}

/** body-parser's strict JSON: empty is {}, anything but an object or array is refused (undefined here). */
function parseStrictJson(text: string): { value: unknown } | undefined {
  // raw-body's UTF-8 decoder drops a byte order mark; JSON.parse would refuse it.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.length === 0) return { value: {} };
  const first = /^[ \t\n\r]*(.)/s.exec(body)?.[1];
  if (first !== '{' && first !== '[') return undefined;
  try {
    return { value: JSON.parse(body) };
  } catch {
    return undefined;
  }
}

function tooLarge(res: ServerResponse, maxBodyBytes: number): void {
  sendRpcError(res, 413, -32000, `Request body too large: at most ${maxBodyBytes} bytes.`, {
    Connection: 'close',
  });
}

/** Reads the body up to the limit; undefined once a refusal (413) has been answered or the client went away. */
function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  maxBodyBytes: number,
): Promise<string | undefined> {
  const announced = Number.parseInt(req.headers['content-length'] ?? '', 10);
  if (announced > maxBodyBytes) {
    tooLarge(res, maxBodyBytes);
    return Promise.resolve(undefined);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onFail);
      req.off('aborted', onFail);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) {
        chunks.push(chunk);
        return;
      }
      stop();
      req.pause();
      tooLarge(res, maxBodyBytes);
      resolve(undefined);
    };
    const onEnd = () => {
      stop();
      resolve(
        chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'),
      );
    };
    // A client that hung up mid-body is owed nothing.
    const onFail = () => {
      stop();
      resolve(undefined);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onFail);
    req.once('aborted', onFail);
  });
}

/** Serves one request isPlainMcpPost accepted. Never rejects: a failure is answered 500 as express's handler does. */
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
    const text = await readBody(req, res, route.maxBodyBytes);
    if (text === undefined) return;
    const parsed = parseStrictJson(text);
    if (!parsed) {
      sendRpcError(res, 400, -32700, 'Parse error: the request body is not valid JSON.');
      return;
    }
    await route.handle(req, res, identity, parsed.value);
  } catch (err) {
    route.logger.error({ err }, 'HTTP request failed');
    if (!res.headersSent) sendRpcError(res, 500, -32603, 'Internal error.');
    else res.destroy();
  }
}
