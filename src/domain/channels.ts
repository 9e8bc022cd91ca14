// Each channel's checkout mode when the merchant set none: the channels OAuth hosts sign in as pay first.
import type { CheckoutMode } from './types.js';

/** Whether a channel's checkout needs a payment: its own setting, else payment when an OAuth host maps to it. */
export function checkoutModeOf(setting: CheckoutMode | undefined, mappedByOAuthHost: boolean): CheckoutMode {
  return setting ?? (mappedByOAuthHost ? 'payment' : 'direct');
}

/**
 * The hosted AI hosts stocklock exists for, and the channel each signs in as unless the merchant's host map
 * says otherwise (`oauth deny HOST` overrides a preset).
 */
export const PRESET_HOSTS: Readonly<Record<string, string>> = {
  'chatgpt.com': 'chatgpt',
  'claude.ai': 'claude',
  'claude.com': 'claude',
};

/** Channels some OAuth host signs in as: the merchant's rules (null denies), then the presets they leave. */
export function oauthChannels(rules: readonly { host: string; channel: string | null }[]): Set<string> {
  const channels = new Set<string>();
  for (const rule of rules) if (rule.channel !== null) channels.add(rule.channel);
  for (const [host, channel] of Object.entries(PRESET_HOSTS)) {
    if (!rules.some((rule) => rule.host === host)) channels.add(channel);
  }
  return channels;
}
