// The PostgreSQL side of OAuth (src/storage/oauth.ts): shared by every server of a pool, so grants work on any of them.
import type pg from 'pg';
import {
  type HostRule,
  OAUTH_RETENTION,
  type OAuthPruned,
  type OAuthStore,
  type StoredClient,
  type StoredCode,
  type StoredGrant,
  type TokenPair,
} from '../oauth.js';

const GRANT_COLUMNS = `g.id, g.client_id, (c.metadata::jsonb ->> 'client_name') AS client_name, g.channel, g.scope,
  g.resource, g.redirect_host, g.created_at, g.last_used_at, g.revoked_at, g.revoke_reason`;
const CLIENT_JOIN = 'LEFT JOIN oauth_clients c ON c.client_id = g.client_id';
const GRANT_FROM = `oauth_grants g ${CLIENT_JOIN}`;

/** Revoked before `before`, or never revoked and with no token that was live after it. */
function deadGrant(before: string): string {
  return `(revoked_at IS NOT NULL AND revoked_at < ${before}) OR (revoked_at IS NULL AND created_at < ${before}
    AND NOT EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.grant_id = oauth_grants.id AND t.expires_at >= ${before}))`;
}

const SQL = {
  saveClient: `INSERT INTO oauth_clients (client_id, kind, metadata, secret_hash, created_at, fetched_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (client_id) DO UPDATE SET metadata = excluded.metadata, fetched_at = excluded.fetched_at`,
  client: 'SELECT * FROM oauth_clients WHERE client_id = $1',
  pruneCodes: 'DELETE FROM oauth_codes WHERE expires_at < $1',
  saveCode: `INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge, scope, resource, channel,
    created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
  code: 'SELECT * FROM oauth_codes WHERE code_hash = $1',
  spendCode: `UPDATE oauth_codes SET used_at = $1, grant_id = $2 WHERE code_hash = $3 AND used_at IS NULL
    RETURNING code_hash`,
  insertGrant: `INSERT INTO oauth_grants (id, client_id, channel, scope, resource, redirect_host, created_at, last_used_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
  // A grant's expired tokens (spent refresh tokens included) are dropped as it issues new ones.
  pruneTokens: 'DELETE FROM oauth_tokens WHERE grant_id = $1 AND expires_at <= $2',
  insertTokens: `INSERT INTO oauth_tokens (token_hash, grant_id, kind, created_at, expires_at)
    VALUES ($1, $2, 'access', $3, $4), ($5, $2, 'refresh', $3, $6)`,
  refresh: `SELECT ${GRANT_COLUMNS}, t.expires_at AS token_expires_at, t.used_at AS token_used_at
    FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id ${CLIENT_JOIN} WHERE t.token_hash = $1 AND t.kind = 'refresh'`,
  // One statement spends the token or finds it spent: of two racing rotations exactly one wins.
  spendRefresh: `UPDATE oauth_tokens SET used_at = $1 WHERE token_hash = $2 AND kind = 'refresh' AND used_at IS NULL
    RETURNING grant_id`,
  grantOfToken: 'SELECT grant_id FROM oauth_tokens WHERE token_hash = $1',
  access: `SELECT ${GRANT_COLUMNS} FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id ${CLIENT_JOIN}
    WHERE t.token_hash = $1 AND t.kind = 'access' AND t.expires_at > $2 AND g.revoked_at IS NULL`,
  touchGrant: 'UPDATE oauth_grants SET last_used_at = $1 WHERE id = $2',
  grants: `SELECT ${GRANT_COLUMNS} FROM ${GRANT_FROM} ORDER BY g.created_at, g.id`,
  revokeGrant:
    'UPDATE oauth_grants SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL',
  dropTokens: 'DELETE FROM oauth_tokens WHERE grant_id = $1',
  pruneExpiredCodes: 'DELETE FROM oauth_codes WHERE expires_at < $1',
  pruneDeadTokens: `DELETE FROM oauth_tokens WHERE grant_id IN (SELECT id FROM oauth_grants WHERE ${deadGrant('$1')})`,
  pruneDeadGrants: `DELETE FROM oauth_grants WHERE ${deadGrant('$1')}`,
  pruneUnusedClients: `DELETE FROM oauth_clients WHERE created_at < $1
    AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.client_id)
    AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.client_id = oauth_clients.client_id)`,
  hostRules: 'SELECT host, channel, updated_at FROM oauth_hosts ORDER BY host',
  setHostRule: `INSERT INTO oauth_hosts (host, channel, updated_at) VALUES ($1, $2, $3)
    ON CONFLICT (host) DO UPDATE SET channel = excluded.channel, updated_at = excluded.updated_at`,
} as const;

type Query = (text: string, values: unknown[]) => Promise<pg.QueryResult>;

export function postgresOAuthStore(pool: pg.Pool): OAuthStore {
  const query: Query = (text, values) => pool.query(text, values);

  /** One short transaction on one pooled connection; rolled back on any error. */
  async function transaction<R>(fn: (tx: Query) => Promise<R>): Promise<R> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn((text, values) => client.query(text, values));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  const issue = async (tx: Query, grantId: string, tokens: TokenPair, now: number) => {
    await tx(SQL.pruneTokens, [grantId, now]);
    await tx(SQL.insertTokens, [
      tokens.access_hash,
      grantId,
      now,
      tokens.access_expires_at,
      tokens.refresh_hash,
      tokens.refresh_expires_at,
    ]);
  };
  const revoke = async (tx: Query, id: string, now: number, reason: string) => {
    const changed = ((await tx(SQL.revokeGrant, [now, reason, id])).rowCount ?? 0) > 0;
    await tx(SQL.dropTokens, [id]);
    return changed;
  };

  return {
    async saveClient(c: StoredClient) {
      await query(SQL.saveClient, [
        c.client_id,
        c.kind,
        c.metadata,
        c.secret_hash,
        c.created_at,
        c.fetched_at,
      ]);
    },
    async getClient(clientId) {
      return (await query(SQL.client, [clientId])).rows[0] as StoredClient | undefined;
    },
    async saveCode(c: StoredCode) {
      await transaction(async (tx) => {
        await tx(SQL.pruneCodes, [c.created_at - 86_400_000]);
        await tx(SQL.saveCode, [
          c.code_hash,
          c.client_id,
          c.redirect_uri,
          c.code_challenge,
          c.scope,
          c.resource,
          c.channel,
          c.created_at,
          c.expires_at,
        ]);
      });
    },
    async getCode(codeHash) {
      return (await query(SQL.code, [codeHash])).rows[0] as StoredCode | undefined;
    },
    redeemCode: (codeHash, now, grant, tokens) =>
      transaction(async (tx) => {
        if ((await tx(SQL.spendCode, [now, grant.id, codeHash])).rowCount === 0) {
          const used = (await tx(SQL.code, [codeHash])).rows[0] as StoredCode | undefined;
          if (used?.grant_id) await revoke(tx, used.grant_id, now, 'authorization code reused');
          return 'reused';
        }
        await tx(SQL.insertGrant, [
          grant.id,
          grant.client_id,
          grant.channel,
          grant.scope,
          grant.resource,
          grant.redirect_host,
          now,
        ]);
        await issue(tx, grant.id, tokens, now);
        return 'issued';
      }),
    async getRefresh(refreshHash) {
      const row = (await query(SQL.refresh, [refreshHash])).rows[0] as
        | (StoredGrant & { token_expires_at: number; token_used_at: number | null })
        | undefined;
      if (!row) return undefined;
      const { token_expires_at, token_used_at, ...grant } = row;
      return { grant, expires_at: token_expires_at, used_at: token_used_at };
    },
    rotateRefresh: (refreshHash, now, tokens) =>
      transaction(async (tx) => {
        const spent = (await tx(SQL.spendRefresh, [now, refreshHash])).rows[0] as
          | { grant_id: string }
          | undefined;
        if (!spent) {
          const owner = (await tx(SQL.grantOfToken, [refreshHash])).rows[0] as
            | { grant_id: string }
            | undefined;
          if (owner) await revoke(tx, owner.grant_id, now, 'refresh token reused');
          return 'reused';
        }
        await issue(tx, spent.grant_id, tokens, now);
        await tx(SQL.touchGrant, [now, spent.grant_id]);
        return 'issued';
      }),
    async verifyAccess(accessHash, now) {
      const grant = (await query(SQL.access, [accessHash, now])).rows[0] as StoredGrant | undefined;
      // last_used_at is advisory: refreshed at most once a minute.
      if (grant && (grant.last_used_at === null || now - grant.last_used_at > 60_000)) {
        await query(SQL.touchGrant, [now, grant.id]).catch(() => undefined);
      }
      return grant;
    },
    async listGrants() {
      return (await query(SQL.grants, [])).rows as StoredGrant[];
    },
    revokeGrant: (id, now, reason) => transaction((tx) => revoke(tx, id, now, reason)),
    prune: (now) =>
      transaction(async (tx): Promise<OAuthPruned> => {
        const codes = (await tx(SQL.pruneExpiredCodes, [now])).rowCount ?? 0;
        const deadBefore = now - OAUTH_RETENTION.deadGrantMs;
        await tx(SQL.pruneDeadTokens, [deadBefore]);
        const grants = (await tx(SQL.pruneDeadGrants, [deadBefore])).rowCount ?? 0;
        const clients =
          (await tx(SQL.pruneUnusedClients, [now - OAUTH_RETENTION.unusedClientMs])).rowCount ?? 0;
        return { codes, grants, clients };
      }),
    async hostRules() {
      return (await query(SQL.hostRules, [])).rows as HostRule[];
    },
    async setHostRule(host, channel, now) {
      await query(SQL.setHostRule, [host, channel, now]);
    },
  };
}
