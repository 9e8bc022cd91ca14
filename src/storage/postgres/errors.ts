// Which PostgreSQL failures mean: run the transaction again, the store is busy, the outcome is unknown, or the
// database takes no writes. The write path in store.ts acts on them.
import { refuse, type StockError } from '../../domain/errors.js';

/** Thrown inside a transaction to run it again from the start (a row another transaction just created). */
export class RetryTransaction extends Error {}

export function pgCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Worth running the whole transaction again: nothing it did was kept. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof RetryTransaction) return true;
  const code = pgCode(error);
  if (code === '40P01' || code === '40001') return true;
  // A concurrent call with the same key committed first: the retry replays its record or refuses the key.
  return (
    code === '23505' &&
    (error as { constraint?: string }).constraint === 'idempotency_records_channel_tool_key_pk'
  );
}

/** The lock (or a pool connection) could not be had within the budget. */
export function isLockWait(error: unknown): boolean {
  const code = pgCode(error);
  if (code === '55P03' || code === '57014') return true;
  return error instanceof Error && error.message.includes('timeout exceeded when trying to connect');
}

/**
 * The connection died under the transaction (a restart, a failover, pg_terminate_backend, the network): whatever
 * it had not committed is gone, so before COMMIT the whole transaction can run again on another connection.
 */
export function isConnectionLost(error: unknown): boolean {
  const code = pgCode(error);
  if (code !== undefined) {
    // 08: connection exception; 57P01–57P03: the server is shutting down or was told to end this session.
    return (
      code.startsWith('08') || /^57P0[123]$/.test(code) || ['ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code)
    );
  }
  return (
    error instanceof Error && /Connection terminated|not queryable|connection error/i.test(error.message)
  );
}

/** A COMMIT that failed with one of these was rolled back by the server; any other failure leaves it unknown. */
export function isDefiniteRollback(error: unknown): boolean {
  const code = pgCode(error);
  // 23: a deferred constraint; 40: serialization failure or deadlock. Both roll back before the commit record.
  return code !== undefined && (code.startsWith('23') || code.startsWith('40'));
}

/** The server takes no writes (a standby, default_transaction_read_only, a full disk): say so, not "internal". */
export function readOnlyRefusal(error: unknown): StockError | undefined {
  const code = pgCode(error);
  if (code === '25006') {
    return refuse.readOnly(
      'read_only_database',
      'the PostgreSQL server accepts no writes (a read-only standby, or default_transaction_read_only is on)',
      error,
    );
  }
  if (code === '53100')
    return refuse.readOnly('disk_full', 'the disk of the PostgreSQL server is full', error);
  return undefined;
}
