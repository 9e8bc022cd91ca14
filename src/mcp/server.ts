// createServer(): one McpServer for one connection, with the tools its scope allows.
import { type CallToolResult, McpServer, type StandardSchemaV1 } from '@modelcontextprotocol/server';
import { ErrorCode, isStockError, type StockError } from '../domain/errors.js';
import type { CallContext } from '../domain/types.js';
import type { Logger } from '../logger.js';
import type { InventoryStore } from '../storage/store.js';
import type { Scope, ToolDefinition } from './tool.js';
import { ALL_TOOLS } from './tools/index.js';

export const SERVER_NAME = 'stocklock';
/** How long a 2026-07-28 client may cache tools/list and server/discover. */
export const TOOLS_TTL_MS = 300_000;

export interface ConnectionOptions {
  store: InventoryStore;
  channel: string;
  admin: boolean;
  /** The OAuth grant behind this connection, if any (see CallContext.holder). */
  holder?: string;
  logger: Logger;
  version: string;
}

/**
 * A refusal: code first in the text, details as JSON in a second block, and no structuredContent, which SDK
 * clients would check against the tool's success schema and throw on.
 */
export function refusalResult(error: Pick<StockError, 'code' | 'message' | 'details'>): CallToolResult {
  return {
    isError: true,
    content: [
      { type: 'text', text: `${error.code}: ${error.message}` },
      { type: 'text', text: JSON.stringify({ code: error.code, message: error.message, ...error.details }) },
    ],
  };
}

const INPUT_ERROR = /Input validation error: Invalid arguments for tool (\S+): ([\s\S]*)$/;
const TOO_MANY_ELEMENTS = /Invalid arguments for tool (\S+): (arguments contain more than[\s\S]*)$/;

/** Rephrases the SDK's schema refusals as INVALID_INPUT naming each field ("quantity: must be at least 1"). */
export function phraseSdkError(message: string): CallToolResult {
  const match = INPUT_ERROR.exec(message) ?? TOO_MANY_ELEMENTS.exec(message);
  if (!match) return { isError: true, content: [{ type: 'text', text: message }] };
  const [, tool = '', detail = ''] = match;
  const issues = detail.split('\n').map((line) => {
    const at = / at ([^\s]+)$/.exec(line);
    return at ? { field: at[1] as string, problem: line.slice(0, at.index) } : { field: null, problem: line };
  });
  const text = issues
    .map((issue) => (issue.field ? `${issue.field}: ${issue.problem}` : issue.problem))
    .join('; ');
  return refusalResult({
    code: ErrorCode.INVALID_INPUT,
    message: `Invalid arguments for ${tool}: ${text}. Fix the arguments and call again.`,
    details: { tool, issues },
  });
}

/** The two McpServer methods replaced per instance (private in the SDK's typings). */
interface SdkToolInternals {
  createToolError(message: string): CallToolResult;
  validateToolInput(tool: { inputSchema?: StandardSchemaV1 }, args: unknown, name: string): Promise<unknown>;
}

/** A field's path as people write it: `lines[0].sku`. */
function dotPath(path: ReadonlyArray<PropertyKey | { key: PropertyKey }>): string {
  return path
    .map((segment) => (typeof segment === 'object' ? segment.key : segment))
    .map((key, index) =>
      typeof key === 'number' ? `[${key}]` : index === 0 ? String(key) : `.${String(key)}`,
    )
    .join('');
}

export function toolsFor(scope: Scope): ToolDefinition[] {
  return ALL_TOOLS.filter((tool) => scope === 'admin' || tool.scope === 'customer');
}

function assertCoherent(tool: ToolDefinition): void {
  // A read-only tool that claims to destroy is a definition bug; refuse to serve it.
  if (tool.annotations.readOnlyHint && tool.annotations.destructiveHint) {
    throw new Error(`tool ${tool.name} is marked both read-only and destructive`);
  }
  if (tool.scope === 'customer' && /\(admin\)/.test(tool.title)) {
    throw new Error(`tool ${tool.name} is titled admin but offered to customers`);
  }
}

export function createServer(options: ConnectionOptions): McpServer {
  const { store, logger } = options;
  const ctx: CallContext = {
    channel: options.channel,
    ...(options.holder !== undefined ? { holder: options.holder } : {}),
    ...(options.admin ? { admin: true } : {}),
  };
  const server = new McpServer(
    { name: SERVER_NAME, title: 'stocklock inventory', version: options.version },
    {
      // The tools never change while a server runs: no list_changed to wait for.
      capabilities: { logging: {}, tools: { listChanged: false } },
      instructions:
        'stocklock is the single source of truth for stock. Find products with search_products, reserve with add_to_cart (keep the cart_id), confirm with the customer, then checkout. If checkout answers awaiting_payment, give the shopper the payment_url (or payment_instructions) and pay_by; get_order tells when the payment arrived. Reservations expire; release_cart when the customer gives up. Prices are integer minor units plus a display string.',
      // Bounds the work schema validation does on hostile payloads (check_stock takes at most 100 SKUs).
      maxToolInputElements: 1000,
      // 2026-07-28 results say how long a client may keep them: the tools change only with a new version,
      // and differ by the caller's scope, so no shared cache may keep them.
      cacheHints: {
        'tools/list': { ttlMs: TOOLS_TTL_MS, cacheScope: 'private' },
        'server/discover': { ttlMs: TOOLS_TTL_MS, cacheScope: 'private' },
      },
    },
  );
  // The SDK reports schema failures as free text; callers get the INVALID_INPUT refusal format instead.
  // createToolError and validateToolInput are private in the typings, so they are replaced on this instance only.
  const internals = server as unknown as SdkToolInternals;
  internals.createToolError = phraseSdkError;
  const validate = internals.validateToolInput.bind(server);
  internals.validateToolInput = async (tool, args, name) => {
    try {
      return await validate(tool, args, name);
    } catch (error) {
      // Only a schema failure is re-read (never the element bound's refusal, which must not parse the payload):
      // the SDK joins the issues with ", ", which also appears inside messages, so they are read one by one.
      if (!(error instanceof Error) || !error.message.startsWith('Input validation error')) throw error;
      const issues = await tool.inputSchema?.['~standard'].validate(args ?? {});
      if (!issues || !('issues' in issues) || !issues.issues) throw error;
      const lines = issues.issues.map((issue) =>
        issue.path?.length ? `${issue.message} at ${dotPath(issue.path)}` : issue.message,
      );
      throw new Error(`Input validation error: Invalid arguments for tool ${name}: ${lines.join('\n')}`);
    }
  };

  for (const tool of toolsFor(options.admin ? 'admin' : 'customer')) {
    assertCoherent(tool);
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: tool.description,
        inputSchema: tool.inputSchema,
        outputSchema: tool.outputSchema,
        annotations: { title: tool.title, ...tool.annotations },
      },
      async (input: Record<string, unknown>): Promise<CallToolResult> => {
        const started = performance.now();
        const log = (outcome: string, extra: Record<string, unknown> = {}) =>
          logger.info(
            {
              channel: ctx.channel,
              tool: tool.name,
              ms: Math.round((performance.now() - started) * 10) / 10,
              outcome,
              ...extra,
            },
            'tool call',
          );
        try {
          const output = await tool.run(store, ctx, input);
          log('ok');
          return {
            structuredContent: output as Record<string, unknown>,
            content: [{ type: 'text', text: tool.summarize(output) }],
          };
        } catch (error) {
          if (isStockError(error)) {
            log(error.code);
            if (error.code === ErrorCode.OUTCOME_UNKNOWN || error.code === ErrorCode.STORE_READ_ONLY) {
              // Not the caller's doing: the operator must hear of a failing or read-only database.
              logger.error(
                { channel: ctx.channel, tool: tool.name, err: error.cause ?? error },
                error.message,
              );
            }
            // OUTCOME_UNKNOWN names the tool, so an agent knows which call to repeat with its key.
            const details =
              error.code === ErrorCode.OUTCOME_UNKNOWN
                ? { ...error.details, tool: tool.name }
                : error.details;
            return refusalResult({ code: error.code, message: error.message, details });
          }
          logger.error({ channel: ctx.channel, tool: tool.name, err: error }, 'tool call failed');
          return {
            isError: true,
            content: [
              {
                type: 'text',
                text: 'INTERNAL_ERROR: Something went wrong on the server; nothing was changed. Try again later.',
              },
            ],
          };
        }
      },
    );
  }
  return server;
}
