// The Orders page's API: orders newest first, filtered and paged; one order; confirming its payment; cancelling it.
import express from 'express';
import { z } from 'zod';
import { CHANNEL_PATTERN } from '../../config.js';
import { DAY_MS } from '../../storage/console-queries.js';
import { CONSOLE_CHANNEL, invalid, type PageRoutes } from '../context.js';

const ORDERS_PAGE = 50;
/** The console acts on any channel's orders, as the admin tools and the CLI do. */
const CONSOLE_ADMIN = { ...CONSOLE_CHANNEL, admin: true };
/** The reference a payment confirmed in the console gets when the merchant gives none (the CLI's is "cli"). */
const DEFAULT_REFERENCE = 'console';

const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date as YYYY-MM-DD')
  .refine((text) => !Number.isNaN(Date.parse(`${text}T00:00:00Z`)), 'must be a real date');

const listQuery = z
  .strictObject({
    status: z
      .enum(['awaiting_payment', 'paid', 'cancelled'], {
        error: 'status must be one of awaiting_payment, paid, cancelled',
      })
      .optional(),
    channel: z
      .string()
      .regex(CHANNEL_PATTERN, 'channel must be 1-64 of a-z 0-9 . _ - starting with a letter or digit')
      .optional(),
    needs_refund: z.enum(['true'], { error: 'needs_refund must be true when given' }).optional(),
    from: day.optional(),
    to: day.optional(),
    before_at: z.coerce
      .number({ error: 'before_at must be a time in ms' })
      .int('before_at must be a time in ms')
      .nonnegative('before_at must be a time in ms')
      .optional(),
    before_id: z.string().min(1).max(100, 'before_id is at most 100 characters').optional(),
  })
  .refine((q) => (q.before_at === undefined) === (q.before_id === undefined), {
    message: 'before_at and before_id go together (the last order of the previous page)',
  })
  .refine((q) => q.from === undefined || q.to === undefined || q.from <= q.to, {
    message: 'from must not be after to',
  });

// Control characters (NUL, line breaks) would make the reference unstorable or unreadable in the CLI and this page.
const reference = z
  .string()
  .trim()
  .max(200, 'reference is at most 200 characters')
  .regex(/^\P{Cc}*$/u, 'reference must be plain text on one line');

const paidBody = z.strictObject({ reference: reference.optional() });
const cancelBody = z.strictObject({ restock: z.boolean({ error: 'restock must be true or false' }) });

export const ordersRoutes: PageRoutes = (api, { store, queries, logger }) => {
  const json = express.json({ limit: '16kb' });

  api.get('/orders', async (req, res) => {
    // A query string's repeated or nested values are refused by the schema, not picked from.
    const parsed = listQuery.safeParse(req.query);
    if (!parsed.success) return invalid(res, parsed.error);
    const q = parsed.data;
    const [orders, refunds] = await Promise.all([
      queries.orders({
        status: q.status,
        channel: q.channel,
        needsRefund: q.needs_refund === 'true',
        from: q.from === undefined ? undefined : Date.parse(`${q.from}T00:00:00Z`),
        // The last day is included: up to the start of the next.
        to: q.to === undefined ? undefined : Date.parse(`${q.to}T00:00:00Z`) + DAY_MS,
        after:
          q.before_at === undefined || q.before_id === undefined
            ? undefined
            : { createdAt: q.before_at, id: q.before_id },
        limit: ORDERS_PAGE,
      }),
      // Whatever the filters, the page says when some payment waits for a refund (a partial index answers).
      queries.orders({ needsRefund: true, limit: 1 }),
    ]);
    res.json({ now: await queries.now(), orders, page: ORDERS_PAGE, refunds_due: refunds.length > 0 });
  });

  api.get('/orders/:id', async (req, res) => {
    res.json(await store.getOrder(CONSOLE_ADMIN, String(req.params.id)));
  });

  // The same store call as the confirm_payment tool, `stocklock order paid` and the payment webhooks.
  api.post('/orders/:id/paid', json, async (req, res) => {
    const parsed = paidBody.safeParse(req.body ?? {});
    if (!parsed.success) return invalid(res, parsed.error);
    const orderId = String(req.params.id);
    const order = await store.confirmPayment(CONSOLE_ADMIN, {
      orderId,
      reference: parsed.data.reference || DEFAULT_REFERENCE,
    });
    logger.info(
      { order: orderId, status: order.status, needsRefund: order.needs_refund },
      'console confirmed a payment',
    );
    res.json(order);
  });

  // The same store call as the cancel_order tool and `stocklock order cancel [--restock]`.
  api.post('/orders/:id/cancel', json, async (req, res) => {
    const parsed = cancelBody.safeParse(req.body ?? {});
    if (!parsed.success) return invalid(res, parsed.error);
    const orderId = String(req.params.id);
    const order = await store.cancelOrder(CONSOLE_ADMIN, { orderId, restock: parsed.data.restock });
    logger.info({ order: orderId, restock: parsed.data.restock }, 'console cancelled an order');
    res.json(order);
  });
};
