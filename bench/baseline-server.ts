// The baselines' MCP server: an `echo` tool (the SDK and transport floor), and with a database a `naive_buy` tool
// that reads stock, decides, then writes (the bug stocklock exists to prevent, as in test/fixtures/naive-buyer.mjs).
// Usage: baseline-server.ts stdio [DB] | baseline-server.ts http PORT [DB] | baseline-server.ts http-lean PORT [DB]
// | baseline-server.ts http-stocklock PORT DB SYNC; over HTTP it prints {"url": …} when ready. `http` is the SDK's
// Streamable HTTP transport, `http-lean` stocklock's LeanHttpTransport in the same express pattern (the baseline for
// stocklock's transport), with POSTs read on node:http without express as stocklock reads POST /mcp
// (src/transports/http/mcp-post.ts). `http-stocklock` serves stocklock's own tools (a store on DB, each bearer
// token's channel) on the SDK's transport in the SDK's pattern: the comparison stocklock no longer ships.
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type BetterSqlite3 from 'better-sqlite3';
import express from 'express';
import { z } from 'zod';
import { DEFAULT_LIMITS } from '../src/domain/rules.js';
import { silentLogger } from '../src/logger.js';
import { createServer as createStocklockServer } from '../src/mcp/server.js';
import { Database } from '../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { LeanHttpTransport } from '../src/transports/http/lean-transport.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A bare McpServer with `echo`, plus `naive_buy` when given a database. */
export function createBaselineServer(db?: BetterSqlite3.Database): McpServer {
  const readStock = db?.prepare('SELECT on_hand FROM products WHERE sku = ?');
  const writeStock = db?.prepare('UPDATE products SET on_hand = ? WHERE sku = ?');
  const server = new McpServer({ name: 'bench-baseline', version: '0.0.0' });
  server.registerTool(
    'echo',
    { description: 'Returns its text.', inputSchema: { text: z.string().describe('Anything') } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  if (readStock && writeStock) {
    server.registerTool(
      'naive_buy',
      { description: 'Reads the stock, then sells one unit.', inputSchema: { sku: z.string() } },
      async ({ sku }) => {
        const { on_hand } = readStock.get(sku) as { on_hand: number };
        if (on_hand < 1) return { content: [{ type: 'text', text: 'sold out' }] };
        await sleep(Math.random() * 5); // the gap every cache, replica or second request opens
        writeStock.run(on_hand - 1, sku);
        return { content: [{ type: 'text', text: 'sold' }] };
      },
    );
  }
  return server;
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const port =
    mode === 'http' || mode === 'http-lean' || mode === 'http-stocklock' ? Number(rest.shift()) : 0;
  if (mode === 'http-stocklock') {
    await serveStocklockOnSdk(port, rest[0] as string, rest[1] === 'FULL' ? 'FULL' : 'NORMAL');
    return;
  }
  const db = rest[0] ? new Database(rest[0]) : undefined;
  db?.pragma('busy_timeout = 10000');
  const createServer = () => createBaselineServer(db);
  if (mode === 'stdio') {
    await createServer().connect(new StdioServerTransport());
    return;
  }
  if (mode !== 'http' && mode !== 'http-lean')
    throw new Error('usage: baseline-server.ts stdio [DB] | http PORT [DB] | http-lean PORT [DB]');
  // The SDK's stateful Streamable HTTP pattern: one server and one transport per session.
  const sessions = new Map<string, StreamableHTTPServerTransport | LeanHttpTransport>();
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  const handle = async (req: IncomingMessage, res: ServerResponse, body: unknown) => {
    const id = req.headers['mcp-session-id'];
    const existing = typeof id === 'string' ? sessions.get(id) : undefined;
    if (existing) {
      await existing.handleRequest(req, res, body);
      return;
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      res
        .writeHead(typeof id === 'string' ? 404 : 400, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'no session' }, id: null }));
      return;
    }
    let transport: StreamableHTTPServerTransport | LeanHttpTransport;
    if (mode === 'http-lean') {
      const sessionId = randomUUID();
      transport = new LeanHttpTransport(sessionId);
      sessions.set(sessionId, transport);
    } else {
      const sdkTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (sessionId) => {
          sessions.set(sessionId, sdkTransport);
        },
      });
      transport = sdkTransport;
    }
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await createServer().connect(transport);
    await transport.handleRequest(req, res, body);
  };
  app.all('/mcp', (req, res) => handle(req, res, req.body));
  const server = createHttpServer((req, res) => {
    if (mode !== 'http-lean' || req.method !== 'POST') return app(req, res);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      void handle(req, res, body);
    });
  });
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/mcp` })}\n`);
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

/** stocklock's tools on the SDK's transport: one session per client, its channel from the bearer token. */
async function serveStocklockOnSdk(
  port: number,
  dbPath: string,
  synchronous: 'FULL' | 'NORMAL',
): Promise<void> {
  const store = openSqliteStore(dbPath, {
    clock: { now: () => Date.now() },
    reservationTtlMs: 15 * 60_000,
    lockTimeoutMs: 5_000,
    synchronous,
    limits: { ...DEFAULT_LIMITS, maxChannelReserved: 1_000_000_000 },
  });
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  app.all('/mcp', async (req, res) => {
    const id = req.headers['mcp-session-id'];
    const existing = typeof id === 'string' ? sessions.get(id) : undefined;
    if (existing) {
      await existing.handleRequest(req, res, req.body);
      return;
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const record = token ? await store.verifyToken(token) : undefined;
    if (!record || req.method !== 'POST' || !isInitializeRequest(req.body)) {
      res
        .status(record ? 400 : 401)
        .json({ jsonrpc: '2.0', error: { code: -32000, message: 'no session' }, id: null });
      return;
    }
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (sessionId) => {
        sessions.set(sessionId, transport);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    const server = createStocklockServer({
      store,
      channel: record.channel,
      admin: record.admin,
      logger: silentLogger,
      version: '0.0.0-bench',
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', sessions: sessions.size });
  });
  const server = createHttpServer(app);
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/mcp` })}\n`);
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
