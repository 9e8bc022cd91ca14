// The Orders page: orders newest first, filtered and paged, live; one order's detail, its payment confirmed or
// the order cancelled (with or without its units back in stock); a payment that needs a refund stands out.
import { api, confirmButton, failed, h, money, status, statusRegion, when } from '../lib.js';

const STATUS_TEXT = {
  awaiting_payment: 'awaiting payment',
  paid: 'paid',
  cancelled: 'cancelled',
};

/** The status as the merchant reads it: its tag, the reason of a cancellation, a refund owed above all. */
function statusCell(order, payBy = true) {
  const tags = [];
  if (order.needs_refund) tags.push(h('span', { class: 'tag bad refund-tag' }, 'needs refund'), ' ');
  const kind = order.status === 'paid' ? 'good' : order.status === 'awaiting_payment' ? 'warn' : '';
  tags.push(h('span', { class: `tag ${kind}` }, STATUS_TEXT[order.status] ?? order.status));
  if (order.status === 'cancelled' && order.cancel_reason) {
    tags.push(h('div', { class: 'hint' }, order.cancel_reason.replace('_', ' ')));
  }
  if (payBy && order.status === 'awaiting_payment' && order.pay_by) {
    tags.push(h('div', { class: 'hint' }, `pay by ${when(Date.parse(order.pay_by)).slice(0, 16)}`));
  }
  return tags;
}

const linesText = (order) => order.lines.map((l) => `${l.quantity} × ${l.sku}`).join(', ');

export function ordersPage(main) {
  const statusSelect = h(
    'select',
    { id: 'orders-status', name: 'status' },
    h('option', { value: '' }, 'any'),
    h('option', { value: 'awaiting_payment' }, 'awaiting payment'),
    h('option', { value: 'paid' }, 'paid'),
    h('option', { value: 'cancelled' }, 'cancelled'),
    h('option', { value: 'needs_refund' }, 'needs refund'),
  );
  const channel = h('input', {
    id: 'orders-channel',
    type: 'text',
    name: 'channel',
    autocomplete: 'off',
    maxlength: 64,
  });
  const from = h('input', { id: 'orders-from', type: 'date', name: 'from' });
  const to = h('input', { id: 'orders-to', type: 'date', name: 'to' });
  const note = statusRegion();
  const banner = h('div', { id: 'refund-banner' });
  const body = h('tbody');
  const empty = h('p', { class: 'hint', id: 'orders-count' });
  const more = h('button', { type: 'button', class: 'quiet more' }, 'Show older');
  const detail = h('section', {
    id: 'order-detail',
    class: 'card',
    'aria-labelledby': 'order-detail-title',
    hidden: true,
  });
  let shown = [];
  let known = null;
  let pages = 1;
  let openId = null;

  const query = (before) => {
    const params = new URLSearchParams();
    if (statusSelect.value === 'needs_refund') params.set('needs_refund', 'true');
    else if (statusSelect.value) params.set('status', statusSelect.value);
    if (channel.value.trim()) params.set('channel', channel.value.trim());
    if (from.value) params.set('from', from.value);
    if (to.value) params.set('to', to.value);
    if (before) {
      params.set('before_at', String(Date.parse(before.created_at)));
      params.set('before_id', before.order_id);
    }
    return params.toString();
  };

  function render(fresh) {
    body.replaceChildren(
      ...shown.map((o) =>
        h(
          'tr',
          {
            'data-order': o.order_id,
            class: [o.needs_refund ? 'refund' : '', fresh.has(o.order_id) ? 'flash' : ''].join(' ').trim(),
          },
          h(
            'td',
            { 'data-label': 'Order', class: 'wide' },
            h(
              'button',
              {
                type: 'button',
                class: 'link',
                'aria-label': `Show order ${o.order_id}`,
                onclick: () => open(o.order_id),
              },
              o.order_id,
            ),
            h('div', { class: 'hint' }, when(Date.parse(o.created_at))),
          ),
          h('td', { 'data-label': 'Channel' }, o.channel),
          h('td', { 'data-label': 'Status' }, statusCell(o)),
          h('td', { 'data-label': 'Total', class: 'num' }, money(o.total_minor, o.currency)),
          h('td', { 'data-label': 'Lines', class: 'wide' }, linesText(o)),
        ),
      ),
    );
  }

  function detailRows(order) {
    const rows = [
      ['Channel', order.channel],
      ['Cart', h('code', {}, order.cart_id)],
      ['Created', when(Date.parse(order.created_at))],
      ['Total', money(order.total_minor, order.currency)],
    ];
    if (order.pay_by) rows.push(['Pay by', when(Date.parse(order.pay_by))]);
    if (order.paid_at) rows.push(['Paid', when(Date.parse(order.paid_at))]);
    if (order.cancelled_at) {
      rows.push(['Cancelled', `${when(Date.parse(order.cancelled_at))} (${order.cancel_reason ?? ''})`]);
    }
    if (order.payment_url) rows.push(['Pay at', h('code', {}, order.payment_url)]);
    if (order.payment_instructions) rows.push(['To pay', order.payment_instructions]);
    rows.push(['Payment reference', order.payment_reference ?? '—']);
    return rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]);
  }

  async function act(path, body, done, button) {
    button.disabled = true;
    try {
      const order = await api(`orders/${encodeURIComponent(openId)}/${path}`, { method: 'POST', body });
      status(note, order.needs_refund ? 'problem' : 'success', done(order));
      showDetail(order);
      await refresh();
    } catch (error) {
      failed(note, error);
      button.disabled = false;
    }
  }

  function actions(order) {
    const out = [];
    const closedByMerchant = order.status === 'cancelled' && order.cancel_reason === 'merchant';
    if (order.status !== 'paid' && !order.needs_refund && !closedByMerchant) {
      const reference = h('input', {
        id: 'order-reference',
        type: 'text',
        name: 'reference',
        maxlength: 200,
        autocomplete: 'off',
        placeholder: 'console',
      });
      const form = h(
        'form',
        { class: 'row', id: 'order-confirm' },
        h('div', {}, h('label', { for: 'order-reference' }, 'Payment reference'), reference),
        h('div', {}, h('button', { type: 'submit' }, 'Confirm payment')),
      );
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        act(
          'paid',
          { reference: reference.value.trim() || undefined },
          (o) =>
            o.needs_refund
              ? `Order ${o.order_id}: its items are gone, nothing was sold. Refund the payment at the provider.`
              : `Order ${o.order_id} is paid.`,
          form.querySelector('button'),
        );
      });
      out.push(form);
    }
    const cancel = (restock) => (button) =>
      act(
        'cancel',
        { restock },
        (o) =>
          `Order ${o.order_id} is cancelled${restock ? ': its units are back in stock' : ''}${
            order.status === 'awaiting_payment' ? ': its held items are back on sale' : ''
          }.`,
        button,
      );
    if (order.status === 'awaiting_payment') {
      out.push(
        confirmButton(
          'Cancel order',
          `Cancel order ${order.order_id}`,
          'Its held items go back on sale.',
          cancel(false),
        ),
      );
    } else if (order.status === 'paid') {
      out.push(
        confirmButton(
          'Cancel and restock',
          `Cancel and restock order ${order.order_id}`,
          'Its units come back on hand; refund at the payment provider.',
          cancel(true),
        ),
        ' ',
        confirmButton(
          'Cancel, write off',
          `Cancel, write off order ${order.order_id}`,
          'Its units stay out of stock; refund at the payment provider.',
          cancel(false),
        ),
      );
    }
    return out.length ? h('div', { class: 'order-actions' }, out) : '';
  }

  function showDetail(order) {
    detail.hidden = false;
    detail.replaceChildren(
      h(
        'h2',
        { id: 'order-detail-title' },
        `Order ${order.order_id} `,
        order.needs_refund ? h('span', { class: 'tag bad' }, 'needs refund') : '',
      ),
      order.needs_refund
        ? h(
            'p',
            { class: 'problem' },
            'A payment arrived after the items were gone: nothing was sold. Refund it at the payment provider.',
          )
        : '',
      h('div', { class: 'hint' }, statusCell({ ...order, needs_refund: false }, false)),
      h('dl', { class: 'stats' }, detailRows(order)),
      h(
        'table',
        { id: 'order-lines' },
        h('caption', { class: 'sr-only' }, `Lines of order ${order.order_id}`),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['SKU', 'Name', 'Qty', 'Line total'].map((c) =>
              h('th', { scope: 'col', class: ['Qty', 'Line total'].includes(c) ? 'num' : '' }, c),
            ),
          ),
        ),
        h(
          'tbody',
          {},
          order.lines.map((l) =>
            h(
              'tr',
              {},
              h('td', {}, h('code', {}, l.sku)),
              h('td', {}, l.name),
              h('td', { class: 'num' }, l.quantity),
              h('td', { class: 'num' }, money(l.line_total_minor, order.currency)),
            ),
          ),
        ),
      ),
      actions(order),
      h('button', { type: 'button', class: 'quiet', onclick: close }, 'Close'),
    );
  }

  async function open(id) {
    openId = id;
    try {
      showDetail(await api(`orders/${encodeURIComponent(id)}`));
      detail.querySelector('h2').setAttribute('tabindex', '-1');
      detail.querySelector('h2').focus();
    } catch (error) {
      failed(note, error);
    }
  }

  function close() {
    openId = null;
    detail.hidden = true;
    detail.replaceChildren();
  }

  /** Every page shown so far is asked again: a status may change anywhere in the list. */
  async function refresh() {
    let data;
    const next = [];
    for (let page = 0; page < pages; page++) {
      data = await api(`orders?${query(next.at(-1))}`);
      next.push(...data.orders);
      if (data.orders.length < data.page) break;
    }
    const fresh = new Set(known ? next.filter((o) => !known.has(o.order_id)).map((o) => o.order_id) : []);
    known = new Set([...(known ?? []), ...next.map((o) => o.order_id)]);
    shown = next;
    more.hidden = data.orders.length < data.page;
    banner.replaceChildren(
      data.refunds_due
        ? h(
            'p',
            { class: 'status problem', role: 'note' },
            'Some payments need a refund: they arrived after their items were gone. ',
            h(
              'button',
              { type: 'button', class: 'quiet', onclick: () => showRefunds() },
              'Show orders that need a refund',
            ),
          )
        : '',
    );
    empty.textContent =
      shown.length === 0
        ? 'No orders match.'
        : `${shown.length}${more.hidden ? '' : '+'} order${shown.length === 1 ? '' : 's'}, newest first.`;
    render(fresh);
    if (openId) showDetail(await api(`orders/${encodeURIComponent(openId)}`));
  }

  const apply = (event) => {
    event?.preventDefault();
    pages = 1;
    known = null;
    refresh().catch((error) => failed(note, error));
  };
  function showRefunds() {
    statusSelect.value = 'needs_refund';
    apply();
  }

  more.addEventListener('click', async () => {
    pages += 1;
    refresh().catch((error) => failed(note, error));
  });

  const filters = h(
    'form',
    { class: 'row card', id: 'orders-filters', role: 'search' },
    h('div', {}, h('label', { for: 'orders-status' }, 'Status'), statusSelect),
    h('div', {}, h('label', { for: 'orders-channel' }, 'Channel'), channel),
    h('div', {}, h('label', { for: 'orders-from' }, 'From (UTC)'), from),
    h('div', {}, h('label', { for: 'orders-to' }, 'To (UTC)'), to),
    h('div', {}, h('button', { type: 'submit' }, 'Filter')),
  );
  filters.addEventListener('submit', apply);
  statusSelect.addEventListener('change', apply);

  main.replaceChildren(
    h('h1', {}, 'Orders'),
    h(
      'p',
      { class: 'hint' },
      'Every order, newest first, live. An order awaiting payment holds its items until it is paid or its pay-by time passes; confirm a payment that reached you another way, or cancel an order.',
    ),
    banner,
    filters,
    note,
    detail,
    empty,
    h(
      'table',
      { class: 'stack', id: 'orders-table' },
      h('caption', { class: 'sr-only' }, 'Orders'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Order', 'Channel', 'Status', 'Total', 'Lines'].map((c) =>
            h('th', { scope: 'col', class: c === 'Total' ? 'num' : '' }, c),
          ),
        ),
      ),
      body,
    ),
    more,
  );
  return refresh;
}
