// stocklock console: renders each page from the JSON API and refreshes it when the server pushes a change.
// Plain browser JavaScript, no build step and nothing fetched from elsewhere: the page works offline.

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const main = document.getElementById('main');
const liveBadge = document.getElementById('live');
const KINDS = ['import', 'restock', 'adjust', 'reserve', 'release', 'expire', 'sale'];
const DAY_MS = 86_400_000;

/** Builds an element; text is always set as text, never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children)
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `Request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code;
    this.problems = body?.error?.problems ?? [];
  }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`api/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) {
    location.reload();
    throw new ApiError(res.status, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function money(minor, currency) {
  const digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
    .maximumFractionDigits;
  return `${(minor / 10 ** digits).toFixed(digits)} ${currency}`;
}

function moneyList(byCurrency) {
  const entries = Object.entries(byCurrency);
  return entries.length === 0 ? '—' : entries.map(([c, v]) => money(v, c)).join(' + ');
}

function when(ms) {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function status(el, kind, message, problems = []) {
  el.className = `status ${kind}`;
  el.replaceChildren(
    message,
    problems.length
      ? h(
          'ul',
          { class: 'problems' },
          problems.map((p) => h('li', {}, p)),
        )
      : '',
  );
}

function statusRegion() {
  return h('div', { class: 'status', role: 'status', 'aria-live': 'polite' });
}

/** Shows an action's refusal next to the form, as the server phrased it. */
function failed(el, error) {
  status(
    el,
    'problem',
    error instanceof ApiError ? `${error.code ?? 'ERROR'}: ${error.message}` : String(error),
    error.problems,
  );
}

/**
 * A revoke button with a confirm step: the first press asks, the second acts, "Keep" backs out.
 * Focus moves to the question so a keyboard user hears it and can answer.
 */
function confirmButton(label, ariaLabel, question, act) {
  const cell = h('span', { class: 'confirm' });
  const ask = h('button', { type: 'button', class: 'danger', 'aria-label': ariaLabel }, label);
  const show = () => cell.replaceChildren(ask);
  ask.addEventListener('click', () => {
    const yes = h(
      'button',
      { type: 'button', class: 'danger', 'aria-label': `Confirm: ${ariaLabel}` },
      `${label} now`,
    );
    const no = h('button', { type: 'button', class: 'quiet' }, 'Keep');
    yes.addEventListener('click', () => act(yes));
    no.addEventListener('click', () => {
      show();
      ask.focus();
    });
    cell.replaceChildren(h('span', { class: 'hint' }, question), ' ', yes, ' ', no);
    yes.focus();
  });
  show();
  return cell;
}

/** A client as the merchant knows it: its own name, else its id (a CIMD URL or a registered cli_ id). */
function clientLabel(name, clientId) {
  return name ?? clientId ?? 'unknown client';
}

function stamp(ms) {
  return ms === null || ms === undefined ? 'never' : when(ms).slice(0, 16);
}

// ---------------------------------------------------------------- pages

const pages = {};

pages.stock = () => {
  const search = h('input', {
    id: 'stock-search',
    type: 'search',
    name: 'q',
    autocomplete: 'off',
    placeholder: 'SKU or name',
  });
  const note = statusRegion();
  const body = h('tbody');
  const count = h('p', { class: 'hint' });
  const rows = new Map();
  let timer;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });

  function adjustForm(sku) {
    const qty = h('input', {
      type: 'number',
      name: 'quantity',
      min: 0,
      step: 1,
      required: true,
      id: `qty-${sku}`,
      placeholder: 'units',
    });
    const why = h('input', {
      type: 'text',
      name: 'note',
      maxlength: 500,
      id: `note-${sku}`,
      placeholder: 'note',
    });
    const form = h(
      'form',
      { class: 'adjust', 'data-sku': sku },
      h('label', { class: 'sr-only', for: `qty-${sku}` }, `Units for ${sku}`),
      qty,
      h('label', { class: 'sr-only', for: `note-${sku}` }, `Note for ${sku}`),
      why,
      h('input', { type: 'hidden', name: '_csrf', value: csrf }),
      h(
        'button',
        { type: 'submit', name: 'action', value: 'restock', 'aria-label': `Restock ${sku}` },
        'Restock',
      ),
      h(
        'button',
        { type: 'submit', name: 'action', value: 'set', class: 'quiet', 'aria-label': `Set stock of ${sku}` },
        'Set',
      ),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const action = event.submitter?.value ?? 'restock';
      const quantity = Number(qty.value);
      if (qty.value === '' || !Number.isInteger(quantity)) {
        status(note, 'problem', `Give a whole number of units for ${sku}.`);
        qty.focus();
        return;
      }
      for (const b of form.querySelectorAll('button')) b.disabled = true;
      try {
        const { level } = await api(`stock/${encodeURIComponent(sku)}/${action}`, {
          method: 'POST',
          body: { quantity, note: why.value || undefined },
        });
        status(
          note,
          'success',
          `${action === 'set' ? 'Set' : 'Restocked'} ${sku}: on hand ${level.on_hand}, available ${level.available ?? 'untracked'}.`,
        );
        qty.value = '';
        why.value = '';
        refresh();
      } catch (error) {
        failed(note, error);
      } finally {
        for (const b of form.querySelectorAll('button')) b.disabled = false;
      }
    });
    return form;
  }

  function cells(p) {
    return [
      ['SKU', h('code', {}, p.sku)],
      ['Name', p.active ? p.name : h('span', {}, p.name, ' ', h('span', { class: 'tag' }, 'inactive'))],
      ['Price', money(p.price_minor, p.currency)],
      ['On hand', p.track_stock ? p.on_hand : '—'],
      ['Reserved', p.track_stock ? p.reserved : '—'],
      [
        'Available',
        p.track_stock
          ? h('span', { class: p.available <= 1 ? 'low' : '' }, p.available)
          : h('span', { class: 'tag' }, 'untracked'),
      ],
      ['Tracked', p.track_stock ? 'yes' : 'no'],
    ];
  }

  async function refresh() {
    const data = await api(`stock?q=${encodeURIComponent(search.value)}`);
    const seen = new Set();
    let previous = null;
    for (const p of data.products) {
      seen.add(p.sku);
      let row = rows.get(p.sku);
      const signature = JSON.stringify(p);
      if (!row) {
        row = { tr: h('tr', { 'data-sku': p.sku }), signature: '' };
        row.cells = cells(p).map(([label]) =>
          h('td', {
            'data-label': label,
            class: ['On hand', 'Reserved', 'Available', 'Price'].includes(label)
              ? 'num'
              : label === 'Name'
                ? 'wide'
                : '',
          }),
        );
        row.tr.append(...row.cells, h('td', { 'data-label': 'Adjust', class: 'wide' }, adjustForm(p.sku)));
        rows.set(p.sku, row);
      }
      if (row.signature !== signature) {
        cells(p).forEach(([, value], i) => {
          row.cells[i].replaceChildren(value);
        });
        if (row.signature) {
          row.tr.classList.remove('flash');
          void row.tr.offsetWidth;
          row.tr.classList.add('flash');
        }
        row.signature = signature;
      }
      // Rows are moved, never rebuilt, so a half-typed quantity survives a live update.
      const want = previous ? previous.nextSibling : body.firstChild;
      if (want !== row.tr) body.insertBefore(row.tr, want);
      previous = row.tr;
    }
    for (const [sku, row] of rows) {
      if (!seen.has(sku)) {
        row.tr.remove();
        rows.delete(sku);
      }
    }
    count.textContent =
      data.products.length >= data.limit
        ? `Showing the first ${data.limit} products; search to narrow.`
        : `${data.products.length} product${data.products.length === 1 ? '' : 's'}.`;
  }

  main.replaceChildren(
    h('h1', {}, 'Stock'),
    h(
      'p',
      { class: 'hint' },
      'Live: sales and holds on every channel show here within a second. Restock adds received units; Set records a stock take. Both go to the ledger with your note.',
    ),
    h('div', { class: 'row' }, h('div', {}, h('label', { for: 'stock-search' }, 'Search'), search)),
    note,
    count,
    h(
      'table',
      { class: 'stack', id: 'stock-table' },
      h('caption', { class: 'sr-only' }, 'Stock per SKU'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['SKU', 'Name', 'Price', 'On hand', 'Reserved', 'Available', 'Tracked', 'Adjust'].map((c) =>
            h(
              'th',
              { scope: 'col', class: ['Price', 'On hand', 'Reserved', 'Available'].includes(c) ? 'num' : '' },
              c,
            ),
          ),
        ),
      ),
      body,
    ),
  );
  return refresh;
};

pages.holds = () => {
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
};

function chart(days, fromDay, today) {
  const max = Math.max(1, ...days.map((d) => d.orders));
  const width = 280;
  const barW = width / days.length;
  const svg = s('svg', {
    class: 'chart',
    viewBox: `0 0 ${width} 70`,
    role: 'img',
    preserveAspectRatio: 'none',
  });
  const summary = days
    .map((d, i) => `${new Date((fromDay + i) * DAY_MS).toISOString().slice(5, 10)}: ${d.orders}`)
    .join(', ');
  svg.setAttribute('aria-label', `Orders per day, last ${days.length} days: ${summary}`);
  days.forEach((d, i) => {
    const hgt = Math.round((d.orders / max) * 52);
    const rect = s('rect', {
      x: i * barW + 3,
      y: 56 - hgt,
      width: barW - 6,
      height: Math.max(hgt, 1),
      class: fromDay + i === today ? 'today' : '',
    });
    rect.append(
      s('title', {}, `${new Date((fromDay + i) * DAY_MS).toISOString().slice(0, 10)}: ${d.orders} orders`),
    );
    svg.append(
      rect,
      s(
        'text',
        { x: i * barW + barW / 2, y: 68, 'text-anchor': 'middle' },
        new Date((fromDay + i) * DAY_MS).toISOString().slice(8, 10),
      ),
    );
  });
  return svg;
}

pages.channels = () => {
  const cards = h('div', { class: 'cards', id: 'channel-cards' });
  const tokenBody = h('tbody');
  const grantBody = h('tbody');
  const grantsEmpty = h('p', { class: 'hint' });
  const hostBody = h('tbody');
  const note = statusRegion();
  const grantNote = statusRegion();
  const hostNote = statusRegion();
  const hostInput = h('input', {
    id: 'host-name',
    type: 'text',
    name: 'host',
    required: true,
    maxlength: 253,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'e.g. chatgpt.com',
  });
  const hostChannelInput = h('input', {
    id: 'host-channel',
    type: 'text',
    name: 'channel',
    maxlength: 64,
    autocomplete: 'off',
    placeholder: 'e.g. chatgpt',
  });
  const hostForm = h(
    'form',
    { class: 'row card', id: 'host-form' },
    h('div', {}, h('label', { for: 'host-name' }, 'Host'), hostInput),
    h('div', {}, h('label', { for: 'host-channel' }, 'Sells as channel'), hostChannelInput),
    h('div', {}, h('button', { type: 'submit', value: 'allow' }, 'Allow host')),
    h(
      'div',
      {},
      h('button', { type: 'submit', value: 'deny', class: 'quiet', formnovalidate: true }, 'Deny host'),
    ),
  );
  const once = h('div', { id: 'token-once' });

  const channelInput = h('input', {
    id: 'token-channel',
    type: 'text',
    name: 'channel',
    required: true,
    maxlength: 64,
    pattern: '[a-z0-9][a-z0-9._\\-]{0,63}',
    autocomplete: 'off',
    placeholder: 'e.g. telegram',
  });
  const labelInput = h('input', {
    id: 'token-label',
    type: 'text',
    name: 'label',
    maxlength: 100,
    autocomplete: 'off',
  });
  const adminInput = h('input', { id: 'token-admin', type: 'checkbox', name: 'admin' });
  const createForm = h(
    'form',
    { class: 'row card', id: 'token-form' },
    h('input', { type: 'hidden', name: '_csrf', value: csrf }),
    h('div', {}, h('label', { for: 'token-channel' }, 'Channel'), channelInput),
    h('div', {}, h('label', { for: 'token-label' }, 'Label (optional)'), labelInput),
    h(
      'div',
      {},
      h('label', { class: 'check', for: 'token-admin' }, adminInput, 'Admin (restock, set stock, console)'),
    ),
    h('div', {}, h('button', { type: 'submit' }, 'Create token')),
  );
  createForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const issued = await api('tokens', {
        method: 'POST',
        body: {
          channel: channelInput.value.trim(),
          admin: adminInput.checked,
          label: labelInput.value || undefined,
        },
      });
      const copy = h('button', { type: 'button', class: 'quiet' }, 'Copy');
      copy.addEventListener('click', () =>
        navigator.clipboard?.writeText(issued.token).then(() => {
          copy.textContent = 'Copied';
        }),
      );
      once.replaceChildren(
        h(
          'div',
          { class: 'token-once', role: 'alert' },
          h(
            'strong',
            {},
            `New ${issued.record.admin ? 'admin' : 'customer'} token for channel "${issued.record.channel}" (${issued.record.id}). Copy it now: it is shown only once, only its hash is stored.`,
          ),
          h('code', { id: 'new-token' }, issued.token),
          copy,
        ),
      );
      channelInput.value = '';
      labelInput.value = '';
      adminInput.checked = false;
      status(note, '', '');
      refresh();
    } catch (error) {
      failed(note, error);
    }
  });

  async function revoke(token, button) {
    button.disabled = true;
    try {
      await api(`tokens/${encodeURIComponent(token.id)}/revoke`, { method: 'POST', body: {} });
      status(
        note,
        'success',
        `Revoked ${token.id} (${token.channel}): it stops working within a few seconds.`,
      );
      refresh();
    } catch (error) {
      failed(note, error);
      button.disabled = false;
    }
  }

  async function revokeGrant(grant, button) {
    button.disabled = true;
    try {
      await api(`grants/${encodeURIComponent(grant.id)}/revoke`, { method: 'POST', body: {} });
      status(
        grantNote,
        'success',
        `Revoked ${clientLabel(grant.client_name, grant.client_id)} (${grant.id}, ${grant.channel}): its refresh token is refused now, its access token within a few seconds.`,
      );
      refresh();
    } catch (error) {
      failed(grantNote, error);
      button.disabled = false;
    }
  }

  hostForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const deny = event.submitter?.value === 'deny';
    try {
      const saved = await api('oauth-hosts', {
        method: 'POST',
        body: { host: hostInput.value, channel: deny ? null : hostChannelInput.value.trim() },
      });
      status(
        hostNote,
        'success',
        saved.channel === null
          ? `Clients returning to ${saved.host} may no longer sign in (existing grants stay until revoked).`
          : `Clients returning to ${saved.host} may sign in as channel "${saved.channel}".`,
      );
      hostInput.value = '';
      hostChannelInput.value = '';
      refresh();
    } catch (error) {
      failed(hostNote, error);
    }
  });

  function grantRow(g) {
    const client = clientLabel(g.client_name, g.client_id);
    return h(
      'tr',
      { 'data-grant': g.id },
      h(
        'td',
        { 'data-label': 'Client', class: 'wide' },
        h('span', { class: 'client' }, client),
        h(
          'div',
          { class: 'hint' },
          g.client_kind === 'cimd' ? 'metadata document ' : g.client_kind === 'dcr' ? 'registered ' : '',
          h('code', {}, g.client_id),
        ),
        h('div', { class: 'hint' }, h('code', {}, g.id)),
      ),
      h('td', { 'data-label': 'Signed in via' }, g.redirect_host),
      h('td', { 'data-label': 'Channel' }, g.channel),
      h(
        'td',
        { 'data-label': 'Scopes' },
        g.scope.split(' ').map((sc) => h('span', { class: `tag ${sc === 'stock:admin' ? 'warn' : ''}` }, sc)),
      ),
      h('td', { 'data-label': 'Created' }, stamp(g.created_at)),
      h('td', { 'data-label': 'Last used' }, stamp(g.last_used_at)),
      h(
        'td',
        { 'data-label': 'Expires' },
        g.revoked_at ? '—' : g.expires_at ? stamp(g.expires_at) : 'expired',
      ),
      h(
        'td',
        { 'data-label': 'Status' },
        g.revoked_at
          ? [h('span', { class: 'tag bad' }, 'revoked'), h('div', { class: 'hint' }, g.revoke_reason ?? '')]
          : confirmButton(
              'Revoke',
              `Revoke grant ${g.id} (${client}, ${g.channel})`,
              'Sign this client out?',
              (yes) => revokeGrant(g, yes),
            ),
      ),
    );
  }

  async function refresh() {
    const data = await api('channels');
    const days = data.today - data.from_day + 1;
    grantBody.replaceChildren(...data.grants.map(grantRow));
    grantsEmpty.textContent =
      data.grants.length === 0
        ? 'No OAuth grants yet: nobody has signed in from ChatGPT, Claude or another OAuth client.'
        : '';
    hostBody.replaceChildren(
      ...data.hosts.map((m) =>
        h(
          'tr',
          { 'data-host': m.host },
          h('td', { 'data-label': 'Host' }, m.host),
          h(
            'td',
            { 'data-label': 'Channel' },
            m.channel ? m.channel : h('span', { class: 'tag bad' }, 'denied'),
          ),
          h(
            'td',
            { 'data-label': 'Source' },
            m.source === 'preset' ? 'preset' : m.source === 'store' ? 'your rule' : '',
          ),
        ),
      ),
    );
    const names = new Set([
      ...data.held.map((x) => x.channel),
      ...data.sales.map((x) => x.channel),
      ...data.tokens.filter((t) => !t.revoked_at).map((t) => t.channel),
      ...data.grants.filter((g) => !g.revoked_at).map((g) => g.channel),
    ]);
    const list = [...names].sort();
    cards.replaceChildren(
      ...list.map((name) => {
        const held = data.held.find((x) => x.channel === name)?.units ?? 0;
        const perDay = Array.from({ length: days }, () => ({ orders: 0 }));
        const todayRevenue = {};
        const weekRevenue = {};
        let todayOrders = 0;
        let weekOrders = 0;
        for (const row of data.sales.filter((x) => x.channel === name)) {
          perDay[row.day - data.from_day].orders += row.orders;
          weekOrders += row.orders;
          weekRevenue[row.currency] = (weekRevenue[row.currency] ?? 0) + row.revenue_minor;
          if (row.day === data.today) {
            todayOrders += row.orders;
            todayRevenue[row.currency] = (todayRevenue[row.currency] ?? 0) + row.revenue_minor;
          }
        }
        return h(
          'section',
          { class: 'card', 'aria-labelledby': `ch-${name}`, 'data-channel': name },
          h('h2', { id: `ch-${name}` }, name),
          h(
            'dl',
            { class: 'stats' },
            h('dt', {}, 'Held now'),
            h('dd', { 'data-stat': 'held' }, `${held} unit${held === 1 ? '' : 's'}`),
            h('dt', {}, 'Today'),
            h(
              'dd',
              { 'data-stat': 'today' },
              `${todayOrders} order${todayOrders === 1 ? '' : 's'}, ${moneyList(todayRevenue)}`,
            ),
            h('dt', {}, `Last ${days} days`),
            h(
              'dd',
              { 'data-stat': 'week' },
              `${weekOrders} order${weekOrders === 1 ? '' : 's'}, ${moneyList(weekRevenue)}`,
            ),
          ),
          chart(perDay, data.from_day, data.today),
        );
      }),
    );
    if (list.length === 0)
      cards.replaceChildren(h('p', { class: 'hint' }, 'No channel has a token, a hold or an order yet.'));
    tokenBody.replaceChildren(
      ...data.tokens.map((t) => {
        const button = confirmButton(
          'Revoke',
          `Revoke ${t.id} (${t.channel})`,
          'Stop this token working?',
          (yes) => revoke(t, yes),
        );
        return h(
          'tr',
          { 'data-token': t.id },
          h('td', { 'data-label': 'Id' }, h('code', {}, t.id)),
          h('td', { 'data-label': 'Channel' }, t.channel),
          h('td', { 'data-label': 'Kind' }, t.admin ? h('span', { class: 'tag warn' }, 'admin') : 'customer'),
          h('td', { 'data-label': 'Label' }, t.label ?? ''),
          h('td', { 'data-label': 'Created' }, t.created_at.slice(0, 16).replace('T', ' ')),
          h(
            'td',
            { 'data-label': 'Last used' },
            t.last_used_at ? t.last_used_at.slice(0, 16).replace('T', ' ') : 'never',
          ),
          h(
            'td',
            { 'data-label': 'Status' },
            t.revoked_at ? h('span', { class: 'tag bad' }, 'revoked') : button,
          ),
        );
      }),
    );
  }

  main.replaceChildren(
    h('h1', {}, 'Channels'),
    h(
      'p',
      { class: 'hint' },
      'Per channel: units its live carts hold, orders and revenue today and over the last 7 days (UTC days).',
    ),
    cards,
    h('h2', {}, 'Tokens'),
    h(
      'p',
      { class: 'hint' },
      'A token decides its channel. Customer tokens sell; admin tokens also restock and sign in here.',
    ),
    createForm,
    once,
    note,
    h(
      'table',
      { class: 'stack', id: 'tokens-table' },
      h('caption', { class: 'sr-only' }, 'Tokens'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Id', 'Channel', 'Kind', 'Label', 'Created', 'Last used', 'Status'].map((c) =>
            h('th', { scope: 'col' }, c),
          ),
        ),
      ),
      tokenBody,
    ),
    h('h2', {}, 'OAuth grants'),
    h(
      'p',
      { class: 'hint' },
      'One per sign-in from ChatGPT, Claude or another OAuth client: each is the holder of its own carts. Revoking one refuses its refresh token at once and its access token within a few seconds; the client must sign in again.',
    ),
    grantNote,
    grantsEmpty,
    h(
      'table',
      { class: 'stack', id: 'grants-table' },
      h('caption', { class: 'sr-only' }, 'OAuth grants'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Client', 'Signed in via', 'Channel', 'Scopes', 'Created', 'Last used', 'Expires', 'Status'].map(
            (c) => h('th', { scope: 'col' }, c),
          ),
        ),
      ),
      grantBody,
    ),
    h('h2', {}, 'OAuth hosts'),
    h(
      'p',
      { class: 'hint' },
      'Which hosts OAuth clients may return to, and the channel their sign-ins sell as. The same map as ',
      h('code', {}, 'stocklock oauth allow HOST --channel NAME'),
      ' and ',
      h('code', {}, 'oauth deny HOST'),
      '. Denying refuses new sign-ins; existing grants stay until revoked.',
    ),
    hostForm,
    hostNote,
    h(
      'table',
      { class: 'stack', id: 'hosts-table' },
      h('caption', { class: 'sr-only' }, 'OAuth hosts'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Host', 'Channel', 'Source'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      hostBody,
    ),
  );
  return refresh;
};

pages.ledger = () => {
  const sku = h('input', { id: 'ledger-sku', type: 'text', name: 'sku', autocomplete: 'off', maxlength: 64 });
  const channel = h('input', {
    id: 'ledger-channel',
    type: 'text',
    name: 'channel',
    autocomplete: 'off',
    maxlength: 64,
  });
  const kind = h(
    'select',
    { id: 'ledger-kind', name: 'kind' },
    h('option', { value: '' }, 'any'),
    KINDS.map((k) => h('option', { value: k }, k)),
  );
  const csv = h('a', { href: 'api/ledger.csv', download: '', id: 'ledger-csv' }, 'Download CSV');
  const body = h('tbody');
  const note = statusRegion();
  const more = h('button', { type: 'button', class: 'quiet more' }, 'Show older');
  let shown = new Map();

  const query = (extra = {}) => {
    const params = new URLSearchParams();
    if (sku.value.trim()) params.set('sku', sku.value.trim());
    if (channel.value.trim()) params.set('channel', channel.value.trim());
    if (kind.value) params.set('kind', kind.value);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    return params.toString();
  };

  function render(fresh) {
    const rows = [...shown.values()].sort((a, b) => b.id - a.id);
    body.replaceChildren(
      ...rows.map((m) =>
        h(
          'tr',
          { class: fresh.has(m.id) ? 'flash' : '' },
          h('td', { 'data-label': 'When' }, when(m.at)),
          h('td', { 'data-label': 'SKU' }, h('code', {}, m.sku)),
          h(
            'td',
            { 'data-label': 'Kind' },
            h(
              'span',
              { class: `tag ${m.kind === 'sale' ? 'good' : m.kind === 'expire' ? 'warn' : ''}` },
              m.kind,
            ),
          ),
          h('td', { 'data-label': 'Qty', class: 'num' }, m.quantity),
          h(
            'td',
            { 'data-label': 'On hand Δ', class: 'num' },
            m.on_hand_delta > 0 ? `+${m.on_hand_delta}` : m.on_hand_delta,
          ),
          h(
            'td',
            { 'data-label': 'Reserved Δ', class: 'num' },
            m.reserved_delta > 0 ? `+${m.reserved_delta}` : m.reserved_delta,
          ),
          h('td', { 'data-label': 'Channel' }, m.channel ?? ''),
          h('td', { 'data-label': 'Cart / order', class: 'wide' }, m.order_id ?? m.cart_id ?? ''),
          h('td', { 'data-label': 'Note', class: 'wide' }, m.note ?? ''),
        ),
      ),
    );
  }

  async function refresh() {
    const data = await api(`ledger?${query()}`);
    const fresh = new Set();
    const top = Math.max(0, ...shown.keys());
    for (const m of data.movements) {
      if (shown.size > 0 && m.id > top) fresh.add(m.id);
      shown.set(m.id, m);
    }
    more.hidden = data.movements.length < data.page && shown.size <= data.page;
    render(fresh);
  }

  more.addEventListener('click', async () => {
    try {
      const oldest = Math.min(...shown.keys());
      const data = await api(`ledger?${query({ before: oldest })}`);
      for (const m of data.movements) shown.set(m.id, m);
      more.hidden = data.movements.length < data.page;
      render(new Set());
    } catch (error) {
      failed(note, error);
    }
  });

  const filters = h(
    'form',
    { class: 'row card', id: 'ledger-filters', role: 'search' },
    h('div', {}, h('label', { for: 'ledger-sku' }, 'SKU'), sku),
    h('div', {}, h('label', { for: 'ledger-channel' }, 'Channel'), channel),
    h('div', {}, h('label', { for: 'ledger-kind' }, 'Kind'), kind),
    h('div', {}, h('button', { type: 'submit' }, 'Filter')),
    h('div', {}, csv),
  );
  const apply = (event) => {
    event?.preventDefault();
    shown = new Map();
    csv.href = `api/ledger.csv?${query()}`;
    refresh().catch((error) => failed(note, error));
  };
  filters.addEventListener('submit', apply);
  kind.addEventListener('change', apply);

  main.replaceChildren(
    h('h1', {}, 'Ledger'),
    h(
      'p',
      { class: 'hint' },
      'Every unit that moved, newest first, live. The CSV has every movement that matches the filters.',
    ),
    filters,
    note,
    h(
      'table',
      { class: 'stack', id: 'ledger-table' },
      h('caption', { class: 'sr-only' }, 'Stock movements'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          [
            'When (UTC)',
            'SKU',
            'Kind',
            'Qty',
            'On hand Δ',
            'Reserved Δ',
            'Channel',
            'Cart / order',
            'Note',
          ].map((c) =>
            h('th', { scope: 'col', class: ['Qty', 'On hand Δ', 'Reserved Δ'].includes(c) ? 'num' : '' }, c),
          ),
        ),
      ),
      body,
    ),
    more,
  );
  return refresh;
};

pages.import = () => {
  const file = h('input', {
    id: 'import-file',
    type: 'file',
    name: 'catalog',
    accept: '.csv,.json,text/csv,application/json',
    required: true,
  });
  const progress = h('progress', { max: 100, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const note = statusRegion();
  note.id = 'import-result';
  const button = h('button', { type: 'submit' }, 'Import');
  const form = h(
    'form',
    { class: 'card', id: 'import-form' },
    h('input', { type: 'hidden', name: '_csrf', value: csrf }),
    h('label', { for: 'import-file' }, 'Catalog file (CSV or JSON)'),
    file,
    h(
      'p',
      { class: 'hint' },
      'Fields: sku, name, price (12.50) or price_minor (1250), currency, stock, and optionally track_stock, description, active. All rows or none: if any line fails, nothing changes and every failing line is listed.',
    ),
    h('div', { class: 'row' }, button),
    progress,
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen) return status(note, 'problem', 'Choose a file first.');
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status(note, '', `Uploading ${chosen.name}…`);
    // XMLHttpRequest, not fetch: only it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open('POST', 'api/import');
    xhr.setRequestHeader('X-CSRF-Token', csrf);
    xhr.setRequestHeader('Content-Type', /\.json$/i.test(chosen.name) ? 'application/json' : 'text/csv');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    };
    xhr.upload.onload = () => {
      progress.removeAttribute('value');
      status(note, '', `Uploaded; importing ${chosen.name}…`);
    };
    xhr.onload = () => {
      button.disabled = false;
      progress.hidden = true;
      let data = {};
      try {
        data = JSON.parse(xhr.responseText);
      } catch {}
      if (xhr.status === 401) return location.reload();
      if (xhr.status >= 400) return failed(note, new ApiError(xhr.status, data));
      status(
        note,
        'success',
        `Imported ${data.rows} products from ${chosen.name}: ${data.created} new, ${data.updated} updated.`,
      );
    };
    xhr.onerror = () => {
      button.disabled = false;
      progress.hidden = true;
      status(note, 'problem', 'The upload failed: the server could not be reached.');
    };
    xhr.send(chosen);
  });

  main.replaceChildren(h('h1', {}, 'Import'), form, note);
  return null;
};

pages.audit = () => {
  const result = h('div', { id: 'audit-result' });
  const note = statusRegion();
  const button = h('button', { type: 'button', id: 'run-audit' }, 'Run the audit');
  button.addEventListener('click', async () => {
    button.disabled = true;
    status(note, '', 'Auditing…');
    try {
      const report = await api('audit', { method: 'POST', body: {} });
      status(
        note,
        report.ok ? 'success' : 'problem',
        report.ok
          ? 'The books balance: every invariant holds.'
          : `${report.violations.length} violation${report.violations.length === 1 ? '' : 's'} found.`,
      );
      const c = report.checked;
      result.replaceChildren(
        h(
          'p',
          {},
          `Checked ${c.products} products, ${c.carts} carts, ${c.orders} orders, ${c.movements} movements at ${when(Date.now())} UTC.`,
        ),
        report.violations.length
          ? h(
              'table',
              { class: 'stack' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Invariant', 'Subject', 'Problem'].map((x) => h('th', { scope: 'col' }, x)),
                ),
              ),
              h(
                'tbody',
                {},
                report.violations.map((v) =>
                  h(
                    'tr',
                    {},
                    h('td', { 'data-label': 'Invariant' }, v.invariant),
                    h('td', { 'data-label': 'Subject' }, h('code', {}, v.subject)),
                    h('td', { 'data-label': 'Problem' }, v.message),
                  ),
                ),
              ),
            )
          : '',
      );
    } catch (error) {
      failed(note, error);
    } finally {
      button.disabled = false;
    }
  });
  main.replaceChildren(
    h('h1', {}, 'Audit'),
    h(
      'p',
      { class: 'hint' },
      'Checks every invariant: no SKU oversold, reservations equal open holds, stock equals the sum of its ledger, every checkout has exactly one matching order. Read-only; sales go on while it runs.',
    ),
    h('div', { class: 'row' }, button),
    note,
    result,
  );
  return null;
};

// ---------------------------------------------------------------- routing and the live feed

let current = { name: '', refresh: null };

function show() {
  const name = location.hash.slice(1) in pages ? location.hash.slice(1) : 'stock';
  current.refresh?.stop?.();
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · stocklock console`;
  current = { name, refresh: pages[name]() };
  refreshNow();
  main.focus({ preventScroll: true });
}

// One refresh at a time; a change announced during one runs one more after it.
let running = false;
let again = false;
async function refreshNow() {
  if (!current.refresh) return;
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    await current.refresh();
  } catch (error) {
    console.error(error);
  } finally {
    running = false;
    if (again) {
      again = false;
      refreshNow();
    }
  }
}

function connect() {
  const events = new EventSource('api/events');
  events.addEventListener('ready', () => {
    liveBadge.textContent = 'live';
    liveBadge.className = 'live on';
    refreshNow();
  });
  events.addEventListener('change', refreshNow);
  events.addEventListener('signed-out', () => location.reload());
  events.onerror = () => {
    liveBadge.textContent = 'reconnecting…';
    liveBadge.className = 'live off';
    // The browser retries a dropped stream by itself, but gives up on a refused one (e.g. signed out):
    // asking the API then either reloads to the sign-in page or finds the server back.
    if (events.readyState === EventSource.CLOSED) {
      setTimeout(() => api('holds').then(connect, connect), 2000);
    }
  };
}

window.addEventListener('hashchange', show);
show();
connect();
