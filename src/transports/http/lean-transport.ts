// LeanHttpTransport: one MCP session's Streamable HTTP on the SDK's Transport interface, answering POSTs with JSON.
/*
 * Why: the SDK's StreamableHTTPServerTransport builds web-standard Request/Response objects and
 * streams (through @hono/node-server) for every call and answers with SSE; that was more than half
 * of the server's CPU for an add_to_cart (BENCHMARKS.md, "Where an add_to_cart over HTTP spends the
 * server's time"). This transport writes straight to Node's ServerResponse.
 * - Status codes, JSON-RPC error codes and messages mirror the SDK's transport (1.32), so clients and
 *   the conformance suite see the same refusals: 406 without both JSON and SSE in Accept, 415 for a
 *   non-JSON body, 400 -32700 for a message that is not JSON-RPC, 400 -32600 for a batch over 100 or
 *   an initialize in a batch or on an initialized session, 400 for an unsupported
 *   `mcp-protocol-version`, 202 for a POST of only notifications and responses. One addition: a request
 *   whose id is already in flight on the session gets 400 -32600 (replies are routed by id).
 * - A POST with requests is answered with one JSON body once every request in it is answered (the
 *   spec lets a server answer JSON to a client that accepts both). Messages the server sends about a
 *   request before its reply (progress, logs) have no place in a JSON reply and are dropped, as the
 *   SDK does with enableJsonResponse; stocklock sends none.
 * - Batches are accepted whatever the protocol version, as the SDK 1.x transport does (2025-06-18 dropped them
 *   from the spec; test/transports/hostile.test.ts pins that older clients keep them). So nothing here depends on
 *   the negotiated version, and setProtocolVersion (optional in Transport) is left out; a version header is
 *   only checked against the versions the SDK supports.
 * - GET opens the session's one standalone SSE stream (409 for a second), kept alive with a comment
 *   every 15 s; server-initiated messages go there, or are dropped when none is open. stocklock sends
 *   none today (no list changes after connect, no log notifications), but clients may hold the stream.
 * - The caller (Sessions) routes by `mcp-session-id`, checks the credential, and owns body parsing
 *   and its limit; this class sees only requests for its own session (or the initialize opening it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type JSONRPCMessage,
  parseJSONRPCMessage,
  type RequestId,
  SUPPORTED_PROTOCOL_VERSIONS,
  type Transport,
  type TransportSendOptions,
} from '../../mcp/sdk.js';
import { writeRpcError } from './replies.js';

const MAX_BATCH_SIZE = 100;
const SSE_KEEP_ALIVE_MS = 15_000;

/** The requests of one POST, answered together once all have a reply. */
interface PendingPost {
  res: ServerResponse;
  ids: RequestId[];
  replies: Map<RequestId, JSONRPCMessage>;
  batch: boolean;
}

function isRequest(message: JSONRPCMessage): message is JSONRPCMessage & { id: RequestId; method: string } {
  return 'method' in message && 'id' in message;
}

function isReply(message: JSONRPCMessage): message is JSONRPCMessage & { id: RequestId } {
  return 'result' in message || 'error' in message;
}

function isInitialize(message: JSONRPCMessage): boolean {
  return isRequest(message) && message.method === 'initialize';
}

/** True when Content-Type's media type is application/json (parameters aside). */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  return (header.split(';', 1)[0] ?? '').trim().toLowerCase() === 'application/json';
}

export class LeanHttpTransport implements Transport {
  sessionId: string | undefined;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: Transport['onmessage'];

  private started = false;
  private closed = false;
  /** Request id → the POST waiting for its reply. */
  private readonly pending = new Map<RequestId, PendingPost>();
  private standalone: { res: ServerResponse; keepAlive: NodeJS.Timeout } | undefined;

  /** `mintedId` becomes the session id when an initialize is accepted. */
  constructor(private readonly mintedId: string) {}

  async start(): Promise<void> {
    if (this.started) throw new Error('Transport already started');
    this.started = true;
  }

  /** One HTTP request for this session; `body` is the parsed JSON of a POST. */
  async handleRequest(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    if (this.closed) {
      writeRpcError(res, 404, -32001, 'Session not found');
      return;
    }
    switch (req.method) {
      case 'POST':
        this.handlePost(req, res, body);
        return;
      case 'GET':
        this.handleGet(req, res);
        return;
      case 'DELETE':
        if (this.refuseUninitialized(res) || this.refuseProtocolVersion(req, res)) return;
        res.writeHead(200).end();
        await this.close();
        return;
      default:
        this.refuse(res, 405, -32000, 'Method not allowed.', { Allow: 'GET, POST, DELETE' });
    }
  }

  private handlePost(req: IncomingMessage, res: ServerResponse, body: unknown): void {
    const accept = req.headers.accept;
    if (!accept?.includes('application/json') || !accept.includes('text/event-stream')) {
      this.refuse(
        res,
        406,
        -32000,
        'Not Acceptable: Client must accept both application/json and text/event-stream',
      );
      return;
    }
    if (!isJsonContentType(req.headers['content-type'])) {
      this.refuse(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
      return;
    }
    const batch = Array.isArray(body);
    if (batch && body.length > MAX_BATCH_SIZE) {
      this.refuse(res, 400, -32600, `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`);
      return;
    }
    let messages: JSONRPCMessage[];
    try {
      messages = batch ? body.map((item) => parseJSONRPCMessage(item)) : [parseJSONRPCMessage(body)];
    } catch {
      this.refuse(res, 400, -32700, 'Parse error: Invalid JSON-RPC message');
      return;
    }
    if (messages.some(isInitialize)) {
      if (this.sessionId !== undefined) {
        this.refuse(res, 400, -32600, 'Invalid Request: Server already initialized');
        return;
      }
      if (messages.length > 1) {
        this.refuse(res, 400, -32600, 'Invalid Request: Only one initialization request is allowed');
        return;
      }
      this.sessionId = this.mintedId;
    } else if (this.refuseUninitialized(res) || this.refuseProtocolVersion(req, res)) {
      return;
    }

    const ids = messages.filter(isRequest).map((message) => message.id);
    if (ids.length === 0) {
      for (const message of messages) this.onmessage?.(message);
      res.writeHead(202).end();
      return;
    }
    // A reply is routed by its id: a second request with an id still in flight could never be answered.
    if (new Set(ids).size < ids.length || ids.some((id) => this.pending.has(id))) {
      this.refuse(
        res,
        400,
        -32600,
        'Invalid Request: a request with this id is already in flight on this session',
      );
      return;
    }
    const post: PendingPost = { res, ids, replies: new Map(), batch };
    for (const id of ids) this.pending.set(id, post);
    for (const message of messages) this.onmessage?.(message);
  }

  private handleGet(req: IncomingMessage, res: ServerResponse): void {
    if (!req.headers.accept?.includes('text/event-stream')) {
      this.refuse(res, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
      return;
    }
    if (this.refuseUninitialized(res) || this.refuseProtocolVersion(req, res)) return;
    if (this.standalone) {
      this.refuse(res, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
      'mcp-session-id': this.sessionId as string,
    });
    res.flushHeaders();
    // Proxies drop streams that stay silent; a comment line keeps this one open.
    const keepAlive = setInterval(() => res.write(': keepalive\n\n'), SSE_KEEP_ALIVE_MS);
    keepAlive.unref();
    const stream = { res, keepAlive };
    this.standalone = stream;
    res.once('close', () => {
      clearInterval(keepAlive);
      if (this.standalone === stream) this.standalone = undefined;
    });
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (!isReply(message)) {
      // A request or notification about a request in flight cannot ride a JSON reply (see above).
      if (options?.relatedRequestId !== undefined) return;
      this.standalone?.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
      return;
    }
    const post = this.pending.get(message.id);
    if (!post) {
      if (this.closed) return;
      throw new Error(`No connection established for request ID: ${String(message.id)}`);
    }
    this.pending.delete(message.id);
    post.replies.set(message.id, message);
    if (post.replies.size < post.ids.length) return;
    const replies = post.ids.map((id) => post.replies.get(id));
    const text = JSON.stringify(post.batch ? replies : replies[0]);
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
    };
    if (this.sessionId !== undefined) headers['mcp-session-id'] = this.sessionId;
    // A client that hung up gets nothing; writing to its closed response is harmless.
    post.res.writeHead(200, headers).end(text);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.standalone) {
      clearInterval(this.standalone.keepAlive);
      this.standalone.res.end();
      this.standalone = undefined;
    }
    // The SDK drops replies once its transport closes, so a POST still waiting would never be answered.
    const waiting = new Set(this.pending.values());
    this.pending.clear();
    for (const post of waiting) {
      if (!post.res.headersSent) {
        writeRpcError(post.res, 404, -32001, 'Session not found: it ended while this request was in flight.');
      }
    }
    this.onclose?.();
  }

  private refuseUninitialized(res: ServerResponse): boolean {
    if (this.sessionId !== undefined) return false;
    this.refuse(res, 400, -32000, 'Bad Request: Server not initialized');
    return true;
  }

  private refuseProtocolVersion(req: IncomingMessage, res: ServerResponse): boolean {
    const version = req.headers['mcp-protocol-version'];
    if (version === undefined || SUPPORTED_PROTOCOL_VERSIONS.includes(version as string)) return false;
    this.refuse(
      res,
      400,
      -32000,
      `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
    );
    return true;
  }

  private refuse(
    res: ServerResponse,
    status: number,
    code: number,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    this.onerror?.(new Error(message));
    writeRpcError(res, status, code, message, headers);
  }
}
