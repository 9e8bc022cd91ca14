// The payment secret (--payment-secret): one key for the pay link's signature and for the link webhooks.
import { Buffer } from 'node:buffer';

/** Standard Webhooks secrets are 24 to 64 random bytes, written base64 after a `whsec_` prefix. */
const MIN_BYTES = 24;
const MAX_BYTES = 64;

/**
 * The key bytes of a `whsec_…` (or bare base64) secret. The same form every Standard Webhooks library takes, so
 * the merchant's pay page signs its webhooks with the secret as given and checks link signatures with its bytes.
 */
export function paymentSecretKey(secret: string): Uint8Array {
  const encoded = secret.trim().replace(/^whsec_/, '');
  const key = Buffer.from(encoded, 'base64');
  const canonical = key.toString('base64').replace(/=+$/, '');
  if (encoded.replace(/=+$/, '') !== canonical || key.length < MIN_BYTES || key.length > MAX_BYTES) {
    throw new Error(
      `--payment-secret must be "whsec_" and ${MIN_BYTES} to ${MAX_BYTES} random bytes in base64, e.g. whsec_$(openssl rand -base64 32)`,
    );
  }
  return new Uint8Array(key);
}
