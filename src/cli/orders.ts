// `stocklock channel set|list` (each channel's checkout mode) and `stocklock orders`, `order show|paid|cancel`.
import type { Command } from 'commander';
import { addDbOption, addWriteOptions, assertChannel, type StoreFlags } from '../config.js';
import { CheckoutMode, type OrderStatus, type OrderView } from '../domain/types.js';
import { describeDatabase } from '../storage/open.js';
import { printJson } from './output.js';
import { CLI_CHANNEL, noteDatabase, UsageError, withStore } from './shared.js';

/** The CLI acts on any channel's orders, as the admin tools do. */
const CLI_ADMIN = { ...CLI_CHANNEL, admin: true };

const STATUSES: OrderStatus[] = ['awaiting_payment', 'paid', 'cancelled'];

function table(rows: string[][]): void {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  for (const row of rows) {
    process.stdout.write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
  }
}

/** What the merchant must know at a glance: the status, and a refund owed standing out. */
function statusText(order: OrderView): string {
  const status =
    order.status === 'cancelled' && order.cancel_reason
      ? `cancelled (${order.cancel_reason})`
      : order.status.replace('_', ' ');
  return order.needs_refund ? `${status} NEEDS REFUND` : status;
}

function whenText(order: OrderView): string {
  if (order.status === 'awaiting_payment') return `pay by ${order.pay_by}`;
  if (order.status === 'paid') return `paid ${order.paid_at ?? order.created_at}`;
  return `cancelled ${order.cancelled_at ?? ''}`;
}

function printOrders(orders: OrderView[]): void {
  table([
    ['ORDER', 'CHANNEL', 'STATUS', 'TOTAL', 'CREATED', 'WHEN'],
    ...orders.map((o) => [o.order_id, o.channel, statusText(o), o.total_display, o.created_at, whenText(o)]),
  ]);
}

function printOrder(order: OrderView): void {
  const lines = [
    `Order ${order.order_id} (channel ${order.channel}, cart ${order.cart_id})`,
    `Status:   ${statusText(order)}`,
    `Total:    ${order.total_display}`,
    `Created:  ${order.created_at}`,
  ];
  if (order.pay_by) lines.push(`Pay by:   ${order.pay_by}`);
  if (order.paid_at) lines.push(`Paid:     ${order.paid_at}`);
  if (order.cancelled_at)
    lines.push(`Cancelled: ${order.cancelled_at} (${order.cancel_reason ?? 'cancelled'})`);
  if (order.payment_url) lines.push(`Pay at:   ${order.payment_url}`);
  if (order.payment_instructions) lines.push(`To pay:   ${order.payment_instructions}`);
  if (order.payment_reference) lines.push(`Payment:  ${order.payment_reference}`);
  if (order.needs_refund) {
    lines.push(
      'A payment arrived after the items were gone: refund it at the payment provider (nothing was sold).',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  table([
    ['  SKU', 'NAME', 'QTY', 'UNIT', 'LINE'],
    ...order.lines.map((l) => [
      `  ${l.sku}`,
      l.name,
      String(l.quantity),
      String(l.unit_price_minor),
      String(l.line_total_minor),
    ]),
  ]);
}

function checkoutMode(text: string): CheckoutMode {
  if (text === CheckoutMode.DIRECT || text === CheckoutMode.PAYMENT) return text;
  throw new UsageError(`--checkout must be payment or direct, got "${text}"`, 'stocklock channel set');
}

export function addChannelCommands(program: Command): void {
  const channel = program
    .command('channel')
    .description(
      "each sales channel's checkout: direct (checkout is the sale) or payment (orders await payment)",
    );
  addWriteOptions(
    channel
      .command('set')
      .argument('<name>', 'the channel, e.g. claude or web')
      .requiredOption(
        '--checkout <mode>',
        'payment: orders await their payment; direct: checkout is the sale',
      )
      .description("set a channel's checkout mode"),
  ).action(async (name: string, flags: StoreFlags & { checkout: string }) => {
    const mode = checkoutMode(flags.checkout);
    const setting = await withStore(flags, (store) => store.setCheckoutMode(assertChannel(name), mode));
    const meaning =
      setting.checkout === 'payment'
        ? 'checkout makes an order that holds its items until it is paid or its payment window passes'
        : 'checkout is the sale (the caller has taken the payment)';
    process.stdout.write(
      `Channel "${setting.channel}" checks out in ${setting.checkout} mode: ${meaning}.\n`,
    );
  });
  addDbOption(
    channel
      .command('list')
      .option('--json', 'print JSON')
      .description('every known channel and its checkout mode'),
  ).action(async (flags: StoreFlags & { json?: boolean }) => {
    const settings = await withStore(flags, (store) => store.channelSettings(), { writes: false });
    if (flags.json) {
      noteDatabase(flags.db);
      printJson(settings);
      return;
    }
    process.stdout.write(`Channels in ${describeDatabase(flags.db)}:\n`);
    table([
      ['CHANNEL', 'CHECKOUT', ''],
      ...settings.map((s) => [
        s.channel,
        s.checkout,
        s.explicit ? '' : s.checkout === 'payment' ? '(default: an OAuth host signs in as it)' : '(default)',
      ]),
    ]);
  });
}

export function addOrderCommands(program: Command): void {
  addDbOption(
    program
      .command('orders')
      .option('--status <status>', `only orders in this status (${STATUSES.join(', ')})`)
      .option('--channel <name>', 'only orders of this channel')
      .option('--limit <n>', 'at most this many, newest first', '100')
      .option('--json', 'print JSON')
      .description('list orders, newest first; a payment that needs a refund stands out'),
  ).action(
    async (flags: StoreFlags & { status?: string; channel?: string; limit: string; json?: boolean }) => {
      const status = flags.status as OrderStatus | undefined;
      if (status !== undefined && !STATUSES.includes(status)) {
        throw new UsageError(
          `--status must be one of ${STATUSES.join(', ')}, got "${flags.status}"`,
          'stocklock orders',
        );
      }
      const limit = Number(flags.limit);
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
        throw new UsageError(
          `--limit must be a whole number from 1 to 10000, got "${flags.limit}"`,
          'stocklock orders',
        );
      }
      const orders = await withStore(
        flags,
        (store) => store.listOrders({ status, channel: flags.channel, limit }),
        {
          writes: false,
        },
      );
      if (flags.json) {
        noteDatabase(flags.db);
        printJson(orders);
      } else if (orders.length === 0) {
        process.stdout.write(
          `No orders${status ? ` ${status.replace('_', ' ')}` : ''} in ${describeDatabase(flags.db)}.\n`,
        );
      } else {
        process.stdout.write(`Orders in ${describeDatabase(flags.db)}:\n`);
        printOrders(orders);
      }
    },
  );

  const order = program.command('order').description('one order: show it, confirm its payment, or cancel it');
  const show = (o: OrderView, json: boolean | undefined) => (json ? printJson(o) : printOrder(o));
  addDbOption(
    order.command('show').argument('<order>', 'the order id, e.g. ord_…').option('--json', 'print JSON'),
  )
    .description('show an order, its lines and its payment')
    .action(async (id: string, flags: StoreFlags & { json?: boolean }) => {
      show(await withStore(flags, (store) => store.getOrder(CLI_ADMIN, id), { writes: false }), flags.json);
    });
  addWriteOptions(
    order
      .command('paid')
      .argument('<order>', 'the order id')
      .option('--reference <text>', "the payment's reference (bank transfer, receipt)", 'cli')
      .option('--json', 'print JSON'),
  )
    .description('record that an order was paid: its held items are sold (a repeat changes nothing)')
    .action(async (id: string, flags: StoreFlags & { reference: string; json?: boolean }) => {
      const paid = await withStore(flags, (store) =>
        store.confirmPayment(CLI_ADMIN, { orderId: id, reference: flags.reference }),
      );
      if (!flags.json) {
        process.stdout.write(
          paid.status === 'paid'
            ? `Order ${paid.order_id} is paid.\n`
            : `Order ${paid.order_id} could not be sold: its items are gone. Refund the payment.\n`,
        );
      }
      show(paid, flags.json);
    });
  addWriteOptions(
    order
      .command('cancel')
      .argument('<order>', 'the order id')
      .option('--restock', 'a paid order: put its units back on hand (without, they stay written off)')
      .option('--json', 'print JSON'),
  )
    .description('cancel an order: an unpaid one frees its items; a paid one is returned with --restock')
    .action(async (id: string, flags: StoreFlags & { restock?: boolean; json?: boolean }) => {
      const cancelled = await withStore(flags, (store) =>
        store.cancelOrder(CLI_ADMIN, { orderId: id, restock: Boolean(flags.restock) }),
      );
      if (!flags.json) process.stdout.write(`Order ${cancelled.order_id} is cancelled.\n`);
      show(cancelled, flags.json);
    });
}
