// From the payment flags and the environment to a provider and its webhook routes; refuses a setup that cannot work.
import type { Logger } from '../logger.js';
import { createLinkProvider } from './link.js';
import { createManualProvider } from './manual.js';
import type { PayableOrder, PaymentProvider } from './provider.js';
import { paymentSecretKey } from './secret.js';
import { createStripeProvider } from './stripe.js';
import type { PaymentRoutesOptions } from './webhooks.js';

export interface PaymentConfig {
  payment?: string;
  paymentUrl?: string;
  paymentInstructions?: string;
  paymentSecret?: string;
  paymentSuccessUrl?: string;
  paymentCancelUrl?: string;
}

export interface Payments {
  provider: PaymentProvider;
  /** What the webhook routes verify with: the link secret's key, Stripe's client and signing secret. */
  webhooks: Pick<PaymentRoutesOptions<PayableOrder>, 'link' | 'stripe'>;
}

/**
 * `returnBase` is the origin shoppers reach this server at (the public URL), for Stripe's default success and
 * cancel pages. STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET come from the environment only; STOCKLOCK_STRIPE_API_URL
 * points the client at another address (a local stand-in).
 */
export function setUpPayments(
  config: PaymentConfig,
  env: Record<string, string | undefined>,
  returnBase: string,
  logger: Logger,
): Payments {
  const kind = config.payment ?? 'manual';
  const key = config.paymentSecret ? paymentSecretKey(config.paymentSecret) : undefined;
  const link = key ? { key } : undefined;
  if (kind === 'manual') {
    return { provider: createManualProvider(config.paymentInstructions), webhooks: link ? { link } : {} };
  }
  if (kind === 'link') {
    if (!config.paymentUrl)
      throw new Error(
        '--payment link needs --payment-url, e.g. https://shop.example/pay?order={order_id}&total={total_minor}&currency={currency}&sig={signature}',
      );
    if (!key)
      throw new Error(
        '--payment link needs --payment-secret (STOCKLOCK_PAYMENT_SECRET): it signs the links and verifies the payment webhooks',
      );
    return {
      provider: createLinkProvider({ template: config.paymentUrl, key }),
      webhooks: { link: { key } },
    };
  }
  if (kind === 'stripe') {
    const secretKey = env.STRIPE_SECRET_KEY?.trim();
    const webhookSecret = env.STRIPE_WEBHOOK_SECRET?.trim();
    if (!secretKey)
      throw new Error('--payment stripe needs STRIPE_SECRET_KEY in the environment (sk_live_… or sk_test_…)');
    if (!webhookSecret)
      throw new Error(
        '--payment stripe needs STRIPE_WEBHOOK_SECRET in the environment (whsec_…, from the webhook endpoint in the Stripe dashboard)',
      );
    const base = returnBase.replace(/\/+$/, '');
    const provider = createStripeProvider({
      secretKey,
      successUrl: config.paymentSuccessUrl ?? `${base}/payments/return?order_id={order_id}`,
      cancelUrl: config.paymentCancelUrl ?? `${base}/payments/return?order_id={order_id}&status=cancelled`,
      logger,
      ...(env.STOCKLOCK_STRIPE_API_URL ? { api: apiAddress(env.STOCKLOCK_STRIPE_API_URL) } : {}),
    });
    return {
      provider,
      webhooks: { stripe: { client: provider.stripe, webhookSecret }, ...(link ? { link } : {}) },
    };
  }
  throw new Error(`--payment must be manual, link or stripe, got "${kind}"`);
}

function apiAddress(url: string): { host: string; port: number; protocol: 'http' | 'https' } {
  const parsed = new URL(url);
  const protocol = parsed.protocol === 'http:' ? 'http' : 'https';
  return { host: parsed.hostname, port: Number(parsed.port) || (protocol === 'http' ? 80 : 443), protocol };
}
