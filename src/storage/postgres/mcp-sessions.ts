// The PostgreSQL side of MCP sessions (src/storage/mcp-sessions.ts): every server of the pool shares them.
import type pg from 'pg';
import type { McpSessionStore, StoredMcpSession } from '../mcp-sessions.js';

const SQL = {
  // One credential's sessions are opened one at a time, so concurrent opens cannot pass its cap together.
  lockCredential: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 2))',
  insert: `INSERT INTO mcp_sessions (id_hash, credential_id, channel, init, created_at, last_used_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)`,
  count: 'SELECT COUNT(*)::int AS n FROM mcp_sessions WHERE credential_id = $1',
  // Beyond the newest `keep` of one credential, ended ones first, then the longest unused.
  dropBeyondCap: `DELETE FROM mcp_sessions WHERE id_hash IN (
      SELECT id_hash FROM mcp_sessions WHERE credential_id = $1
      ORDER BY expires_at > $2 DESC, last_used_at DESC, id_hash COLLATE "C" OFFSET $3)
    RETURNING id_hash`,
  get: 'SELECT * FROM mcp_sessions WHERE id_hash = $1 AND expires_at > $2',
  touch: `UPDATE mcp_sessions SET last_used_at = GREATEST(last_used_at, $1), expires_at = GREATEST(expires_at, $2)
    WHERE id_hash = $3 AND expires_at > $1`,
  end: 'DELETE FROM mcp_sessions WHERE id_hash = $1',
  endIdle: 'DELETE FROM mcp_sessions WHERE id_hash = $1 AND last_used_at <= $2',
  prune: 'DELETE FROM mcp_sessions WHERE expires_at <= $1',
} as const;

/** bigint columns come back as strings from node-postgres. */
function sessionRow(row: Record<string, unknown>): StoredMcpSession {
  return {
    id_hash: row.id_hash as string,
    credential_id: row.credential_id as string,
    channel: row.channel as string,
    init: row.init as string,
    created_at: Number(row.created_at),
    last_used_at: Number(row.last_used_at),
    expires_at: Number(row.expires_at),
  };
}

export function postgresMcpSessionStore(pool: pg.Pool): McpSessionStore {
  return {
    async open(session, keep) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        await client.query(SQL.lockCredential, [session.credential_id]);
        await client.query(SQL.insert, [
          session.id_hash,
          session.credential_id,
          session.channel,
          session.init,
          session.created_at,
          session.last_used_at,
          session.expires_at,
        ]);
        // Counting reads the index only; ordering the credential's sessions is left for when it is over.
        const counted = await client.query<{ n: number }>(SQL.count, [session.credential_id]);
        if ((counted.rows[0]?.n ?? 0) <= keep) {
          await client.query('COMMIT');
          return [];
        }
        const { rows } = await client.query<{ id_hash: string }>(SQL.dropBeyondCap, [
          session.credential_id,
          session.last_used_at,
          keep,
        ]);
        await client.query('COMMIT');
        return rows.map((row) => row.id_hash);
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw error;
      } finally {
        client.release(broken);
      }
    },
    async get(idHash, now) {
      const { rows } = await pool.query(SQL.get, [idHash, now]);
      return rows[0] ? sessionRow(rows[0]) : undefined;
    },
    async touch(idHash, now, expiresAt) {
      return ((await pool.query(SQL.touch, [now, expiresAt, idHash])).rowCount ?? 0) > 0;
    },
    async end(idHash) {
      await pool.query(SQL.end, [idHash]);
    },
    async endIdle(idHash, lastUsedAt) {
      return ((await pool.query(SQL.endIdle, [idHash, lastUsedAt])).rowCount ?? 0) > 0;
    },
    async prune(now) {
      return (await pool.query(SQL.prune, [now])).rowCount ?? 0;
    },
  };
}
