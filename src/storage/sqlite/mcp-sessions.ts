// The SQLite side of MCP sessions (src/storage/mcp-sessions.ts): every process on the file shares them.
import type Database from 'better-sqlite3';
import type { McpSessionStore, StoredMcpSession } from '../mcp-sessions.js';
import type { SqliteRunner } from './oauth.js';

export function sqliteMcpSessionStore(db: Database.Database, run: SqliteRunner): McpSessionStore {
  const q = (sql: string) => db.prepare(sql);
  const s = {
    insert: q(
      `INSERT INTO mcp_sessions (id_hash, credential_id, channel, init, created_at, last_used_at, expires_at)
       VALUES (@id_hash, @credential_id, @channel, @init, @created_at, @last_used_at, @expires_at)`,
    ),
    count: q('SELECT COUNT(*) FROM mcp_sessions WHERE credential_id = ?').pluck(),
    // Beyond the newest `keep` of one credential, ended ones first, then the longest unused.
    beyondCap: q(
      `SELECT id_hash FROM mcp_sessions WHERE credential_id = ?
       ORDER BY expires_at > ? DESC, last_used_at DESC, id_hash LIMIT -1 OFFSET ?`,
    ).pluck(),
    get: q('SELECT * FROM mcp_sessions WHERE id_hash = ? AND expires_at > ?'),
    touch: q(
      `UPDATE mcp_sessions SET last_used_at = MAX(last_used_at, ?), expires_at = MAX(expires_at, ?)
       WHERE id_hash = ? AND expires_at > ?`,
    ),
    end: q('DELETE FROM mcp_sessions WHERE id_hash = ?'),
    endIdle: q('DELETE FROM mcp_sessions WHERE id_hash = ? AND last_used_at <= ?'),
    prune: q('DELETE FROM mcp_sessions WHERE expires_at <= ?'),
  };
  return {
    open: (session, keep) =>
      run.write(() => {
        s.insert.run(session);
        // Counting reads the index only; ordering the credential's sessions is left for when it is over.
        if ((s.count.get(session.credential_id) as number) <= keep) return [];
        const dropped = s.beyondCap.all(session.credential_id, session.last_used_at, keep) as string[];
        for (const idHash of dropped) s.end.run(idHash);
        return dropped;
      }),
    get: (idHash, now) => run.read(() => s.get.get(idHash, now) as StoredMcpSession | undefined),
    touch: (idHash, now, expiresAt) => run.write(() => s.touch.run(now, expiresAt, idHash, now).changes > 0),
    end: (idHash) => run.write(() => void s.end.run(idHash)),
    endIdle: (idHash, lastUsedAt) => run.write(() => s.endIdle.run(idHash, lastUsedAt).changes > 0),
    prune: (now) => run.write(() => s.prune.run(now).changes),
  };
}
