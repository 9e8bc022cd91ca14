// Real SDK clients wired to a real server: in memory for speed.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { silentLogger } from '../../src/logger.js';
import { createServer } from '../../src/mcp/server.js';
import type { InventoryStore } from '../../src/storage/store.js';

export async function connect(
  store: InventoryStore,
  channel: string,
  admin = false,
  apps = true,
): Promise<Client> {
  const server = createServer({ store, channel, admin, logger: silentLogger, version: 'test', apps });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'stocklock-test', version: '1.0.0' });
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  // Real hosts list tools first; the SDK client then validates structuredContent against each output schema.
  await client.listTools();
  return client;
}

export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

export function text(result: CallToolResult, index = 0): string {
  const block = result.content[index];
  return block?.type === 'text' ? block.text : '';
}

/** The code of a refusal, checked against its format: code first in the text, JSON details second. */
export function refusalCode(result: CallToolResult): string {
  if (!result.isError) throw new Error(`expected a refusal, got ${text(result)}`);
  if (result.structuredContent !== undefined) throw new Error('a refusal must carry no structuredContent');
  const code = /^([A-Z_]+): /.exec(text(result))?.[1];
  const details = JSON.parse(text(result, 1)) as { code: string; message: string };
  if (details.code !== code) throw new Error(`text says ${code}, details say ${details.code}`);
  return details.code;
}

export function details(result: CallToolResult): Record<string, unknown> {
  return JSON.parse(text(result, 1)) as Record<string, unknown>;
}
