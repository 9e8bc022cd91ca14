// A chat-bot backend (Telegram-style) as a stocklock MCP client: search, add to cart, checkout.
//
//   STOCKLOCK_URL=http://127.0.0.1:3000/mcp STOCKLOCK_TOKEN=slk_… npx tsx examples/bot-backend.ts
//
// No Telegram library and no bot token: the incoming updates are simulated below, shaped like the
// Bot API's `Update` objects. Telegram redelivers an update whenever a webhook does not answer in
// time, so every write passes `idempotency_key: tg-<update_id>`: a redelivered update is applied
// once. The script replays one update to show it, checks the cart on the server, and exits 0 only
// when everything went as expected (1 otherwise, 2 on a usage error).
import { type CallToolResult, Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

interface Update {
  update_id: number;
  message: { chat: { id: number }; text: string };
}

interface CartLine {
  sku: string;
  quantity: number;
}
interface Cart {
  cart_id: string;
  status: string;
  lines: CartLine[];
  order_id: string | null;
}
interface Order {
  order_id: string;
  cart_id: string;
  lines: CartLine[];
}

/** What the bot remembers per chat: its open cart, and which update created it. */
interface ChatState {
  cartId: string;
  createdBy: number;
}

const url = process.env.STOCKLOCK_URL;
const token = process.env.STOCKLOCK_TOKEN;
if (!url || !token) {
  process.stderr.write(
    'usage: STOCKLOCK_URL=http://127.0.0.1:3000/mcp STOCKLOCK_TOKEN=<token> npx tsx examples/bot-backend.ts\n' +
      '(make a token with: npx stocklock token create --channel telegram)\n',
  );
  process.exit(2);
}

class Refused extends Error {}

const chats = new Map<number, ChatState>();
/** The cart each chat checked out last (for the checks at the end). */
const checkedOut = new Map<number, string>();

async function callTool(client: Client, name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const first = result.content[0];
  const text = first?.type === 'text' ? first.text : '';
  // A refusal is a normal tool result: `CODE: a sentence a person can act on`. Show it to the user.
  if (result.isError) return { ok: false as const, text };
  return { ok: true as const, text, data: result.structuredContent };
}

/** Handles one update and returns the reply the bot would send to the chat. */
async function handle(client: Client, update: Update): Promise<string> {
  const chatId = update.message.chat.id;
  const [command, ...args] = update.message.text.trim().split(/\s+/);
  const key = `tg-${update.update_id}`;
  const state = chats.get(chatId);

  switch (command) {
    case '/search': {
      const found = await callTool(client, 'search_products', {
        query: args.join(' '),
        in_stock_only: true,
        limit: 5,
      });
      return found.text;
    }
    case '/add': {
      const [sku, quantity = '1'] = args;
      // A replay must send exactly the original arguments: stocklock refuses a reused key with
      // different arguments (IDEMPOTENCY_CONFLICT). So the update that created the cart keeps
      // omitting cart_id when Telegram redelivers it, although the bot knows the cart by then.
      const cartId = state && state.createdBy !== update.update_id ? state.cartId : undefined;
      const added = await callTool(client, 'add_to_cart', {
        sku,
        quantity: Number(quantity),
        ...(cartId ? { cart_id: cartId } : {}),
        idempotency_key: key,
      });
      if (added.ok && !state) {
        chats.set(chatId, { cartId: (added.data as unknown as Cart).cart_id, createdBy: update.update_id });
      }
      return added.text;
    }
    case '/cart': {
      if (!state) return 'Your cart is empty. Try /search.';
      return (await callTool(client, 'get_cart', { cart_id: state.cartId })).text;
    }
    case '/checkout': {
      if (!state) return 'Your cart is empty. Try /search.';
      const order = await callTool(client, 'checkout', { cart_id: state.cartId, idempotency_key: key });
      if (order.ok) {
        chats.delete(chatId);
        checkedOut.set(chatId, state.cartId);
      }
      return order.text;
    }
    default:
      return 'Commands: /search WORDS, /add SKU [QTY], /cart, /checkout';
  }
}

function expect(condition: boolean, message: string): void {
  if (!condition) throw new Refused(message);
}

async function main(): Promise<void> {
  const transport = new StreamableHTTPClientTransport(new URL(url as string), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  // 'auto': MCP 2026-07-28 when the server speaks it (stocklock does), each request on its own, no session.
  const client = new Client(
    { name: 'telegram-bot-example', version: '1.0.0' },
    { versionNegotiation: { mode: 'auto' } },
  );
  await client.connect(transport);

  // Real update ids grow per bot; these start at the clock so that runs against the same server
  // never reuse an idempotency key (keys are kept at least 24 hours per channel).
  const first = Number(process.env.FIRST_UPDATE_ID ?? Date.now());
  const chat = { id: 4242 };
  const update = (offset: number, text: string): Update => ({
    update_id: first + offset,
    message: { chat, text },
  });
  const addMugs = update(1, '/add MUG-WHT 2');
  const script: { update: Update; redelivery?: boolean }[] = [
    { update: update(0, '/search mug') },
    { update: addMugs },
    { update: update(2, '/add TEE-BLK-M 1') },
    { update: addMugs, redelivery: true }, // the webhook answer for addMugs was lost
    { update: update(3, '/cart') },
    { update: update(4, '/checkout') },
  ];

  try {
    for (const step of script) {
      const reply = await handle(client, step.update);
      const label = step.redelivery ? 'redelivered' : 'update';
      process.stdout.write(`${label} ${step.update.update_id} ${step.update.message.text}\n  → ${reply}\n`);
    }

    // The redelivered add was applied once: the cart that was checked out holds 2 mugs, not 4.
    const cartId = checkedOut.get(chat.id);
    expect(cartId !== undefined, 'the checkout did not go through');
    const cart = await callTool(client, 'get_cart', { cart_id: cartId });
    expect(cart.ok, `get_cart failed: ${cart.text}`);
    const { status, lines, order_id } = cart.data as unknown as Cart;
    const quantities = Object.fromEntries(lines.map((line) => [line.sku, line.quantity]));
    expect(status === 'checked_out', `the cart is ${status}, not checked_out`);
    expect(
      quantities['MUG-WHT'] === 2 && quantities['TEE-BLK-M'] === 1 && lines.length === 2,
      `unexpected cart lines ${JSON.stringify(quantities)}`,
    );

    // A bot that retries its checkout call (say, after a timeout) with the same key gets the same
    // order back; nothing is sold twice.
    const again = await callTool(client, 'checkout', {
      cart_id: cartId,
      idempotency_key: `tg-${first + 4}`,
    });
    expect(again.ok, `checkout retry failed: ${again.text}`);
    expect((again.data as unknown as Order).order_id === order_id, 'the checkout retry made another order');
    process.stdout.write(`retried checkout (key tg-${first + 4})\n  → ${again.text}\n`);
    process.stdout.write('OK: the redelivered update and the retried checkout were applied once.\n');
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bot-backend: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
