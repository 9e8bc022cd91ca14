// A voice agent (OpenAI Agents SDK, RealtimeAgent) that sells through stocklock over Streamable HTTP.
//
//   STOCKLOCK_URL=http://127.0.0.1:3000/mcp STOCKLOCK_TOKEN=slk_… npx tsx examples/voice-realtime.ts
//
// The agent gets stocklock as an MCP server: the RealtimeSession lists its tools, offers them to the
// realtime model, and calls them through the same MCPServerStreamableHttp object whenever the model
// asks. Without OPENAI_API_KEY the script stops before the session: it lists the tools the session
// would offer and calls check_stock both through the server object and through the agent's own
// function tool (the path a model's function call takes), so the stocklock side can be checked with
// no OpenAI account. Exit 0 when all of that worked, 1 otherwise, 2 on a usage error.
import { MCPServerStreamableHttp, RunContext } from '@openai/agents-core';
import { RealtimeAgent, type RealtimeContextData, RealtimeSession } from '@openai/agents-realtime';

const url = process.env.STOCKLOCK_URL;
const token = process.env.STOCKLOCK_TOKEN;
if (!url || !token) {
  process.stderr.write(
    'usage: STOCKLOCK_URL=http://127.0.0.1:3000/mcp STOCKLOCK_TOKEN=<token> npx tsx examples/voice-realtime.ts\n' +
      '(make a token with: npx stocklock token create --channel voice)\n',
  );
  process.exit(2);
}

const SKU = process.env.CHECK_SKU ?? 'JACKET-LTD';

async function main(): Promise<void> {
  const stocklock = new MCPServerStreamableHttp({
    url: url as string,
    name: 'stocklock',
    // The token decides the channel (voice) and the scope; the model never sees it.
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    // The session lists the tools on every turn; stocklock's tool list is fixed per token.
    cacheToolsList: true,
  });
  await stocklock.connect();
  try {
    const agent = new RealtimeAgent({
      name: 'Shop assistant',
      voice: 'alloy',
      instructions:
        'You take orders by phone. Check stock before promising anything, reserve with add_to_cart, ' +
        'and read refusals to the caller in plain words.',
      mcpServers: [stocklock],
    });

    const listed = await stocklock.listTools();
    process.stdout.write(`tools: ${listed.map((tool) => tool.name).join(', ')}\n`);

    // What the RealtimeSession offers the model: the agent's tools, resolved from its MCP servers.
    const context = new RunContext<RealtimeContextData>({ history: [] });
    const offered = await agent.getAllTools(context);
    const checkStock = offered.find((tool) => tool.type === 'function' && tool.name === 'check_stock');
    if (checkStock?.type !== 'function') throw new Error('the agent was not offered check_stock');

    const direct = await stocklock.callTool('check_stock', { skus: [SKU] });
    const first = direct[0];
    process.stdout.write(
      `check_stock via the MCP server: ${first?.type === 'text' ? first.text : '(no text)'}\n`,
    );

    // A model's function call arrives as JSON arguments; the session invokes the tool exactly so.
    const viaAgent = await checkStock.invoke(context, JSON.stringify({ skus: [SKU] }));
    process.stdout.write(
      `check_stock via the agent's tool: ${typeof viaAgent === 'string' ? viaAgent : JSON.stringify(viaAgent)}\n`,
    );

    const apiKey = process.env.OPENAI_API_KEY;
    if (!apiKey) {
      process.stdout.write('OK: no OPENAI_API_KEY, so the realtime session was not started.\n');
      return;
    }
    // The voice part: the session speaks over WebSocket from Node (WebRTC in a browser).
    const session = new RealtimeSession(agent, { transport: 'websocket' });
    await session.connect({ apiKey });
    session.sendMessage(`Is ${SKU} still available?`);
    await new Promise<void>((resolve) => session.on('agent_end', () => resolve()));
    session.close();
    process.stdout.write('OK: the realtime session answered.\n');
  } finally {
    await stocklock.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`voice-realtime: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
