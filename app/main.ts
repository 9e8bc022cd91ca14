// The stocklock app inside a host's conversation: every action is a tool call through the host, which keeps the
// shopper's consent and the server's checks in the path; the page itself holds no token and makes no request.
import {
  App,
  applyDocumentTheme,
  applyHostFonts,
  applyHostStyleVariables,
  type McpUiHostContext,
} from '@modelcontextprotocol/ext-apps';
import {
  type Cart,
  kindOf,
  type Locale,
  type Order,
  type Product,
  type Refusal,
  refusalSentence,
} from './format.js';
import { type Actions, renderCart, renderOrder, renderProducts, tick } from './view.js';

interface ToolResult {
  isError?: boolean;
  content?: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
}

const STOCK_POLL_MS = 30_000;
const ORDER_POLL_MS = 10_000;

const state: {
  products: Product[];
  cart?: Cart;
  order?: Order;
  checkoutKey?: { cart: string; key: string };
  busy: boolean;
  where: Locale;
} = { products: [], busy: false, where: {} };

const byId = (id: string) => document.getElementById(id) as HTMLElement;
const app = new App({ name: 'stocklock', version: '1.0.0' }, {}, { autoResize: true });

function key(prefix: string): string {
  // getRandomValues works in any frame; randomUUID needs a secure context that a sandbox may not give.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `${prefix}-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
}

function say(text: string, tone: 'info' | 'error' = 'info'): void {
  const status = byId('status');
  status.textContent = text;
  status.className = `status${tone === 'error' ? ' error' : ''}`;
}

function names(): Map<string, string> {
  const known = new Map(state.products.map((product) => [product.sku, product.name]));
  for (const line of state.cart?.lines ?? []) known.set(line.sku, line.name);
  return known;
}

function refusalOf(result: ToolResult): Refusal {
  const details = result.content?.[1]?.text;
  try {
    if (details) return JSON.parse(details) as Refusal;
  } catch {
    // Not our format: fall through to the first block.
  }
  const text = result.content?.[0]?.text ?? 'The shop could not do that.';
  return { code: text.split(':')[0] ?? 'ERROR', message: text };
}

/** Takes in any tool answer, whether the model's call (through the host) or the page's own. */
function accept(result: ToolResult, tool?: string): void {
  if (result.isError) {
    const refusal = refusalOf(result);
    say(refusalSentence(refusal, names(), tool), 'error');
    if (refusal.code === 'OUT_OF_STOCK' && refusal.sku && typeof refusal.available === 'number') {
      const product = state.products.find((candidate) => candidate.sku === refusal.sku);
      if (product) product.available = refusal.available;
    }
    render();
    return;
  }
  const kind = kindOf(result.structuredContent);
  if (!kind) return;
  if ('products' in kind) {
    const fresh = new Map(kind.products.map((product) => [product.sku, product]));
    const kept = state.products.map((product) => fresh.get(product.sku) ?? product);
    const added = kind.products.filter((product) => !state.products.some((old) => old.sku === product.sku));
    state.products = [...kept, ...added];
  } else if ('cart' in kind) {
    state.cart = kind.cart;
  } else {
    state.order = kind.order;
    if (state.cart?.cart_id === kind.order.cart_id) state.cart = { ...state.cart, status: 'checked_out' };
  }
  render();
}

async function call(
  name: string,
  args: Record<string, unknown>,
  working: string,
): Promise<ToolResult | undefined> {
  state.busy = true;
  say(working);
  render();
  try {
    const result = (await app.callServerTool({ name, arguments: args })) as ToolResult;
    say('');
    accept(result, name);
    if (!result.isError) void tellModel(result);
    return result;
  } catch (error) {
    say(`The shop could not be reached (${(error as Error).message}). Try again.`, 'error');
    return undefined;
  } finally {
    state.busy = false;
    render();
  }
}

/**
 * What the shopper did in the view, for the model's next turn (the cart id, the order and its status), where the
 * host takes it: the same one-line summary the tool gives every client.
 */
async function tellModel(result: ToolResult): Promise<void> {
  const summary = result.content?.[0]?.text;
  if (!summary || !app.getHostCapabilities()?.updateModelContext) return;
  const text = `In the shop view the shopper's latest step answered: ${summary}`;
  await app
    .updateModelContext({ content: [{ type: 'text', text }], structuredContent: result.structuredContent })
    .catch(() => undefined);
}

async function refreshStock(): Promise<void> {
  if (state.products.length === 0) return;
  const skus = state.products.map((product) => product.sku);
  const result = (await app
    .callServerTool({ name: 'check_stock', arguments: { skus } })
    .catch(() => undefined)) as ToolResult | undefined;
  if (result && !result.isError) accept(result);
}

const actions: Actions = {
  async add(sku) {
    const name = names().get(sku) ?? sku;
    const args: Record<string, unknown> = { sku, quantity: 1, idempotency_key: key('add') };
    if (state.cart?.status === 'open' || state.cart?.status === 'expired') args.cart_id = state.cart.cart_id;
    const result = await call('add_to_cart', args, `Adding ${name}…`);
    if (result && !result.isError) say(`${name} is in your cart.`);
    await refreshStock();
  },
  async remove(sku) {
    if (!state.cart) return;
    await call('release_cart', { cart_id: state.cart.cart_id, sku }, 'Removing…');
    const cart = await app.callServerTool({ name: 'get_cart', arguments: { cart_id: state.cart.cart_id } });
    accept(cart as ToolResult);
    await refreshStock();
  },
  async checkout() {
    const cart = state.cart;
    if (!cart) return;
    // The same key for every try on this cart, so a retry after a lost answer never orders twice.
    if (state.checkoutKey?.cart !== cart.cart_id)
      state.checkoutKey = { cart: cart.cart_id, key: key('checkout') };
    await call(
      'checkout',
      { cart_id: cart.cart_id, idempotency_key: state.checkoutKey.key },
      'Placing your order…',
    );
    await refreshStock();
  },
  async pay(url) {
    const opened = await app.openLink({ url }).catch(() => ({ isError: true }));
    if (opened.isError) say(`The payment page could not be opened here. Open it yourself: ${url}`, 'error');
    else say('The payment page is open. This order updates when your payment arrives.');
  },
  async refreshOrder() {
    if (state.order) await call('get_order', { order_id: state.order.order_id }, 'Checking your payment…');
  },
};

function render(): void {
  const main = byId('app');
  main.setAttribute('aria-busy', String(state.busy));
  const now = Date.now();
  byId('products').hidden = state.products.length === 0;
  renderProducts(byId('product-list'), state.products, state.busy, actions);
  const showCart = state.cart !== undefined && !(state.order && state.cart.status === 'checked_out');
  byId('cart').hidden = !showCart;
  if (state.cart && showCart)
    renderCart(byId('cart-body'), state.cart, now, state.where, state.busy, actions);
  byId('order').hidden = !state.order;
  if (state.order) renderOrder(byId('order-body'), state.order, state.where, state.busy, actions);
  byId('empty').hidden = state.products.length > 0 || showCart || state.order !== undefined;
}

function applyContext(context: McpUiHostContext | undefined): void {
  if (!context) return;
  if (context.theme) applyDocumentTheme(context.theme);
  if (context.styles?.variables) applyHostStyleVariables(context.styles.variables);
  if (context.styles?.css?.fonts) applyHostFonts(context.styles.css.fonts);
  state.where = {
    locale: context.locale ?? state.where.locale,
    timeZone: context.timeZone ?? state.where.timeZone,
  };
  const insets = context.safeAreaInsets;
  if (insets) {
    document.body.style.padding = `${insets.top}px ${insets.right}px ${insets.bottom}px ${insets.left}px`;
  }
}

app.ontoolresult = (result) => accept(result as ToolResult);
app.onhostcontextchanged = (context) => {
  applyContext({ ...app.getHostContext(), ...context });
  render();
};

byId('refresh-stock').addEventListener('click', () => void refreshStock());
byId('browse').addEventListener('click', () => void call('search_products', {}, 'Finding products…'));

// The countdown moves every second; when the hold runs out the page asks the server, which decides.
let expiredSeen: string | undefined;
setInterval(() => {
  const cart = state.cart;
  if (cart?.status !== 'open' || byId('cart').hidden) return;
  if (tick(cart, Date.now()) && expiredSeen !== cart.expires_at) {
    expiredSeen = cart.expires_at;
    render();
    void app.callServerTool({ name: 'get_cart', arguments: { cart_id: cart.cart_id } }).then(
      (result) => accept(result as ToolResult),
      () => undefined,
    );
  }
}, 1000);
setInterval(() => {
  if (document.visibilityState === 'visible') void refreshStock();
}, STOCK_POLL_MS);
setInterval(() => {
  if (state.order?.status === 'awaiting_payment' && !state.busy) {
    void app.callServerTool({ name: 'get_order', arguments: { order_id: state.order.order_id } }).then(
      (result) => accept(result as ToolResult),
      () => undefined,
    );
  }
}, ORDER_POLL_MS);

render();
app.connect().then(
  () => {
    applyContext(app.getHostContext());
    render();
  },
  (error: Error) => say(`This view could not reach the conversation (${error.message}).`, 'error'),
);
