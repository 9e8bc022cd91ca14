// MCP plumbing the scenarios share: SDK clients over each transport, and the servers they talk to.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type CallToolResult, LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import ts from 'typescript';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { freePort } from '../test/helpers/http.js';
import { benchStoreOptions, type Child, CLI, ROOT, type Sync, sleep, spawnNode } from './lib.js';

const BASELINE_SOURCE = fileURLToPath(new URL('./baseline-server.ts', import.meta.url));
let baselineServer: string | undefined;

/**
 * The baseline server as plain JavaScript, so it runs on bare Node like the built stocklock (tsx would add its
 * loader's memory and start-up to the baseline only). Emitted under node_modules/.cache so its imports resolve.
 */
export function baselineServerScript(): string {
  if (!baselineServer) {
    const dir = join(ROOT, 'node_modules', '.cache', 'stocklock-bench');
    mkdirSync(dir, { recursive: true });
    const { outputText } = ts.transpileModule(readFileSync(BASELINE_SOURCE, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    // stocklock's own modules (the lean transport) come from the build, as `dist/cli.js` runs them.
    const dist = pathToFileURL(join(ROOT, 'dist')).href;
    baselineServer = join(dir, 'baseline-server.mjs');
    writeFileSync(baselineServer, outputText.replaceAll("from '../src/", `from '${dist}/`));
  }
  return baselineServer;
}

/** The 1.x HTTP client transport leaks abort listeners after ~1,500 calls (FIELD-NOTES): reconnect before that. */
const RECONNECT_EVERY = 1_000;

export async function httpClient(url: string, token?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : undefined,
  });
  const client = new Client({ name: 'stocklock-bench', version: '0.0.0' });
  client.onerror = () => undefined;
  await client.connect(transport);
  // Hosts list tools first; the SDK client then checks structuredContent against each output schema.
  await client.listTools();
  return client;
}

export async function stdioClient(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Client> {
  const transport = new StdioClientTransport({
    command,
    args,
    cwd: ROOT,
    env: { ...(process.env as Record<string, string>), STOCKLOCK_LOG_LEVEL: 'info', ...env },
    stderr: 'ignore',
  });
  const client = new Client({ name: 'stocklock-bench', version: '0.0.0' });
  await client.connect(transport);
  await client.listTools();
  return client;
}

/** Closes a client; over HTTP it ends the session first (DELETE), as a well-behaved client does. */
export async function closeClient(client: Client): Promise<void> {
  const transport = client.transport;
  if (transport instanceof StreamableHTTPClientTransport)
    await transport.terminateSession().catch(() => undefined);
  await client.close().catch(() => undefined);
}

/** One client that replaces itself every RECONNECT_EVERY calls; a refused call throws. */
export class Caller {
  private calls = 0;

  private constructor(
    private client: Client,
    private readonly reconnect?: () => Promise<Client>,
  ) {}

  static async open(connect: () => Promise<Client>, reconnecting = false): Promise<Caller> {
    return new Caller(await connect(), reconnecting ? connect : undefined);
  }

  async call(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    this.calls += 1;
    if (this.reconnect && this.calls % RECONNECT_EVERY === 0) {
      const old = this.client;
      this.client = await this.reconnect();
      void closeClient(old);
    }
    const result = (await this.client.callTool({ name, arguments: args })) as CallToolResult;
    if (result.isError) {
      const block = result.content[0];
      throw new Error(
        `${name} refused: ${block?.type === 'text' ? block.text : JSON.stringify(result.content)}`,
      );
    }
    return result;
  }

  /** Calls that may be refused (races): the result as it came. */
  async attempt(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    return (await this.client.callTool({ name, arguments: args })) as CallToolResult;
  }

  close(): Promise<void> {
    return closeClient(this.client);
  }
}

async function waitHealthy(url: string, child: Child): Promise<void> {
  const health = url.replace(/\/mcp$/, '/healthz');
  for (let i = 0; i < 200; i++) {
    if (child.process.exitCode !== null) throw new Error(`the server exited with ${child.process.exitCode}`);
    try {
      if ((await fetch(health)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`${health} did not answer`);
}

export interface RunningServer {
  url: string;
  token?: string;
  pid: number;
  stop(): Promise<void>;
}

/** `stocklock serve --http` as a user runs it (built CLI, default log level), with a customer token. */
export async function startStocklockHttp(
  db: string,
  sync: Sync,
  extra: string[] = [],
  cli: string = CLI,
): Promise<RunningServer> {
  const store = openSqliteStore(db, benchStoreOptions(sync));
  const { token } = await store.createToken('bench', false, 'bench');
  await store.close();
  const port = await freePort();
  const child = spawnNode(
    cli,
    [
      'serve',
      '--http',
      '--port',
      String(port),
      '--db',
      db,
      '--synchronous',
      sync,
      '--max-channel-reserved',
      '1000000000',
      ...extra,
    ],
    { env: { STOCKLOCK_LOG_LEVEL: 'info' }, stderrFile: `${db}.log` },
  );
  const url = `http://127.0.0.1:${port}/mcp`;
  await waitHealthy(url, child);
  return { url, token, pid: child.process.pid ?? 0, stop: () => child.stop() };
}

/** Which Streamable HTTP transport a server runs: stocklock's lean one (its default) or the SDK's. */
export type HttpTransport = 'lean' | 'sdk';

/**
 * The baseline server over HTTP: the SDK's own stateful Streamable HTTP pattern with an echo tool, on the SDK's
 * transport (`sdk`, the default) or on stocklock's LeanHttpTransport (`lean`).
 */
export async function startBaselineHttp(
  db?: string,
  transport: HttpTransport = 'sdk',
): Promise<RunningServer> {
  const port = await freePort();
  const mode = transport === 'lean' ? 'http-lean' : 'http';
  const child = spawnNode(baselineServerScript(), [mode, String(port), ...(db ? [db] : [])]);
  const { url } = await child.next<{ url: string }>();
  return { url, pid: child.process.pid ?? 0, stop: () => child.stop() };
}

/**
 * stocklock's tools served on the SDK's Streamable HTTP transport by the bench itself (baseline-server.ts
 * `http-stocklock`): what stocklock's transport is compared with. No log lines, no OAuth; a token's channel.
 */
export async function startStocklockOnSdk(db: string, sync: Sync): Promise<RunningServer> {
  const store = openSqliteStore(db, benchStoreOptions(sync));
  const { token } = await store.createToken('bench', false, 'bench');
  await store.close();
  const port = await freePort();
  const child = spawnNode(baselineServerScript(), ['http-stocklock', String(port), db, sync]);
  const { url } = await child.next<{ url: string }>();
  return { url, token, pid: child.process.pid ?? 0, stop: () => child.stop() };
}

const MODERN_REVISION = '2026-07-28';
const MODERN_ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': MODERN_REVISION,
  'io.modelcontextprotocol/clientInfo': { name: 'stocklock-bench-minimal', version: '0.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/**
 * A minimal MCP client over Streamable HTTP: plain keep-alive POSTs and a string check of the answer, no SDK.
 * It costs the load generator a fraction of what the SDK client does, so the server's own capacity shows.
 */
export class MinimalHttpSession {
  private static readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private nextId = 1;

  private constructor(
    private readonly url: URL,
    private readonly headers: Record<string, string>,
    private readonly agent: http.Agent,
    /** 2026-07-28: no session; each request carries the `_meta` envelope and the Mcp-Method / Mcp-Name headers. */
    private readonly modern = false,
  ) {}

  /** A 2026-07-28 caller: nothing to open, every POST stands alone. */
  static openModern(
    url: string,
    token?: string,
    agent: http.Agent = MinimalHttpSession.agent,
  ): MinimalHttpSession {
    const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    return new MinimalHttpSession(
      new URL(url),
      { ...auth, 'mcp-protocol-version': MODERN_REVISION, 'mcp-method': 'tools/call' },
      agent,
      true,
    );
  }

  /** `agent`: the connection pool; the default one holds at most 256 sockets per server. */
  static async open(
    url: string,
    token?: string,
    agent: http.Agent = MinimalHttpSession.agent,
  ): Promise<MinimalHttpSession> {
    const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const init = await MinimalHttpSession.post(agent, new URL(url), auth, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'stocklock-bench-minimal', version: '0.0.0' },
      },
    });
    const sessionId = init.headers['mcp-session-id'];
    if (init.status !== 200 || typeof sessionId !== 'string')
      throw new Error(`initialize failed (${init.status}): ${init.body.slice(0, 200)}`);
    const session = new MinimalHttpSession(
      new URL(url),
      { ...auth, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
      agent,
    );
    await MinimalHttpSession.post(agent, session.url, session.headers, {
      jsonrpc: '2.0',
      method: 'notifications/initialized',
    });
    return session;
  }

  /** One tools/call; throws unless it answered 200 with a result that is not an error. */
  async call(name: string, args: Record<string, unknown>): Promise<void> {
    const { status, body } = await this.send(name, args);
    if (status !== 200 || !body.includes('"result"') || body.includes('"isError":true'))
      throw new Error(`${name} failed (${status}): ${body.slice(0, 300)}`);
  }

  /** One tools/call whatever its outcome: the HTTP status and the body as it came (JSON or one SSE event). */
  send(name: string, args: Record<string, unknown>): Promise<{ status: number; body: string }> {
    const headers = this.modern ? { ...this.headers, 'mcp-name': name } : this.headers;
    return MinimalHttpSession.post(this.agent, this.url, headers, {
      jsonrpc: '2.0',
      id: this.nextId++,
      method: 'tools/call',
      params: { name, arguments: args, ...(this.modern ? { _meta: MODERN_ENVELOPE } : {}) },
    });
  }

  close(): Promise<unknown> {
    if (this.modern) return Promise.resolve();
    return new Promise((done) => {
      const request = http.request(
        this.url,
        { method: 'DELETE', agent: this.agent, headers: this.headers },
        (response) => response.resume().on('end', done),
      );
      request.on('error', done);
      request.end();
    });
  }

  private static post(
    agent: http.Agent,
    url: URL,
    headers: Record<string, string>,
    message: unknown,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    const data = JSON.stringify(message);
    return new Promise((resolve, reject) => {
      const request = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            ...headers,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'content-length': Buffer.byteLength(data),
          },
        },
        (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            body += chunk;
          });
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
          );
        },
      );
      request.on('error', reject);
      request.end(data);
    });
  }
}
