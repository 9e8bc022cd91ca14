// The link provider: the pay page's URL, its signature as the README tells a pay page to check it, the template and
// secret checks.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertLinkTemplate, createLinkProvider, linkSignature } from '../../src/payments/link.js';
import { createManualProvider } from '../../src/payments/manual.js';
import { paymentSecretKey } from '../../src/payments/secret.js';
import { order, SECRET } from '../helpers/payments.js';

/** The README's check for a pay page ("Checking a pay link on your page"), run as written. */
const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const SNIPPET = /Checking a pay link on your\s+page[\s\S]*?```js\n([\s\S]*?)```/.exec(README)?.[1] ?? '';

function payPageAccepts(secret: string, q: URLSearchParams): boolean {
  const process = { env: { STOCKLOCK_PAYMENT_SECRET: secret } };
  const run = new Function(
    'q',
    'process',
    'Buffer',
    'createHmac',
    'timingSafeEqual',
    `${SNIPPET}\nreturn ok;`,
  );
  return run(q, process, Buffer, createHmac, timingSafeEqual) as boolean;
}

const TEMPLATE =
  'https://shop.example/pay?order={order_id}&total={total_minor}&currency={currency}&sig={signature}';

describe('link provider', () => {
  it("the README's check is five lines of code", () => {
    expect(SNIPPET.trim().split('\n')).toHaveLength(5);
  });

  it('fills the template and signs order id, total and currency so the pay page can check them', async () => {
    const provider = createLinkProvider({ template: TEMPLATE, key: paymentSecretKey(SECRET) });
    const start = await provider.start(order());
    const url = new URL(start.payment_url ?? '');
    expect(url.origin + url.pathname).toBe('https://shop.example/pay');
    expect(url.searchParams.get('order')).toBe('ord_7Hq2');
    expect(url.searchParams.get('total')).toBe('4800');
    expect(url.searchParams.get('currency')).toBe('EUR');
    expect(url.searchParams.get('sig')).toMatch(/^[0-9a-f]{64}$/);
    expect(payPageAccepts(SECRET, url.searchParams)).toBe(true);
    // The same order gives the same link: a retried checkout hands the shopper the same page.
    expect((await provider.start(order())).payment_url).toBe(start.payment_url);
  });

  it('a link whose total, currency or order was changed, or signed with another secret, fails the check', async () => {
    const provider = createLinkProvider({ template: TEMPLATE, key: paymentSecretKey(SECRET) });
    const url = new URL((await provider.start(order())).payment_url ?? '');
    for (const [name, value] of [
      ['total', '480'],
      ['currency', 'USD'],
      ['order', 'ord_other'],
    ] as const) {
      const tampered = new URLSearchParams(url.searchParams);
      tampered.set(name, value);
      expect(payPageAccepts(SECRET, tampered)).toBe(false);
    }
    const otherSecret = `whsec_${randomBytes(32).toString('base64')}`;
    expect(payPageAccepts(otherSecret, url.searchParams)).toBe(false);
  });

  it('escapes what it puts in the URL and signs the values themselves', async () => {
    const key = paymentSecretKey(SECRET);
    const provider = createLinkProvider({ template: TEMPLATE, key });
    const odd = order({ order_id: 'ord a&b=c' });
    const url = new URL((await provider.start(odd)).payment_url ?? '');
    expect(url.searchParams.get('order')).toBe('ord a&b=c');
    expect(url.searchParams.get('sig')).toBe(linkSignature(key, 'ord a&b=c', 4800, 'EUR'));
    expect(payPageAccepts(SECRET, url.searchParams)).toBe(true);
  });

  it.each([
    ['https://shop.example/pay?total={total_minor}', '{order_id}'],
    ['https://shop.example/pay?o={order_id}&x={amount}', 'unknown placeholder {amount}'],
    ['shop.example/pay?o={order_id}', 'absolute http(s) URL'],
    ['ftp://shop.example/pay?o={order_id}', 'http(s) URL'],
  ])('refuses the template %s', (template, message) => {
    expect(() => assertLinkTemplate(template)).toThrow(message);
  });

  it.each([
    ['too short', `whsec_${randomBytes(8).toString('base64')}`],
    ['not base64', 'whsec_this is not base64 at all, is it?'],
    ['too long', `whsec_${randomBytes(80).toString('base64')}`],
  ])('refuses a payment secret that is %s', (_, secret) => {
    expect(() => paymentSecretKey(secret)).toThrow('--payment-secret must be "whsec_"');
  });

  it('takes the secret with or without the whsec_ prefix', () => {
    expect(paymentSecretKey(SECRET)).toEqual(paymentSecretKey(SECRET.replace('whsec_', '')));
  });
});

describe('manual provider', () => {
  it("answers with the merchant's instructions, or a default that says who confirms", async () => {
    expect(await createManualProvider('Bank transfer to DE89 3704 0044 0532 0130 00').start(order())).toEqual(
      {
        payment_instructions: 'Bank transfer to DE89 3704 0044 0532 0130 00',
      },
    );
    expect((await createManualProvider().start(order())).payment_instructions).toMatch(/confirms this order/);
  });
});
