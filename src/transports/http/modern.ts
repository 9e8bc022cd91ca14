// POSTs of the 2026-07-28 revision: no session; each request names its revision in `_meta` and its method in headers.
/*
 * What is checked here, before a server sees the request (the SDK's per-request entry checks the same, in the
 * same order): the body's envelope and its agreement with MCP-Protocol-Version and Mcp-Method (the SDK's
 * classifyInboundRequest: -32602 for a malformed envelope, -32020 for a header that disagrees), the revision
 * (-32022 naming those served), then the headers' presence and Mcp-Name (-32020). Every error echoes the
 * request's id. The request then goes to its caller's server, one per (channel, admin, holder), kept while
 * it is used: building one per request is what made the SDK's entry slow.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../logger.js';
import { MODERN_REVISIONS, ModernServer } from '../../mcp/modern.js';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  classifyInboundRequest,
  type JSONRPCRequest,
  type McpServer,
  PROTOCOL_VERSION_META_KEY,
  type RequestId,
} from '../../mcp/sdk.js';
import type { Identity } from './credentials.js';
import { isJsonContentType } from './lean-transport.js';

const HEADER_MISMATCH = -32020;
const SSE_KEEP_ALIVE_MS = 15_000;
const FIRST_MODERN_REVISION = '2026-07-28';
const UNSUPPORTED_VERSION = -32022;
/** Methods whose name or URI the Mcp-Name header repeats. */
const NAMED_BY: Record<string, 'name' | 'uri'> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};
/** JSON-RPC errors a server answers before dispatch, with the HTTP status the revision gives them. */
const STATUS_OF: Record<number, number> = {
  [-32700]: 400,
  [-32600]: 400,
  [-32601]: 404,
  [UNSUPPORTED_VERSION]: 400,
  [-32021]: 400,
  [HEADER_MISMATCH]: 400,
};

/** True when a POST's body or headers claim the per-request revision; everything else is 2025 traffic. */
export function claimsModernRevision(req: IncomingMessage, body: unknown): boolean {
  const header = req.headers['mcp-protocol-version'];
  if (typeof header === 'string' && header.trim() >= FIRST_MODERN_REVISION) return true;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false;
  const meta = (body as { params?: { _meta?: unknown } }).params?._meta;
  return meta !== null && typeof meta === 'object' && PROTOCOL_VERSION_META_KEY in meta;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
    })
    .end(text);
}

function refuse(
  res: ServerResponse,
  status: number,
  id: RequestId | null,
  code: number,
  message: string,
  data?: unknown,
): void {
  reply(res, status, {
    jsonrpc: '2.0',
    id,
    error: { code, message, ...(data === undefined ? {} : { data }) },
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value.trim() : undefined;
}

/** An Mcp-Name value as sent: plain, or `=?base64?…?=` for what a header cannot carry. */
function decodeName(value: string): string | undefined {
  const sentinel = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/i.exec(value);
  if (!sentinel) return value.startsWith('=?') ? undefined : value;
  return Buffer.from(sentinel[1] ?? '', 'base64').toString('utf8');
}

/** The Mcp-Protocol-Version / Mcp-Method / Mcp-Name refusal for a request, if any. */
function headerProblem(req: IncomingMessage, request: JSONRPCRequest): string | undefined {
  if (header(req, 'mcp-protocol-version') === undefined)
    return 'the required MCP-Protocol-Version header is absent';
  if (header(req, 'mcp-method') === undefined)
    return `the body names method ${request.method} but the required Mcp-Method header is absent`;
  const field = Object.hasOwn(NAMED_BY, request.method) ? NAMED_BY[request.method] : undefined;
  if (field === undefined) return undefined;
  const named = (request.params as Record<string, unknown> | undefined)?.[field];
  if (typeof named !== 'string') return undefined;
  const sent = header(req, 'mcp-name');
  if (sent === undefined)
    return `the body carries params.${field}="${named}" but the required Mcp-Name header is absent`;
  const decoded = decodeName(sent);
  if (decoded === undefined) return 'the Mcp-Name header carries an invalid Base64 value';
  if (decoded !== named)
    return `the body carries params.${field}="${named}" but the Mcp-Name header names "${decoded}"`;
  return undefined;
}

export interface ModernOptions {
  /** A new server for an identity's first request; kept and reused for its later ones. */
  createServer(identity: Identity): McpServer;
  /** Most servers kept at once (least recently used idle ones go first); default 256. */
  maxServers?: number;
  logger: Logger;
}

export const DEFAULT_MAX_MODERN_SERVERS = 256;

/** The 2026-07-28 side of POST /mcp. */
export class ModernEndpoint {
  /** By identity, least recently used first. */
  private readonly servers = new Map<string, ModernServer>();
  private readonly maxServers: number;

  constructor(private readonly options: ModernOptions) {
    this.maxServers = options.maxServers ?? DEFAULT_MAX_MODERN_SERVERS;
  }

  get size(): number {
    return this.servers.size;
  }

  /** Answers one POST whose body was read; `legacy` serves it when it turns out to be 2025 traffic after all. */
  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    identity: Identity,
    body: unknown,
    legacy: () => Promise<void>,
  ): Promise<void> {
    const id = echoableId(body);
    if (!isJsonContentType(req.headers['content-type'])) {
      refuse(res, 415, id, -32000, 'Unsupported Media Type: Content-Type must be application/json');
      return;
    }
    const outcome =
      plainRequest(req, body) ??
      classifyInboundRequest({
        httpMethod: 'POST',
        body,
        ...optional('protocolVersionHeader', header(req, 'mcp-protocol-version')),
        ...optional('mcpMethodHeader', header(req, 'mcp-method')),
        ...optional('mcpNameHeader', header(req, 'mcp-name')),
      });
    if (outcome.kind === 'legacy') return legacy();
    if (outcome.kind === 'reject') {
      refuse(res, outcome.httpStatus, id, outcome.code, outcome.message, outcome.data);
      return;
    }
    // This revision defines no notification a client posts: acknowledged, nothing to do.
    if (outcome.messageKind === 'notification') {
      res.writeHead(202).end();
      return;
    }
    const request = outcome.message;
    const requested = outcome.classification.revision;
    if (requested === undefined || !MODERN_REVISIONS.includes(requested)) {
      refuse(
        res,
        400,
        request.id,
        UNSUPPORTED_VERSION,
        `Unsupported protocol version: ${requested ?? 'unknown'}`,
        { supported: [...MODERN_REVISIONS], requested: requested ?? 'unknown' },
      );
      return;
    }
    const problem = headerProblem(req, request);
    if (problem) {
      refuse(
        res,
        400,
        request.id,
        HEADER_MISMATCH,
        `Bad Request: the request headers and body disagree: ${problem}`,
      );
      return;
    }
    if (request.method === 'subscriptions/listen') {
      this.listen(this.serverFor(identity), request, res);
      return;
    }
    const answer = await this.serverFor(identity).call(request);
    const code = 'error' in answer ? answer.error.code : undefined;
    reply(res, code === undefined ? 200 : (STATUS_OF[code] ?? 200), answer);
  }

  /**
   * A subscriptions/listen stream: server-sent events, the acknowledgement first, kept alive until the client
   * hangs up (stocklock's tools never change, so nothing else is sent) or the server closes.
   */
  private listen(server: ModernServer, request: JSONRPCRequest, res: ServerResponse): void {
    let keepAlive: NodeJS.Timeout | undefined;
    const cancel = server.listen(request, (message, last) => {
      if (!res.headersSent) {
        if (last) {
          // Refused before it opened (a bad filter): an ordinary JSON answer.
          const code = 'error' in message ? message.error.code : undefined;
          reply(res, code === undefined ? 200 : (STATUS_OF[code] ?? 200), message);
          return;
        }
        res.writeHead(200, {
          'Content-Type': 'text/event-stream',
          'Cache-Control': 'no-cache, no-transform',
          'X-Accel-Buffering': 'no',
        });
        // Proxies drop streams that stay silent; a comment line keeps this one open.
        keepAlive = setInterval(() => res.write(': keepalive\n\n'), SSE_KEEP_ALIVE_MS);
        keepAlive.unref();
      }
      res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
      if (last) {
        clearInterval(keepAlive);
        res.end();
      }
    });
    res.once('close', () => {
      clearInterval(keepAlive);
      cancel();
    });
  }

  private serverFor(identity: Identity): ModernServer {
    const key = JSON.stringify([identity.channel, identity.admin, identity.holder ?? null]);
    const known = this.servers.get(key);
    if (known) {
      // Most recently used goes last.
      this.servers.delete(key);
      this.servers.set(key, known);
      return known;
    }
    if (this.servers.size >= this.maxServers) this.evictIdle();
    const server = new ModernServer(
      () => this.options.createServer(identity),
      (err) => this.options.logger.debug({ err }, 'MCP 2026-07-28 request refused'),
    );
    this.servers.set(key, server);
    return server;
  }

  /** Closes the least recently used server with nothing in flight (a busy one is kept; in-flight POSTs are capped). */
  private evictIdle(): void {
    for (const [key, server] of this.servers) {
      if (server.inFlight > 0) continue;
      this.servers.delete(key);
      void server.close();
      return;
    }
  }

  async closeAll(): Promise<void> {
    const closing = [...this.servers.values()].map((server) => server.close());
    this.servers.clear();
    await Promise.all(closing);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The common case without the SDK's classifier (a tenth of a call's CPU in its JSON-RPC shape checks): one
 * request whose envelope names its revision, client and capabilities, and whose headers agree. Anything
 * else, or anything odd, goes through classifyInboundRequest; the server checks the envelope again.
 */
function plainRequest(
  req: IncomingMessage,
  body: unknown,
):
  | {
      kind: 'modern';
      messageKind: 'request';
      message: JSONRPCRequest;
      classification: { era: 'modern'; revision: string };
    }
  | undefined {
  if (!isObject(body) || body.jsonrpc !== '2.0' || typeof body.method !== 'string') return undefined;
  if (body.method === 'initialize' || (typeof body.id !== 'string' && typeof body.id !== 'number'))
    return undefined;
  const params = body.params;
  if (!isObject(params) || !isObject(params._meta)) return undefined;
  const meta = params._meta;
  const revision = meta[PROTOCOL_VERSION_META_KEY];
  const client = meta[CLIENT_INFO_META_KEY];
  if (typeof revision !== 'string' || revision !== header(req, 'mcp-protocol-version')) return undefined;
  if (header(req, 'mcp-method') !== body.method || !isObject(meta[CLIENT_CAPABILITIES_META_KEY]))
    return undefined;
  if (!isObject(client) || typeof client.name !== 'string' || typeof client.version !== 'string')
    return undefined;
  return {
    kind: 'modern',
    messageKind: 'request',
    message: body as unknown as JSONRPCRequest,
    classification: { era: 'modern', revision },
  };
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

/** The request's id when the body is one request, so every error names it. */
function echoableId(body: unknown): RequestId | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return null;
  const { method, id } = body as { method?: unknown; id?: unknown };
  return typeof method === 'string' && (typeof id === 'string' || typeof id === 'number') ? id : null;
}
