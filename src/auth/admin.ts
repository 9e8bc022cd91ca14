// What the merchant's commands show and change about OAuth: grants beside static tokens, and the host map.
import { iso } from '../domain/rules.js';
import type { OAuthStore, StoredGrant } from '../storage/oauth.js';
import { effectiveHosts, normalizeHost, PRESET_HOSTS } from './hosts.js';
import { Scope } from './server.js';

/** A grant as `token list` shows it, beside static tokens. */
export interface GrantRecord {
  kind: 'grant';
  id: string;
  channel: string;
  admin: boolean;
  scope: string;
  client_id: string;
  client_name: string | null;
  redirect_host: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  revoke_reason: string | null;
}

export function grantRecord(grant: StoredGrant): GrantRecord {
  return {
    kind: 'grant',
    id: grant.id,
    channel: grant.channel,
    admin: grant.scope.split(' ').includes(Scope.ADMIN),
    scope: grant.scope,
    client_id: grant.client_id,
    client_name: grant.client_name,
    redirect_host: grant.redirect_host,
    created_at: iso(grant.created_at),
    last_used_at: grant.last_used_at === null ? null : iso(grant.last_used_at),
    revoked_at: grant.revoked_at === null ? null : iso(grant.revoked_at),
    revoke_reason: grant.revoke_reason,
  };
}

export function grantLine(g: GrantRecord): string {
  const state = g.revoked_at
    ? `revoked ${g.revoked_at}${g.revoke_reason ? ` (${g.revoke_reason})` : ''}`
    : `last used ${g.last_used_at ?? 'never'}`;
  const client = g.client_name ? `"${g.client_name}" ${g.client_id}` : g.client_id;
  return `${g.id}  ${g.channel}${g.admin ? ' (admin)' : ''}  OAuth ${client} via ${g.redirect_host}  created ${g.created_at}  ${state}`;
}

export const isGrantId = (id: string) => id.startsWith('grt_');

/** `oauth allow HOST --channel NAME`: a host's redirect URIs may sign in, selling as that channel. */
export async function allowHost(
  store: OAuthStore,
  host: string,
  channel: string,
  now: number,
): Promise<string> {
  const normalized = normalizeHost(host);
  await store.setHostRule(normalized, channel, now);
  return normalized;
}

/** `oauth deny HOST`: refuses new sign-ins from the host (a preset too); existing grants stay until revoked. */
export async function denyHost(store: OAuthStore, host: string, now: number): Promise<string> {
  const normalized = normalizeHost(host);
  await store.setHostRule(normalized, null, now);
  return normalized;
}

export async function hostLines(store: OAuthStore): Promise<string[]> {
  return effectiveHosts(await store.hostRules()).map((mapping) => {
    const preset = PRESET_HOSTS[mapping.host] !== undefined;
    const what = mapping.channel ? `channel ${mapping.channel}` : 'denied';
    return `${mapping.host}  ${what}${preset ? (mapping.source === 'preset' ? '  (preset)' : '  (preset, changed)') : ''}`;
  });
}
