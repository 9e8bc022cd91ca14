// The Channels page: per channel, its checkout mode, units held now and paid orders and revenue per day; then who may sell as what.
import { api, DAY_MS, h, moneyList, s } from '../lib.js';
import { grantsSection, hostsSection, tokensSection } from './channels-access.js';

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

/** One card per channel that holds, sells or has a live token or grant, sorted by name. */
function renderCards(cards, data) {
  const days = data.today - data.from_day + 1;
  const names = new Set([
    ...data.held.map((x) => x.channel),
    ...data.sales.map((x) => x.channel),
    ...data.tokens.filter((t) => !t.revoked_at).map((t) => t.channel),
    ...data.grants.filter((g) => !g.revoked_at).map((g) => g.channel),
    ...data.checkout.map((c) => c.channel),
  ]);
  const list = [...names].sort();
  cards.replaceChildren(
    ...list.map((name) => {
      const held = data.held.find((x) => x.channel === name)?.units ?? 0;
      const mode = data.checkout.find((c) => c.channel === name)?.checkout ?? 'direct';
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
          h('dt', {}, 'Checkout'),
          h(
            'dd',
            { 'data-stat': 'checkout' },
            h('span', { class: `tag ${mode === 'payment' ? 'warn' : ''}` }, mode),
            mode === 'payment' ? ' orders await payment' : ' checkout is the sale',
          ),
          h('dt', {}, 'Held now'),
          h('dd', { 'data-stat': 'held' }, `${held} unit${held === 1 ? '' : 's'}`),
          h('dt', {}, 'Today'),
          h(
            'dd',
            { 'data-stat': 'today' },
            `${todayOrders} paid order${todayOrders === 1 ? '' : 's'}, ${moneyList(todayRevenue)}`,
          ),
          h('dt', {}, `Last ${days} days`),
          h(
            'dd',
            { 'data-stat': 'week' },
            `${weekOrders} paid order${weekOrders === 1 ? '' : 's'}, ${moneyList(weekRevenue)}`,
          ),
        ),
        chart(perDay, data.from_day, data.today),
      );
    }),
  );
  if (list.length === 0)
    cards.replaceChildren(h('p', { class: 'hint' }, 'No channel has a token, a hold or an order yet.'));
}

export function channelsPage(main) {
  const cards = h('div', { class: 'cards', id: 'channel-cards' });
  const tokens = tokensSection(() => refresh());
  const grants = grantsSection(() => refresh());
  const hosts = hostsSection(() => refresh());

  async function refresh() {
    const data = await api('channels');
    grants.render(data.grants);
    hosts.render(data.hosts);
    renderCards(cards, data);
    tokens.render(data.tokens);
  }

  main.replaceChildren(
    h('h1', {}, 'Channels'),
    h(
      'p',
      { class: 'hint' },
      'Per channel: its checkout mode, units its live carts and unpaid orders hold, and sales (paid orders only) and revenue today and over the last 7 UTC days.',
    ),
    cards,
    ...tokens.nodes,
    ...grants.nodes,
    ...hosts.nodes,
  );
  return refresh;
}
