// Scenario 9: the flash sale in payment mode. The same burst as scenario 8 on channels whose checkout awaits payment
// (`--payment link`): winners get an order awaiting payment and pay through the signed link webhook, most at once;
// the rest never pay, and at pay_by (the store's clock moved there, no waiting) their units go back on sale and sell
// to new buyers who pay. Exactly the stock must end up sold and paid, and losers must hear OUT_OF_STOCK as fast as
// in direct mode, which the same run measures on the same setup.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { ManualClock } from '../src/domain/clock.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import type { RunningServer } from './clients.js';
import { channelTokens, startStocklockHttp } from './clients.js';
import { buyerAgent, latencyRow, openSessions, rpcResult, timed } from './flash-sale.js';
import {
  benchStoreOptions,
  fmt,
  percentile,
  type RunSettings,
  type Section,
  type Sync,
  section,
} from './lib.js';
import { prepareDatabase } from './store.js';

const SKU = 'FLASH-PAY';
const SYNC: Sync = 'FULL';
const WINDOW_MS = 30 * 60_000;
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const TEMPLATE =
  'https://shop.example/pay?order={order_id}&total={total_minor}&currency={currency}&sig={signature}';
/** One winner in ten walks away without paying. */
const UNPAID_EVERY = 10;
const LOSER_GOAL_MS = 1_000;

type Mode = 'direct' | 'payment';

interface Sale {
  losers: number[];
  checkouts: number[];
  webhooks: number[];
  /** Orders whose buyers did not pay. */
  unpaid: string[];
  paid: number;
}

interface Order {
  order_id: string;
  status?: string;
  total_minor?: number;
  currency?: string;
}

async function prepare(db: string, units: number, mode: Mode): Promise<string[]> {
  await prepareDatabase(db, SYNC, [
    { sku: SKU, name: 'Flash-sale sneakers', price_minor: 12_900, currency: 'EUR', stock: units },
  ]);
  return channelTokens(db, SYNC, mode);
}

async function startServer(db: string, buyers: number, mode: Mode): Promise<RunningServer> {
  const payment =
    mode === 'payment' ? ['--payment', 'link', '--payment-url', TEMPLATE, '--payment-secret', SECRET] : [];
  // Six tokens carry every buyer's session, so one credential holds a sixth of them at once.
  const sessions = String(buyers + 10);
  return startStocklockHttp(db, SYNC, [
    '--max-sessions',
    sessions,
    '--max-sessions-per-credential',
    sessions,
    ...payment,
  ]);
}

/** Pays an order as the merchant's pay page would: a Standard Webhooks message signed with the secret. */
async function pay(base: string, order: Order, agent: http.Agent): Promise<number> {
  const body = JSON.stringify({
    type: 'payment.succeeded',
    data: {
      order_id: order.order_id,
      reference: `pay_${order.order_id}`,
      total_minor: order.total_minor,
      currency: order.currency,
    },
  });
  const id = `msg_${randomBytes(8).toString('hex')}`;
  const now = new Date();
  const headers = {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    'webhook-signature': new Webhook(SECRET).sign(id, now, body),
  };
  const { ms, value } = await timed(
    () =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = http.request(
          `${base}/payments/webhook`,
          { method: 'POST', headers, agent },
          (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => {
              text += chunk.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        request.on('error', reject);
        request.end(body);
      }),
  );
  if (value.status !== 200 || !value.body.includes('"paid"'))
    throw new Error(`payment webhook for ${order.order_id}: ${value.status} ${value.body.slice(0, 200)}`);
  return ms;
}

/** `buyers` race for what is left; winners check out and, in payment mode, all but one in UNPAID_EVERY pay. */
async function sell(
  db: string,
  buyers: number,
  mode: Mode,
  tokens: string[],
  everyonePays: boolean,
): Promise<Sale> {
  const agent = buyerAgent(buyers);
  const sale: Sale = { losers: [], checkouts: [], webhooks: [], unpaid: [], paid: 0 };
  const unexpected: string[] = [];
  let server: RunningServer | undefined;
  try {
    server = await startServer(db, buyers, mode);
    const base = new URL(server.url).origin;
    const sessions = await openSessions(server.url, buyers, agent, tokens);
    let winners = 0;
    await Promise.all(
      sessions.map(async (session) => {
        const add = await timed(() => session.send('add_to_cart', { sku: SKU, quantity: 1 }));
        const added = add.value.status === 200 ? rpcResult(add.value.body) : undefined;
        const cartId = added?.structuredContent?.cart_id;
        if (added?.isError && added.content?.[0]?.text?.startsWith('OUT_OF_STOCK')) {
          sale.losers.push(add.ms);
          return;
        }
        if (!cartId || added?.isError) {
          unexpected.push(`add_to_cart: ${add.value.body.slice(0, 200)}`);
          return;
        }
        const checkout = await timed(() => session.send('checkout', { cart_id: cartId }));
        const order = rpcResult(checkout.value.body).structuredContent as Order | undefined;
        const expected = mode === 'payment' ? 'awaiting_payment' : 'paid';
        if (!order?.order_id || order.status !== expected) {
          unexpected.push(`checkout: ${checkout.value.body.slice(0, 200)}`);
          return;
        }
        sale.checkouts.push(checkout.ms);
        winners += 1;
        if (mode === 'direct') return;
        if (!everyonePays && winners % UNPAID_EVERY === 0) {
          sale.unpaid.push(order.order_id);
          return;
        }
        sale.webhooks.push(await pay(base, order, agent));
        sale.paid += 1;
      }),
    );
    await Promise.all(sessions.map((session) => session.close()));
  } finally {
    await server?.stop();
    agent.destroy();
  }
  if (unexpected.length > 0)
    throw new Error(`${unexpected.length} unexpected answers, e.g. ${unexpected[0]}`);
  return sale;
}

/** At pay_by: the store's clock is moved past it and the sweeper runs, as the server's sweeper would then. */
async function passPayBy(db: string): Promise<{ orders: number; available: number }> {
  const clock = new ManualClock(Date.now() + WINDOW_MS + 1_000);
  const store = openSqliteStore(db, { ...benchStoreOptions(SYNC), clock });
  try {
    await store.sweepOverdueOrders();
    const [level] = await store.stockLevels([SKU]);
    const timedOut = (await store.listOrders({ status: 'cancelled' })).filter(
      (order) => order.cancel_reason === 'payment_timeout',
    );
    return { orders: timedOut.length, available: level?.available ?? -1 };
  } finally {
    await store.close();
  }
}

async function books(db: string, units: number): Promise<string[]> {
  const store = openSqliteStore(db, benchStoreOptions(SYNC));
  try {
    const [audit, levels, paid] = await Promise.all([
      store.audit(),
      store.stockLevels([SKU]),
      store.listOrders({ status: 'paid', limit: units * 2 }),
    ]);
    const level = levels[0];
    return [
      ...(paid.length !== units ? [`${paid.length} orders paid for ${units} units`] : []),
      ...(level?.on_hand !== 0 || level.reserved !== 0
        ? [`stock left: on hand ${level?.on_hand}, reserved ${level?.reserved}`]
        : []),
      ...(audit.ok ? [] : [`audit failed: ${JSON.stringify(audit.violations).slice(0, 300)}`]),
    ];
  } finally {
    await store.close();
  }
}

export async function paymentFlashSaleScenario(settings: RunSettings): Promise<Section[]> {
  const size = settings.quick
    ? { buyers: 100, units: 10, rounds: 1 }
    : { buyers: 1_000, units: 100, rounds: Math.min(settings.repeats, 3) };
  const out = section(
    '9. Flash sale in payment mode',
    `Scenario 8's burst (${fmt.rate(size.buyers)} buyers on six channel tokens, ${size.units} units, \`dist/cli.js ` +
      `serve --http\`, synchronous ${SYNC}) with every channel in \`payment\` mode and \`--payment link\`: a ` +
      "winner's `checkout` is an order awaiting payment, and the buyer pays at once through the signed link " +
      `webhook (\`POST /payments/webhook\`, Standard Webhooks), except one winner in ${UNPAID_EVERY}, who never ` +
      "pays. Then the store's clock is moved past `pay_by` (no waiting) and the sweeper puts those units back on " +
      'sale; as many new buyers take them and pay. A round fails the run unless exactly the stock ends up sold ' +
      'and paid, stock left is zero, and the audit passes. The same burst in `direct` mode runs in the same ' +
      `round on the same setup, for the losers' comparison. ${size.rounds} round${size.rounds > 1 ? 's' : ''}; ` +
      'latency per call in ms, pooled.',
    ['calls', 'count', 'p50 ms', 'p99 ms', 'max ms'],
  );
  const direct: Sale[] = [];
  const payment: Sale[] = [];
  const second: Sale[] = [];
  for (let r = 0; r < size.rounds; r++) {
    const directDb = join(settings.dir, `pay-flash-direct-${r}.db`);
    direct.push(
      await sell(directDb, size.buyers, 'direct', await prepare(directDb, size.units, 'direct'), true),
    );
    const db = join(settings.dir, `pay-flash-payment-${r}.db`);
    const tokens = await prepare(db, size.units, 'payment');
    const sale = await sell(db, size.buyers, 'payment', tokens, false);
    const expectedUnpaid = Math.floor(size.units / UNPAID_EVERY);
    if (sale.unpaid.length !== expectedUnpaid || sale.paid !== size.units - expectedUnpaid)
      throw new Error(
        `round ${r + 1}: ${sale.paid} paid and ${sale.unpaid.length} unpaid of ${size.units} winners`,
      );
    payment.push(sale);
    const released = await passPayBy(db);
    if (released.orders !== sale.unpaid.length || released.available !== sale.unpaid.length)
      throw new Error(
        `round ${r + 1}: at pay_by ${released.orders} orders timed out and ${released.available} units are on sale, for ${sale.unpaid.length} unpaid`,
      );
    const late = await sell(db, sale.unpaid.length * 3, 'payment', tokens, true);
    if (late.paid !== sale.unpaid.length)
      throw new Error(`round ${r + 1}: ${late.paid} of the released units sold and paid`);
    second.push(late);
    const failures = await books(db, size.units);
    if (failures.length > 0) throw new Error(`payment flash sale round ${r + 1}: ${failures.join('; ')}`);
  }
  const pooled = (sales: Sale[], pick: (sale: Sale) => number[]) => sales.flatMap(pick);
  out.rows.push(
    latencyRow(
      'direct mode: losers told `OUT_OF_STOCK`',
      pooled(direct, (s) => s.losers),
    ),
    latencyRow(
      'payment mode: losers told `OUT_OF_STOCK`',
      pooled(payment, (s) => s.losers),
    ),
    latencyRow(
      'direct mode: winners’ `checkout` (the sale)',
      pooled(direct, (s) => s.checkouts),
    ),
    latencyRow(
      'payment mode: winners’ `checkout` (order awaiting payment, pay link)',
      pooled(payment, (s) => s.checkouts),
    ),
    latencyRow(
      'payment mode: signed payment webhook (the sale)',
      pooled(payment, (s) => s.webhooks),
    ),
  );
  const losers = pooled(payment, (s) => s.losers).sort((a, b) => a - b);
  const directLosers = pooled(direct, (s) => s.losers).sort((a, b) => a - b);
  const slowest = losers[losers.length - 1] ?? Number.NaN;
  out.notes.push(
    `Every round: ${size.units - Math.floor(size.units / UNPAID_EVERY)} winners paid at once, ` +
      `${Math.floor(size.units / UNPAID_EVERY)} never paid; at pay_by their orders were cancelled (` +
      '`payment_timeout`) and their units were back on sale, then sold to new buyers who paid: exactly ' +
      `${size.units} of ${size.units} sold and paid, stock left 0, audit clean.`,
    `Losers in payment mode: p99 ${fmt.ms(percentile(losers, 99))} ms against ${fmt.ms(percentile(directLosers, 99))} ms ` +
      'in direct mode on the same setup and round; a loser never reaches checkout, so the mode cannot slow it ' +
      "beyond the winners' extra work (their webhook calls) competing for the same event loop.",
  );
  out.goals.push({
    name: `Payment-mode flash sale: every loser told \`OUT_OF_STOCK\` (${fmt.rate(size.buyers)} buyers, ${size.units} units)`,
    target: `≤ ${fmt.rate(LOSER_GOAL_MS)} ms`,
    measured: `max ${fmt.ms(slowest)} ms (direct mode max ${fmt.ms(directLosers[directLosers.length - 1] ?? Number.NaN)} ms)`,
    met: slowest <= LOSER_GOAL_MS,
  });
  return [out];
}
