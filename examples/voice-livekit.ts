// A LiveKit Agents (Node) toolset that exposes stocklock's MCP tools to a voice agent.
//
//   STOCKLOCK_URL=http://127.0.0.1:3000/mcp STOCKLOCK_TOKEN=slk_… npx tsx examples/voice-livekit.ts
//
// @livekit/agents 1.x for Node has no MCP client, so this adapter builds one from the MCP SDK's
// `Client`: `Toolset.create` connects when the agent activates, turns every tool stocklock lists into
// an `llm.tool` (stocklock's own JSON Schema as the parameters), and calls stocklock when the model
// does. Run directly, the script does what an AgentSession does on activation without joining a
// LiveKit room (no LiveKit server or model here): it sets the toolset up, lists the tools it
// offers, and calls check_stock through them. Exit 0 when that worked, 1 otherwise, 2 on a usage error.
import { llm, voice } from '@livekit/agents';
import { type CallToolResult, Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

/** stocklock's tools as a LiveKit toolset; the token decides the channel and what the agent may do. */
function stocklockToolset(url: string, token: string): llm.Toolset {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'livekit-voice-agent', version: '1.0.0' });
  return llm.Toolset.create({
    id: 'stocklock',
    tools: [],
    setup: async ({ updateTools }) => {
      await client.connect(transport);
      const { tools } = await client.listTools();
      updateTools(
        tools.map((listed) =>
          llm.tool({
            name: listed.name,
            description: listed.description ?? listed.name,
            parameters: listed.inputSchema,
            execute: async (args) => {
              const result = (await client.callTool({
                name: listed.name,
                arguments: args,
              })) as CallToolResult;
              // The text is what the model reads aloud; a refusal ("OUT_OF_STOCK: …") is text too, not an
              // exception, so the agent can tell the caller what to do instead.
              return result.content.map((block) => (block.type === 'text' ? block.text : '')).join('\n');
            },
          }),
        ),
      );
    },
    aclose: async () => {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    },
  });
}

async function main(url: string, token: string): Promise<void> {
  const toolset = stocklockToolset(url, token);
  // What a worker's entry function passes to `session.start({ agent, room })`.
  const agent = new voice.Agent({
    instructions:
      'You take orders by phone. Check stock before promising anything, reserve with add_to_cart, ' +
      'and read refusals to the caller in plain words.',
    tools: [toolset],
  });

  // The session's activation, without a room: set the toolset up and collect what it offers.
  let offered: readonly llm.ToolContextEntry[] = [];
  await toolset.setup({
    updateTools: (tools) => {
      offered = tools;
    },
  });
  try {
    const tools = new llm.ToolContext([...offered]).functionTools;
    process.stdout.write(`agent toolsets: ${agent.toolCtx.toolsets.map((set) => set.id).join(', ')}\n`);
    process.stdout.write(`tools: ${Object.keys(tools).join(', ')}\n`);
    const checkStock = tools.check_stock;
    if (!checkStock) throw new Error('the toolset offers no check_stock');
    const sku = process.env.CHECK_SKU ?? 'JACKET-LTD';
    // The runtime passes a RunContext of the live session; this tool does not read it.
    const answer = await checkStock.execute({ skus: [sku] }, {
      toolCallId: 'offline-1',
    } as llm.ToolOptions);
    process.stdout.write(`check_stock via the toolset: ${String(answer)}\n`);
    process.stdout.write('OK: the toolset listed and called stocklock (no LiveKit room was joined).\n');
  } finally {
    await toolset.aclose();
  }
}

const url = process.env.STOCKLOCK_URL;
const token = process.env.STOCKLOCK_TOKEN;
if (!url || !token) {
  process.stderr.write(
    'usage: STOCKLOCK_URL=http://127.0.0.1:3000/mcp STOCKLOCK_TOKEN=<token> npx tsx examples/voice-livekit.ts\n' +
      '(make a token with: npx stocklock token create --channel voice)\n',
  );
  process.exit(2);
}
main(url, token).catch((error: unknown) => {
  process.stderr.write(`voice-livekit: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
