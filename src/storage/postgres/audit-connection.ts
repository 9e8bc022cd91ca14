// The console's audit on PostgreSQL: a connection of its own for the audit's length, never one of the store's pool.
import pg from 'pg';
import type { Clock } from '../../domain/clock.js';
import type { AuditReport } from '../../domain/types.js';
import { type AuditQuery, type AuditRows, auditQueries, auditReport, TIMED_AUDIT_QUERIES } from '../audit.js';

/**
 * Every check in one REPEATABLE READ snapshot, on a connection opened for it and closed after: a long audit
 * holds no connection that tool calls (the store's pool) or page views (the console's pool) wait for.
 */
export async function auditOnOwnConnection(url: string, clock: Clock): Promise<AuditReport> {
  const client = new pg.Client({ connectionString: url, application_name: 'stocklock-audit' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const queries = auditQueries('postgres');
    const rows = {} as AuditRows;
    const timed: readonly AuditQuery[] = TIMED_AUDIT_QUERIES;
    const { fixedAt, offsetMs } = clock.databaseTime?.() ?? { fixedAt: null, offsetMs: 0 };
    for (const key of Object.keys(queries) as AuditQuery[]) {
      const values = timed.includes(key) ? [fixedAt, offsetMs] : [];
      rows[key] = (await client.query(queries[key], values)).rows;
    }
    await client.query('COMMIT');
    return auditReport(rows);
  } finally {
    await client.end().catch(() => undefined);
  }
}
