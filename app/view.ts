// Rendering: products as cards, the cart with its hold, the order with its payment step. No state lives here.
import {
  availability,
  type Cart,
  clockTime,
  type Locale,
  money,
  type Order,
  type Product,
  remaining,
  remainingWords,
} from './format.js';

type Child = Node | string | null | undefined | false;

export function h(
  tag: string,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElement {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children) if (child) element.append(child);
  return element;
}

export interface Actions {
  add(sku: string): void;
  remove(sku: string): void;
  checkout(): void;
  pay(url: string): void;
  refreshOrder(): void;
}

export function renderProducts(
  list: HTMLElement,
  products: Product[],
  busy: boolean,
  actions: Actions,
): void {
  list.replaceChildren(
    ...products.map((product) => {
      const titleId = `p-${product.sku}`;
      const soldOut = product.available !== null && product.available <= 0;
      const low = product.available !== null && product.available > 0 && product.available <= 5;
      return h(
        'li',
        { class: 'card', 'aria-labelledby': titleId, 'data-sku': product.sku },
        h('h3', { id: titleId }, product.name),
        product.description ? h('p', { class: 'muted' }, product.description) : null,
        h(
          'p',
          { class: 'card-row' },
          h('span', { class: 'price' }, product.price_display),
          h(
            'span',
            { class: `stock${soldOut ? ' out' : low ? ' low' : ''}`, 'data-stock': product.sku },
            availability(product),
          ),
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'primary',
            disabled: soldOut || busy,
            // The visible words lead the name, so speech users can say what they see.
            'aria-label': soldOut ? `Sold out: ${product.name}` : `Add to cart: ${product.name}`,
          },
          soldOut ? 'Sold out' : 'Add to cart',
        ),
      );
    }),
  );
  list.querySelectorAll<HTMLButtonElement>('li button').forEach((button, index) => {
    const product = products[index];
    if (product) button.addEventListener('click', () => actions.add(product.sku));
  });
}

function lineRows(
  lines: Cart['lines'],
  currency: string | null,
  remove?: (sku: string) => void,
): HTMLElement {
  return h(
    'table',
    { class: 'lines' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Item'),
        h('th', { scope: 'col', class: 'num' }, 'Qty'),
        h('th', { scope: 'col', class: 'num' }, 'Price'),
        remove ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Remove')) : null,
      ),
    ),
    h(
      'tbody',
      {},
      ...lines.map((line) => {
        const button = remove
          ? h('button', { type: 'button', class: 'quiet', 'aria-label': `Remove ${line.name}` }, 'Remove')
          : null;
        button?.addEventListener('click', () => remove?.(line.sku));
        return h(
          'tr',
          { 'data-sku': line.sku },
          h('td', {}, line.name),
          h('td', { class: 'num' }, String(line.quantity)),
          h('td', { class: 'num' }, money(line.line_total_minor, currency)),
          button ? h('td', {}, button) : null,
        );
      }),
    ),
  );
}

/** The hold's state as a sentence that says what happens when it runs out. */
export function holdText(cart: Cart, now: number, where: Locale): { live: boolean; text: string } {
  const left = remaining(cart.expires_at, now);
  const until = clockTime(cart.expires_at, where);
  if (cart.status === 'open' && left.ms > 0) {
    return {
      live: true,
      text: `These items are held for you until ${until}. If you have not checked out by then, they go back on sale for everyone and may be gone.`,
    };
  }
  return {
    live: false,
    text: `Your hold ran out at ${until}: the items went back on sale. Check out or add an item to hold them again, if they are still there.`,
  };
}

export function renderCart(
  body: HTMLElement,
  cart: Cart,
  now: number,
  where: Locale,
  busy: boolean,
  actions: Actions,
) {
  if (cart.status === 'checked_out' || cart.status === 'released' || cart.lines.length === 0) {
    body.replaceChildren(
      h(
        'p',
        { class: 'muted' },
        cart.status === 'checked_out' ? 'This cart is checked out.' : 'Your cart is empty.',
      ),
    );
    return;
  }
  const hold = holdText(cart, now, where);
  const left = remaining(cart.expires_at, now);
  const checkout = h('button', { type: 'button', class: 'primary', disabled: busy }, 'Check out');
  checkout.addEventListener('click', actions.checkout);
  body.replaceChildren(
    lineRows(cart.lines, cart.currency, actions.remove),
    h(
      'p',
      { class: 'total' },
      'Total ',
      h('strong', {}, cart.total_display ?? money(cart.total_minor, cart.currency)),
    ),
    h(
      'div',
      { class: `hold${hold.live ? '' : ' expired'}` },
      hold.live
        ? h(
            'p',
            { class: 'countdown' },
            'Held for ',
            h(
              'time',
              { id: 'countdown', datetime: cart.expires_at, 'aria-label': `${remainingWords(left.ms)} left` },
              left.text,
            ),
          )
        : h('p', { class: 'countdown' }, 'Hold expired'),
      h('p', { id: 'hold-text' }, hold.text),
    ),
    checkout,
  );
}

/** Moves the countdown without redrawing the cart; true once the hold has run out. */
export function tick(cart: Cart, now: number): boolean {
  const left = remaining(cart.expires_at, now);
  const time = document.getElementById('countdown');
  if (time) {
    time.textContent = left.text;
    time.setAttribute('aria-label', `${remainingWords(left.ms)} left`);
  }
  return left.ms <= 0;
}

export function renderOrder(body: HTMLElement, order: Order, where: Locale, busy: boolean, actions: Actions) {
  const parts: Child[] = [
    h('p', {}, 'Order ', h('code', {}, order.order_id)),
    lineRows(order.lines, order.currency),
    h('p', { class: 'total' }, 'Total ', h('strong', {}, order.total_display)),
  ];
  if (order.status === 'paid') {
    parts.push(h('p', { class: 'done', id: 'order-state' }, 'Paid. Your order is confirmed.'));
  } else if (order.status === 'cancelled') {
    const why =
      order.cancel_reason === 'payment_timeout' || order.cancel_reason === 'payment_expired'
        ? 'the payment did not arrive in time, so the items went back on sale'
        : 'the shop cancelled it';
    parts.push(h('p', { class: 'warn', id: 'order-state' }, `Cancelled: ${why}. Nothing was charged by us.`));
  } else {
    const payBy = order.pay_by ? clockTime(order.pay_by, where) : '';
    parts.push(
      h(
        'p',
        { id: 'order-state' },
        `Waiting for your payment. Pay by ${payBy}: the items are held for you until then, and go back on sale if the payment has not arrived.`,
      ),
    );
    if (order.payment_url) {
      const url = order.payment_url;
      const pay = h('button', { type: 'button', class: 'primary' }, `Pay ${order.total_display}`);
      pay.addEventListener('click', () => actions.pay(url));
      parts.push(pay);
    } else if (order.payment_instructions) {
      parts.push(h('p', { class: 'instructions' }, order.payment_instructions));
    }
    const check = h('button', { type: 'button', class: 'quiet', disabled: busy }, 'Check payment status');
    check.addEventListener('click', actions.refreshOrder);
    parts.push(' ', check);
  }
  body.replaceChildren(...parts.filter((part): part is Node | string => Boolean(part)));
}
