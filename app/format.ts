// What the tools answer (their structuredContent) and how the page says it: money, times, refusals.

export interface Product {
  sku: string;
  name: string;
  description: string | null;
  price_minor: number;
  currency: string;
  price_display: string;
  available: number | null;
  in_stock: boolean;
}

export interface Line {
  sku: string;
  name: string;
  quantity: number;
  unit_price_minor: number;
  line_total_minor: number;
}

export interface Cart {
  cart_id: string;
  status: 'open' | 'checked_out' | 'released' | 'expired';
  lines: Line[];
  total_minor: number;
  currency: string | null;
  total_display: string | null;
  item_count: number;
  order_id: string | null;
  expires_at: string;
}

export interface Order {
  order_id: string;
  cart_id: string;
  status: 'awaiting_payment' | 'paid' | 'cancelled';
  lines: Line[];
  total_minor: number;
  currency: string;
  total_display: string;
  pay_by: string | null;
  payment_url: string | null;
  payment_instructions: string | null;
  paid_at: string | null;
  cancel_reason: string | null;
  needs_refund: boolean;
}

/** A refusal as the server details it in its second text block. */
export interface Refusal {
  code: string;
  message: string;
  sku?: string;
  requested?: number;
  available?: number;
  [key: string]: unknown;
}

/** Which of the tools' answers a structuredContent is. */
export function kindOf(
  content: Record<string, unknown> | undefined,
): { products: Product[] } | { cart: Cart } | { order: Order } | undefined {
  if (!content) return undefined;
  if (Array.isArray(content.products)) return { products: content.products as Product[] };
  if (typeof content.order_id === 'string' && 'pay_by' in content)
    return { order: content as unknown as Order };
  if (typeof content.cart_id === 'string' && 'expires_at' in content)
    return { cart: content as unknown as Cart };
  return undefined;
}

/** Minor units as the shop shows them elsewhere ("12.50 EUR"). */
export function money(minor: number, currency: string | null): string {
  if (!currency) return String(minor);
  let digits = 2;
  try {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
      .maximumFractionDigits as number;
  } catch {
    // An unknown code keeps two decimals.
  }
  return `${(minor / 10 ** digits).toFixed(digits)} ${currency}`;
}

export interface Locale {
  locale?: string | undefined;
  timeZone?: string | undefined;
}

export function clockTime(iso: string, where: Locale): string {
  return new Date(iso).toLocaleTimeString(where.locale, {
    hour: '2-digit',
    minute: '2-digit',
    ...(where.timeZone ? { timeZone: where.timeZone } : {}),
  });
}

/** "14:32" (minutes:seconds) or "1:02:05" left until `iso`; "0:00" once it has passed. */
export function remaining(iso: string, now: number): { text: string; ms: number } {
  const ms = Math.max(0, new Date(iso).getTime() - now);
  const total = Math.ceil(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  const text =
    hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
  return { text, ms };
}

/** The same span as words, for screen readers ("14 minutes 32 seconds"). */
export function remainingWords(ms: number): string {
  const total = Math.ceil(ms / 1000);
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  const parts = [];
  if (minutes > 0) parts.push(`${minutes} minute${minutes === 1 ? '' : 's'}`);
  if (seconds > 0 || minutes === 0) parts.push(`${seconds} second${seconds === 1 ? '' : 's'}`);
  return parts.join(' ');
}

export function availability(product: Product): string {
  if (product.available === null) return 'Available';
  if (product.available <= 0) return 'Sold out';
  if (product.available <= 5) return `${product.available} left`;
  return `${product.available} in stock`;
}

/** What a shopper reads when the server refuses: the refusal put plainly, never a code alone. */
export function refusalSentence(refusal: Refusal, names: Map<string, string>, tool?: string): string {
  const name = refusal.sku ? (names.get(refusal.sku) ?? refusal.sku) : 'that item';
  switch (refusal.code) {
    case 'OUT_OF_STOCK':
      // At checkout it is the hold that ran out and could not be renewed in full.
      if (tool === 'checkout')
        return `Your hold ran out and ${name} is no longer there in the number you had (${refusal.available ?? 0} left). Nothing was ordered; remove it or change your cart, then check out again.`;
      if (!refusal.available)
        return `Sorry, ${name} just sold out, so nothing was added. Your cart is as it was.`;
      return `Only ${refusal.available} of ${name} ${refusal.available === 1 ? 'is' : 'are'} left, and you asked for ${refusal.requested ?? 'more'}. Nothing was added; try a smaller number.`;
    case 'CART_CLOSED':
      return 'This cart is already checked out or emptied. Add an item to start a new one.';
    case 'CART_NOT_FOUND':
      return 'This cart is no longer available. Add an item to start a new one.';
    case 'RATE_LIMITED':
      return 'Too many new carts at once. Wait a moment and try again.';
    case 'STORE_BUSY':
    case 'OUTCOME_UNKNOWN':
    case 'PAYMENT_UNAVAILABLE':
      return `${refusal.message} You can try again safely.`;
    default:
      return refusal.message;
  }
}
