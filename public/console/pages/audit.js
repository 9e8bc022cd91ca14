// The Audit page: runs every invariant check on the server and lists what breaks.
import { api, failed, h, status, statusRegion, when } from '../lib.js';

export function auditPage(main) {
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
        report.since
          ? h(
              'p',
              {},
              `Incremental: from the last clean audit's checkpoint (ledger movement ${report.since.movement}, ${when(Date.parse(report.since.at))} UTC), its rows fingerprinted again. `,
              h('code', {}, 'stocklock audit --full'),
              ' checks the whole history from scratch.',
            )
          : '',
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
      'Checks every invariant: no SKU oversold, reservations equal open holds, stock equals the sum of its ledger, every checkout has exactly one matching order. Sales go on while it runs; a clean audit saves a checkpoint the next one starts from.',
    ),
    h('div', { class: 'row' }, button),
    note,
    result,
  );
  return null;
}
