// The 2026-07-28 revision on long-lived servers: one McpServer answers every per-request call of one caller.
/*
 * Why: the SDK's own per-request entry (createMcpHandler) builds a server, a web Request and a Response for
 * every call, 7–9× the CPU of a call on a session. The SDK's stdio entry (serveStdio) already pins one
 * server to the 2026-07-28 era for a whole connection and takes any Transport; ModernServer gives it an
 * in-process one (Multiplexer) whose "connection" is every request of one caller identity. Request ids are
 * renumbered on the way in (two clients of one identity may both send id 1) and restored on the way out.
 * The era checks that depend on HTTP headers are the transport's (src/transports/http/modern.ts).
 */
import {
  type JSONRPCMessage,
  type JSONRPCRequest,
  type JSONRPCResponse,
  type McpServer,
  type RequestId,
  SUBSCRIPTION_ID_META_KEY,
  SUPPORTED_PROTOCOL_VERSIONS,
  type Transport,
} from '@modelcontextprotocol/server';
import { type StdioServerHandle, serveStdio } from '@modelcontextprotocol/server/stdio';

/** The per-request revisions served (server/discover, the `_meta` envelope). */
export const MODERN_REVISIONS: readonly string[] = ['2026-07-28'];
/** Every revision served: the per-request ones, then those an `initialize` negotiates. */
export const ALL_REVISIONS: readonly string[] = [...MODERN_REVISIONS, ...SUPPORTED_PROTOCOL_VERSIONS];

type DiscoverHandler = (request: unknown, ctx: unknown) => Promise<{ supportedVersions?: string[] }>;

/**
 * server/discover names every revision served, the initialize ones too (the SDK lists only the per-request
 * ones): the SDK installs its discover handler when it pins a server to 2026-07-28, so the install is wrapped.
 */
export function discoverNamesEveryRevision(server: McpServer): McpServer {
  const raw = server.server as unknown as {
    setRequestHandler: (method: string, ...rest: unknown[]) => void;
  };
  const set = raw.setRequestHandler.bind(raw);
  raw.setRequestHandler = (method: string, ...rest: unknown[]) => {
    const handler = rest.at(-1) as DiscoverHandler;
    if (method !== 'server/discover' || typeof handler !== 'function') {
      set(method, ...rest);
      return;
    }
    set(method, ...rest.slice(0, -1), async (request: unknown, ctx: unknown) => {
      const result = await handler(request, ctx);
      const named = result.supportedVersions ?? [];
      return { ...result, supportedVersions: [...named, ...ALL_REVISIONS.filter((v) => !named.includes(v))] };
    });
  };
  return server;
}

function isReply(message: JSONRPCMessage): message is JSONRPCResponse {
  return 'result' in message || 'error' in message;
}

/** An in-process connection carrying many callers' requests, each answered to its own promise. */
class Multiplexer implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: Transport['onmessage'];

  private next = 0;
  private closed = false;
  private readonly waiting = new Map<RequestId, (reply: JSONRPCResponse) => void>();
  private readonly streams = new Map<RequestId, (notification: JSONRPCMessage) => void>();

  async start(): Promise<void> {}

  /**
   * Replies go to their caller, a subscription's notifications to its stream; notifications about a call
   * (progress, logs) have no place in a JSON reply.
   */
  async send(message: JSONRPCMessage): Promise<void> {
    if (!isReply(message)) {
      const meta = (message as { params?: { _meta?: Record<string, unknown> } }).params?._meta;
      const stream = this.streams.get(meta?.[SUBSCRIPTION_ID_META_KEY] as RequestId);
      stream?.(message);
      return;
    }
    if (message.id === undefined) return;
    const answer = this.waiting.get(message.id);
    if (!answer) return;
    this.waiting.delete(message.id);
    answer(message);
  }

  /** `deliver`: where the renumbered request goes; serveStdio's entry (this transport's onmessage) by default. */
  call(
    request: JSONRPCRequest,
    deliver: ((request: JSONRPCRequest) => void) | undefined = this.onmessage,
  ): Promise<JSONRPCResponse> {
    if (this.closed) return Promise.resolve(closedReply(request.id));
    this.next += 1;
    const id = this.next;
    return new Promise((resolve) => {
      this.waiting.set(id, (reply) => resolve({ ...reply, id: request.id } as JSONRPCResponse));
      deliver?.({ ...request, id });
    });
  }

  /**
   * Opens a subscriptions/listen stream: `deliver` gets its notifications (the acknowledgement first), then the
   * reply that ends it. The returned function cancels it, as a client that hangs up does.
   */
  listen(request: JSONRPCRequest, deliver: (message: JSONRPCMessage, last: boolean) => void): () => void {
    if (this.closed) {
      deliver(closedReply(request.id), true);
      return () => {};
    }
    this.next += 1;
    const id = this.next;
    const original = request.id;
    this.streams.set(id, (message) => {
      const params = (message as { params: { _meta: Record<string, unknown> } }).params;
      deliver(
        {
          ...message,
          params: { ...params, _meta: { ...params._meta, [SUBSCRIPTION_ID_META_KEY]: original } },
        } as JSONRPCMessage,
        false,
      );
    });
    this.waiting.set(id, (reply) => {
      this.streams.delete(id);
      deliver({ ...reply, id: original } as JSONRPCResponse, true);
    });
    this.onmessage?.({ ...request, id });
    return () => {
      if (!this.streams.delete(id)) return;
      this.waiting.delete(id);
      this.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id } });
    };
  }

  get inFlight(): number {
    return this.waiting.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The server drops replies once closed: whoever still waits is told, not left hanging.
    for (const [id, answer] of this.waiting) answer(closedReply(id));
    this.waiting.clear();
    this.streams.clear();
    this.onclose?.();
  }
}

function closedReply(id: RequestId): JSONRPCResponse {
  return {
    jsonrpc: '2.0',
    id,
    error: { code: -32603, message: 'Internal error: the server closed while this request was in flight.' },
  } as JSONRPCResponse;
}

/** One caller identity's server, pinned to the 2026-07-28 era, answering one request at a time or many. */
export class ModernServer {
  private readonly mux = new Multiplexer();
  private readonly handle: StdioServerHandle;

  /** The server serveStdio pinned to 2026-07-28, once it has answered a request. */
  private pinned: McpServer | undefined;
  private built: McpServer | undefined;

  constructor(build: () => McpServer, onerror: (error: Error) => void) {
    this.handle = serveStdio(
      () => {
        this.built = discoverNamesEveryRevision(build());
        return this.built;
      },
      {
        transport: this.mux,
        // Only enveloped requests reach this server; a 2025 opening here would be a routing bug.
        legacy: 'reject',
        onerror,
      },
    );
  }

  /** Answers one request (already checked against its headers and revision) with its own id. */
  async call(request: JSONRPCRequest): Promise<JSONRPCResponse> {
    const reply = this.mux.call(request, this.deliver);
    if (!this.pinned && this.built) {
      await reply;
      this.pinned = this.built;
      this.shortcut(this.pinned);
    }
    return reply;
  }

  /** Where a request goes once the server is pinned; serveStdio's entry until then. */
  private deliver: ((request: JSONRPCRequest) => void) | undefined;

  /**
   * Once pinned, requests and replies skip hops that only re-check JSON-RPC shapes with zod (about a tenth
   * of a call's CPU): serveStdio forwards a request to its channel, the server's inbound hook tries it as a
   * result, an error and then a request before handling it, and the channel tries each reply as a result
   * before passing it on. The edge has checked every request's shape and envelope; the server still checks
   * the envelope and the params, and answers as before. Only replies take the short way out: notifications
   * still go through the channel's subscription routing. Either shortcut is left out if the SDK's internals
   * are not the ones this was written against.
   */
  private shortcut(server: McpServer): void {
    const protocol = server.server as unknown as {
      _onrequest?: (request: JSONRPCRequest, extra?: unknown) => void;
    };
    const channel = server.server.transport as
      | (Transport & { _closed?: unknown; _pendingRequests?: unknown })
      | undefined;
    if (!channel) return;
    const onrequest = protocol._onrequest;
    this.deliver =
      typeof onrequest === 'function'
        ? (request) => onrequest.call(protocol, request)
        : channel.onmessage?.bind(channel);
    if (typeof channel._closed !== 'boolean' || !(channel._pendingRequests instanceof Set)) return;
    const send = channel.send.bind(channel);
    const pending = channel._pendingRequests as Set<RequestId>;
    channel.send = (message, options) => {
      // A reply to a request the channel tracks (the one that pinned it) settles through the channel.
      if (channel._closed || !isReply(message) || pending.size > 0) return send(message, options);
      return this.mux.send(message);
    };
  }

  /** A subscriptions/listen stream (see Multiplexer.listen). */
  listen(request: JSONRPCRequest, deliver: (message: JSONRPCMessage, last: boolean) => void): () => void {
    return this.mux.listen(request, deliver);
  }

  get inFlight(): number {
    return this.mux.inFlight;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** stdio, both eras: the opening message picks the era (initialize, or an enveloped request), as the SDK does. */
export function serveStdioBothEras(
  build: () => McpServer,
  onerror: (error: Error) => void,
): StdioServerHandle {
  return serveStdio(() => discoverNamesEveryRevision(build()), { onerror });
}
