// The page a shopper lands on after Stripe Checkout (the default success and cancel URLs): back to the chat.

const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

export function returnPage(orderId: unknown, status: unknown): string {
  const order = typeof orderId === 'string' && orderId.length <= 100 ? escapeHtml(orderId) : 'your order';
  const cancelled = status === 'cancelled';
  const title = cancelled ? 'No payment was taken' : 'Thank you';
  const text = cancelled
    ? `Nothing was charged for ${order}. Its items stay held until the time to pay; go back to your chat to pay or change it.`
    : `Your payment for ${order} is being confirmed. Go back to your chat: ask about the order to see it paid.`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title></head><body><main><h1>${title}</h1><p>${text}</p></main></body></html>`;
}
