// The Holds page: open carts on every channel, who holds them, a countdown to expiry, and releasing one.
import { api, clientLabel, failed, h, status, statusRegion, when } from '../lib.js';

export function holdsPage(main) {
  const note = statusRegion();
  const list = h('tbody');
  const empty = h('p', { class: 'hint' });
  let offset = 0;
  const rows = new Map();

  function countdown(expiresAt) {
    const left = expiresAt - (Date.now() + offset);
    if (left <= 0) return 'expired';
    const total = Math.ceil(left / 1000);
    const hh = Math.floor(total / 3600);
    const mm = Math.floor((total % 3600) / 60);
    const ss = String(total % 60).padStart(2, '0');
    return hh > 0 ? `${hh}h ${String(mm).padStart(2, '0')}m` : `${mm}:${ss}`;
  }

  function tick() {
    for (const row of rows.values()) row.clock.textContent = countdown(row.expiresAt);
  }
  const ticker = setInterval(tick, 1000);

  async function release(cart, button) {
    button.disabled = true;
    try {
      const result = await api(`holds/${encodeURIComponent(cart.cart_id)}/release`, {
        method: 'POST',
        body: {},
      });
      const units = result.released.reduce((n, l) => n + l.quantity, 0);
      status(
        note,
        'success',
        `Released cart ${cart.cart_id} (${cart.channel}): ${units} unit${units === 1 ? '' : 's'} back in stock.`,
      );
      refresh();
    } catch (error) {
      failed(note, error);
      button.disabled = false;
    }
  }

  async function refresh() {
    const data = await api('holds');
    offset = data.now - Date.now();
    const seen = new Set();
    for (const cart of data.carts) {
      seen.add(cart.cart_id);
      const signature = JSON.stringify(cart);
      let row = rows.get(cart.cart_id);
      if (row && row.signature === signature) continue;
      const clock = h('span', { class: 'countdown' });
      const button = h(
        'button',
        { type: 'button', class: 'danger', 'aria-label': `Release cart ${cart.cart_id} of ${cart.channel}` },
        'Release',
      );
      button.addEventListener('click', () => release(cart, button));
      const units = cart.lines.reduce((n, l) => n + l.held, 0);
      const tr = h(
        'tr',
        { 'data-cart': cart.cart_id },
        h(
          'td',
          { 'data-label': 'Channel' },
          cart.channel,
          cart.customer_ref ? h('div', { class: 'hint' }, cart.customer_ref) : '',
        ),
        h(
          'td',
          { 'data-label': 'Holder', class: 'holder' },
          cart.holder.grant_id
            ? [
                h('span', { class: 'client' }, clientLabel(cart.holder.client_name, cart.holder.client_id)),
                h(
                  'div',
                  { class: 'hint' },
                  `OAuth via ${cart.holder.redirect_host ?? '?'} · `,
                  h('code', {}, cart.holder.grant_id),
                ),
              ]
            : h('span', { class: 'hint' }, 'the channel (static token)'),
        ),
        h('td', { 'data-label': 'Cart', class: 'wide' }, h('code', {}, cart.cart_id)),
        h(
          'td',
          { 'data-label': 'Lines', class: 'wide' },
          h(
            'ul',
            { class: 'problems' },
            cart.lines.map((l) =>
              h(
                'li',
                {},
                `${l.quantity} × `,
                h('code', {}, l.sku),
                ` ${l.name}`,
                l.held === l.quantity ? '' : h('span', { class: 'tag warn' }, ` holds ${l.held}`),
              ),
            ),
          ),
        ),
        h('td', { 'data-label': 'Units held', class: 'num' }, units),
        h(
          'td',
          { 'data-label': 'Expires in' },
          clock,
          cart.expired
            ? h('div', {}, h('span', { class: 'tag bad' }, 'expired, not yet swept'))
            : h('div', { class: 'hint' }, when(cart.expires_at)),
        ),
        h('td', { 'data-label': 'Release' }, button),
      );
      row = { tr, clock, expiresAt: cart.expires_at, signature };
      const old = rows.get(cart.cart_id);
      if (old) old.tr.replaceWith(tr);
      rows.set(cart.cart_id, row);
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    // Keep the server's order (soonest expiry first).
    for (const cart of data.carts) list.append(rows.get(cart.cart_id).tr);
    empty.textContent =
      data.carts.length === 0
        ? 'No open carts: nothing is held right now.'
        : `${data.carts.length} open cart${data.carts.length === 1 ? '' : 's'}, soonest expiry first.`;
    tick();
  }

  main.replaceChildren(
    h('h1', {}, 'Holds'),
    h(
      'p',
      { class: 'hint' },
      'Open carts on every channel, who holds them (an OAuth sign-in, or the whole channel for a static token) and what they hold. Releasing a cart puts its units back on sale and tells the channel nothing: its next call sees the cart released.',
    ),
    note,
    empty,
    h(
      'table',
      { class: 'stack', id: 'holds-table' },
      h('caption', { class: 'sr-only' }, 'Open carts'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Channel', 'Holder', 'Cart', 'Lines', 'Units held', 'Expires in', 'Release'].map((c) =>
            h('th', { scope: 'col', class: c === 'Units held' ? 'num' : '' }, c),
          ),
        ),
      ),
      list,
    ),
  );
  return Object.assign(refresh, { stop: () => clearInterval(ticker) });
}
