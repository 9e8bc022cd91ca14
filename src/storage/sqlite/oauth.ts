// The SQLite side of OAuth (src/storage/oauth.ts): clients, codes, grants, tokens and the host map.
import type Database from 'better-sqlite3';
import {
  type HostRule,
  type NewGrant,
  OAUTH_RETENTION,
  type OAuthPruned,
  type OAuthStore,
  type RedeemOutcome,
  type RotateOutcome,
  type StoredClient,
  type StoredCode,
  type StoredGrant,
  type StoredRefresh,
  type TokenPair,
} from '../oauth.js';

/** How the owning store runs statements: writes take its writers' turn and retry on busy, like stock writes. */
export interface SqliteRunner {
  write<R>(fn: () => R): Promise<R>;
  read<R>(fn: () => R): Promise<R>;
}

const GRANT_COLUMNS = `g.id, g.client_id, json_extract(c.metadata, '$.client_name') AS client_name, g.channel, g.scope,
  g.resource, g.redirect_host, g.created_at, g.last_used_at, g.revoked_at, g.revoke_reason`;
const CLIENT_JOIN = 'LEFT JOIN oauth_clients c ON c.client_id = g.client_id';
const GRANT_FROM = `oauth_grants g ${CLIENT_JOIN}`;

/** Revoked before @before, or never revoked and with no token that was live after @before. */
const DEAD_GRANT = `(revoked_at IS NOT NULL AND revoked_at < @before) OR (revoked_at IS NULL AND created_at < @before
  AND NOT EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.grant_id = oauth_grants.id AND t.expires_at >= @before))`;
const UNUSED_CLIENT = `created_at < @before
  AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.client_id)
  AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.client_id = oauth_clients.client_id)`;

export function sqliteOAuthStore(db: Database.Database, run: SqliteRunner): OAuthStore {
  const q = (sql: string) => db.prepare(sql);
  const s = {
    saveClient: q(
      `INSERT INTO oauth_clients (client_id, kind, metadata, secret_hash, created_at, fetched_at)
       VALUES (@client_id, @kind, @metadata, @secret_hash, @created_at, @fetched_at)
       ON CONFLICT (client_id) DO UPDATE SET metadata = excluded.metadata, fetched_at = excluded.fetched_at`,
    ),
    client: q('SELECT * FROM oauth_clients WHERE client_id = ?'),
    saveCode: q(
      `INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge, scope, resource, channel, created_at,
       expires_at, used_at, grant_id) VALUES (@code_hash, @client_id, @redirect_uri, @code_challenge, @scope, @resource,
       @channel, @created_at, @expires_at, NULL, NULL)`,
    ),
    code: q('SELECT * FROM oauth_codes WHERE code_hash = ?'),
    spendCode: q('UPDATE oauth_codes SET used_at = ?, grant_id = ? WHERE code_hash = ? AND used_at IS NULL'),
    // Codes live minutes: dropping the long-expired ones on each new code keeps the table small.
    pruneCodes: q('DELETE FROM oauth_codes WHERE expires_at < ?'),
    insertGrant: q(
      `INSERT INTO oauth_grants (id, client_id, channel, scope, resource, redirect_host, created_at, last_used_at)
       VALUES (@id, @client_id, @channel, @scope, @resource, @redirect_host, @now, @now)`,
    ),
    // A grant's expired tokens (spent refresh tokens included) are dropped as it issues new ones.
    pruneTokens: q('DELETE FROM oauth_tokens WHERE grant_id = ? AND expires_at <= ?'),
    insertToken: q(
      'INSERT INTO oauth_tokens (token_hash, grant_id, kind, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
    ),
    refresh: q(
      `SELECT ${GRANT_COLUMNS}, t.expires_at AS token_expires_at, t.used_at AS token_used_at
       FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id ${CLIENT_JOIN} WHERE t.token_hash = ? AND t.kind = 'refresh'`,
    ),
    spendRefresh: q(
      "UPDATE oauth_tokens SET used_at = ? WHERE token_hash = ? AND kind = 'refresh' AND used_at IS NULL",
    ),
    grantOfToken: q('SELECT grant_id FROM oauth_tokens WHERE token_hash = ?'),
    access: q(
      `SELECT ${GRANT_COLUMNS} FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id ${CLIENT_JOIN}
       WHERE t.token_hash = ? AND t.kind = 'access' AND t.expires_at > ? AND g.revoked_at IS NULL`,
    ),
    touchGrant: q('UPDATE oauth_grants SET last_used_at = ? WHERE id = ?'),
    grants: q(`SELECT ${GRANT_COLUMNS} FROM ${GRANT_FROM} ORDER BY g.created_at, g.id`),
    revokeGrant: q(
      'UPDATE oauth_grants SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL',
    ),
    // A revoked grant's tokens can never work again; dropping them keeps the table to live grants.
    dropTokens: q('DELETE FROM oauth_tokens WHERE grant_id = ?'),
    pruneExpiredCodes: q('DELETE FROM oauth_codes WHERE expires_at < ?'),
    pruneDeadTokens: q(
      `DELETE FROM oauth_tokens WHERE grant_id IN (SELECT id FROM oauth_grants WHERE ${DEAD_GRANT})`,
    ),
    pruneDeadGrants: q(`DELETE FROM oauth_grants WHERE ${DEAD_GRANT}`),
    pruneUnusedClients: q(`DELETE FROM oauth_clients WHERE ${UNUSED_CLIENT}`),
    hostRules: q('SELECT host, channel, updated_at FROM oauth_hosts ORDER BY host'),
    setHostRule: q(
      `INSERT INTO oauth_hosts (host, channel, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (host) DO UPDATE SET channel = excluded.channel, updated_at = excluded.updated_at`,
    ),
  };

  const issue = (grantId: string, tokens: TokenPair, now: number) => {
    s.pruneTokens.run(grantId, now);
    s.insertToken.run(tokens.access_hash, grantId, 'access', now, tokens.access_expires_at);
    s.insertToken.run(tokens.refresh_hash, grantId, 'refresh', now, tokens.refresh_expires_at);
  };
  const revoke = (id: string, now: number, reason: string) => {
    const changed = s.revokeGrant.run(now, reason, id).changes > 0;
    s.dropTokens.run(id);
    return changed;
  };

  const redeem = db.transaction(
    (codeHash: string, now: number, grant: NewGrant, tokens: TokenPair): RedeemOutcome => {
      if (s.spendCode.run(now, grant.id, codeHash).changes === 0) {
        const used = s.code.get(codeHash) as StoredCode | undefined;
        if (used?.grant_id) revoke(used.grant_id, now, 'authorization code reused');
        return 'reused';
      }
      s.insertGrant.run({ ...grant, now });
      issue(grant.id, tokens, now);
      return 'issued';
    },
  ).immediate;

  const rotate = db.transaction((refreshHash: string, now: number, tokens: TokenPair): RotateOutcome => {
    const owner = s.grantOfToken.get(refreshHash) as { grant_id: string } | undefined;
    if (!owner) return 'reused';
    if (s.spendRefresh.run(now, refreshHash).changes === 0) {
      revoke(owner.grant_id, now, 'refresh token reused');
      return 'reused';
    }
    issue(owner.grant_id, tokens, now);
    s.touchGrant.run(now, owner.grant_id);
    return 'issued';
  }).immediate;

  const revokeTx = db.transaction(revoke).immediate;
  const pruneTx = db.transaction((now: number): OAuthPruned => {
    const codes = s.pruneExpiredCodes.run(now).changes;
    const deadBefore = { before: now - OAUTH_RETENTION.deadGrantMs };
    s.pruneDeadTokens.run(deadBefore);
    const grants = s.pruneDeadGrants.run(deadBefore).changes;
    const clients = s.pruneUnusedClients.run({ before: now - OAUTH_RETENTION.unusedClientMs }).changes;
    return { codes, grants, clients };
  }).immediate;
  const saveCodeTx = db.transaction((code: StoredCode) => {
    s.pruneCodes.run(code.created_at - 86_400_000);
    s.saveCode.run(code);
  }).immediate;

  return {
    saveClient: (client) => run.write(() => void s.saveClient.run(client)),
    getClient: (clientId) => run.read(() => s.client.get(clientId) as StoredClient | undefined),
    saveCode: (code) => run.write(() => saveCodeTx(code)),
    getCode: (codeHash) => run.read(() => s.code.get(codeHash) as StoredCode | undefined),
    redeemCode: (codeHash, now, grant, tokens) => run.write(() => redeem(codeHash, now, grant, tokens)),
    getRefresh: (refreshHash) =>
      run.read(() => {
        const row = s.refresh.get(refreshHash) as
          | (StoredGrant & { token_expires_at: number; token_used_at: number | null })
          | undefined;
        if (!row) return undefined;
        const { token_expires_at, token_used_at, ...grant } = row;
        return { grant, expires_at: token_expires_at, used_at: token_used_at } satisfies StoredRefresh;
      }),
    rotateRefresh: (refreshHash, now, tokens) => run.write(() => rotate(refreshHash, now, tokens)),
    verifyAccess: async (accessHash, now) => {
      const grant = await run.read(() => s.access.get(accessHash, now) as StoredGrant | undefined);
      // last_used_at is advisory: refreshed at most once a minute, one try, so auth stays off the write lock.
      if (grant && (grant.last_used_at === null || now - grant.last_used_at > 60_000)) {
        try {
          s.touchGrant.run(now, grant.id);
        } catch {
          // The next request refreshes it.
        }
      }
      return grant;
    },
    listGrants: () => run.read(() => s.grants.all() as StoredGrant[]),
    revokeGrant: (id, now, reason) => run.write(() => revokeTx(id, now, reason)),
    prune: (now) => run.write(() => pruneTx(now)),
    hostRules: () => run.read(() => s.hostRules.all() as HostRule[]),
    setHostRule: (host, channel, now) => run.write(() => void s.setHostRule.run(host, channel, now)),
  };
}
