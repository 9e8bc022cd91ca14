// Which redirect hosts may sign in, and as which channel: presets plus the merchant's rules in the store.

import { PRESET_HOSTS } from '../domain/channels.js';
import type { HostRule } from '../storage/oauth.js';

/** The hosted AI hosts stocklock exists for (kept in the domain: a channel they map to checks out with payment). */
export { PRESET_HOSTS };

export interface HostMapping {
  host: string;
  /** undefined: not mapped; null: denied by the merchant. */
  channel: string | null | undefined;
  source: 'preset' | 'store' | 'none';
}

/** The host of a redirect URI as the map keys it: lowercase hostname, no port. */
export function redirectHost(redirectUri: string): string {
  return new URL(redirectUri).hostname.toLowerCase();
}

export function channelForHost(host: string, rules: HostRule[]): HostMapping {
  const rule = rules.find((r) => r.host === host);
  if (rule) return { host, channel: rule.channel, source: 'store' };
  const preset = PRESET_HOSTS[host];
  if (preset !== undefined) return { host, channel: preset, source: 'preset' };
  return { host, channel: undefined, source: 'none' };
}

/** Every host with its effective channel (null = denied), presets included, sorted by host. */
export function effectiveHosts(rules: HostRule[]): HostMapping[] {
  const hosts = new Set([...Object.keys(PRESET_HOSTS), ...rules.map((r) => r.host)]);
  return [...hosts].sort().map((host) => channelForHost(host, rules));
}

/** A host as `oauth allow` takes it: a bare hostname (claude.ai, 127.0.0.1), case-insensitive. */
export function normalizeHost(text: string): string {
  const trimmed = text.trim().toLowerCase();
  let url: URL;
  try {
    url = new URL(`https://${trimmed}`);
  } catch {
    throw new Error(`"${text}" is not a host name (e.g. chatgpt.com, shop.example.com, 127.0.0.1).`);
  }
  if (url.hostname !== trimmed) {
    throw new Error(`"${text}" is not a bare host name: give the host only, without scheme, port or path.`);
  }
  return url.hostname;
}
