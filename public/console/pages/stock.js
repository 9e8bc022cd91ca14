// The Stock page: every product's levels, live, with restock and set-stock forms that survive live updates.
import { api, csrf, failed, h, money, status, statusRegion } from '../lib.js';

export function stockPage(main) {
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
}
