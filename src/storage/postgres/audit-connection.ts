// The audit on PostgreSQL: the ledger's end read under a brief lock, then every check in one snapshot.
import pg from 'pg';
import type { Clock } from '../../domain/clock.js';
import type { AuditReport } from '../../domain/types.js';
import { databaseNow } from '../audit.js';
import { argsFor, auditFlow, checkpointParams, runAuditAsync, saveCheckpointSql } from '../audit-flow.js';
import type { AuditOptions } from '../store.js';

interface Queryable {
  query(sql: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/** Tries to read the ledger's end under the lock, this many times, this far apart. */
const END_TRIES = 20;
const END_RETRY_MS = 25;

/**
 * The highest ledger id such that every row up to it is committed. Ids come from a sequence but commit in
 * any order, so the largest id a snapshot sees may have a smaller one still in flight. A SHARE lock is
 * granted only when no writer is inserting, and admits none until its one read is done; NOWAIT, so the
 * request never queues (writers queue behind a waiting request): a writer mid-insert means a try later.
 * Null when no try finds a moment (a stream of writes) or the role may not take the lock: that audit saves
 * no checkpoint.
 */
async function ledgerEnd(client: Queryable): Promise<number | null> {
  for (let attempt = 0; attempt < END_TRIES; attempt++) {
    try {
      await client.query('BEGIN');
      await client.query('LOCK TABLE stock_movements IN SHARE MODE NOWAIT');
      const { rows } = await client.query('SELECT COALESCE(MAX(id), 0) AS id FROM stock_movements');
      await client.query('COMMIT');
      return Number(rows[0]?.id ?? 0);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      if ((error as { code?: string }).code !== '55P03') return null;
    }
    await new Promise((resume) => setTimeout(resume, END_RETRY_MS));
  }
  return null;
}

/** Runs the audit on `client`, which no one else uses meanwhile; saves its checkpoint if asked and clean. */
export async function auditOnClient(
  client: Queryable,
  time: { fixedAt: number | null; offsetMs: number },
  options: AuditOptions,
): Promise<AuditReport> {
  const end = await ledgerEnd(client);
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const outcome = await runAuditAsync(auditFlow('postgres', options.incremental === true), async (ask) => {
    if ('position' in ask) return end;
    if ('now' in ask) {
      const { rows } = await client.query(`SELECT ${databaseNow('$1', '$2')} AS now`, [
        time.fixedAt,
        time.offsetMs,
      ]);
      return Number(rows[0]?.now);
    }
    return (await client.query(ask.sql, argsFor('postgres', ask.names, ask.params))).rows;
  });
  await client.query('COMMIT');
  if (options.checkpoint && outcome.checkpoint) {
    const save = saveCheckpointSql('postgres');
    // Best effort: a read-only role or standby is audited all the same, from scratch next time.
    await client
      .query(save.sql, argsFor('postgres', save.names, checkpointParams(outcome.checkpoint)))
      .catch(() => undefined);
  }
  return outcome.report;
}

/**
 * The console's audit: a connection opened for it and closed after, so a long audit holds no connection
 * that tool calls (the store's pool) or page views (the console's pool) wait for.
 */
export async function auditOnOwnConnection(
  url: string,
  clock: Clock,
  options: AuditOptions,
): Promise<AuditReport> {
  const client = new pg.Client({ connectionString: url, application_name: 'stocklock-audit' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await auditOnClient(client, clock.databaseTime?.() ?? { fixedAt: null, offsetMs: 0 }, options);
  } finally {
    await client.end().catch(() => undefined);
  }
}
