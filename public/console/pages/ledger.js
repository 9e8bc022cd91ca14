// The Ledger page: every movement newest first, filtered, paged back by id, and the same as a CSV download.
import { api, failed, h, KINDS, statusRegion, when } from '../lib.js';

export function ledgerPage(main) {
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
}
