// The link provider: the merchant's own pay page, its URL filled from a template and signed so the page can trust it.
import { createHmac } from 'node:crypto';
import type { PayableOrder, PaymentProvider } from './provider.js';

const PLACEHOLDERS = ['order_id', 'total_minor', 'currency', 'signature'] as const;
type Placeholder = (typeof PLACEHOLDERS)[number];

/**
 * The string a link's signature covers: `order_id.total_minor.currency`, e.g. `ord_7Hq2.2400.EUR`. Unambiguous
 * although an order id could hold a dot: the last two fields are digits and three letters.
 */
export function linkSignedString(orderId: string, totalMinor: number, currency: string): string {
  return `${orderId}.${totalMinor}.${currency}`;
}

/** HMAC-SHA256 of linkSignedString() under the payment secret's key bytes, lowercase hex. */
export function linkSignature(
  key: Uint8Array,
  orderId: string,
  totalMinor: number,
  currency: string,
): string {
  return createHmac('sha256', key)
    .update(linkSignedString(orderId, totalMinor, currency))
    .digest('hex');
}

/** Refuses a template that is not an http(s) URL, lacks {order_id} or names an unknown placeholder. */
export function assertLinkTemplate(template: string): void {
  const named = [...template.matchAll(/\{([^{}]*)\}/g)].map((match) => match[1] as string);
  const unknown = named.filter((name) => !(PLACEHOLDERS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `--payment-url has unknown placeholder {${unknown[0]}}; it may use ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`,
    );
  }
  if (!named.includes('order_id')) throw new Error('--payment-url must contain {order_id}');
  let url: URL;
  try {
    url = new URL(fill(template, { order_id: 'o', total_minor: '1', currency: 'EUR', signature: 's' }));
  } catch {
    throw new Error(`--payment-url must be an absolute http(s) URL, got "${template}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`--payment-url must be an http(s) URL, got "${template}"`);
  }
}

function fill(template: string, values: Record<Placeholder, string>): string {
  return template.replace(/\{(order_id|total_minor|currency|signature)\}/g, (_, name: Placeholder) =>
    encodeURIComponent(values[name]),
  );
}

/** The pay page's URL for an order: the same order always gives the same URL. */
export function linkUrl(template: string, key: Uint8Array, order: PayableOrder): string {
  return fill(template, {
    order_id: order.order_id,
    total_minor: String(order.total_minor),
    currency: order.currency,
    signature: linkSignature(key, order.order_id, order.total_minor, order.currency),
  });
}

export function createLinkProvider(options: { template: string; key: Uint8Array }): PaymentProvider {
  assertLinkTemplate(options.template);
  return {
    kind: 'link',
    start: async (order) => ({ payment_url: linkUrl(options.template, options.key, order) }),
  };
}
