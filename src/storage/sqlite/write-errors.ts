// How a SQLite write failed, said in the store's words: busy (retry), the disk or file refusing (STORE_READ_ONLY),
// or a COMMIT whose outcome cannot be known (OUTCOME_UNKNOWN).
import { refuse } from '../../domain/errors.js';

export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/**
 * A write the disk or the file refused, said plainly (STORE_READ_ONLY), or OUTCOME_UNKNOWN when COMMIT itself failed
 * after its commit frame may have reached the WAL file (a failed fsync): SQLite rolls the transaction back in
 * memory, but a restart that recovers the WAL could still find it. A failed write (SQLITE_IOERR_WRITE,
 * SQLITE_FULL) stops before the commit frame, which SQLite writes last, so nothing was committed.
 */
export function writeFailure(error: unknown, atCommit: boolean): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error;
  if (code === 'SQLITE_FULL') {
    return refuse.readOnly('disk_full', 'the disk holding the database file is full', error);
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    return refuse.readOnly(
      'read_only_file',
      `the database file or its directory cannot be written any more (${code})`,
      error,
    );
  }
  if (code.startsWith('SQLITE_IOERR')) {
    if (atCommit && code !== 'SQLITE_IOERR_WRITE') {
      return refuse.outcomeUnknown(`Writing the database file failed (${code})`, error);
    }
    return refuse.readOnly(
      'write_failed',
      `writing the database file failed (${code}): its disk failed or its filesystem turned read-only`,
      error,
    );
  }
  return error;
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
