// The Ledger page's API: movements newest first, filtered and paged by id, and the same as a CSV download.
import type { Request } from 'express';
import { ErrorCode } from '../../domain/errors.js';
import { MovementKind } from '../../domain/types.js';
import type { ConsoleQueries, LedgerFilter } from '../../storage/console-queries.js';
import { apiError, type PageRoutes } from '../context.js';
import { LEDGER_COLUMNS, sendCsv } from '../csv.js';

const LEDGER_PAGE = 100;
/** Rows per read of an export: small, so a tool call waits behind at most one short batch. */
const CSV_BATCH = 500;
const KINDS = Object.values(MovementKind) as string[];

function ledgerFilter(req: Request, limit: number): LedgerFilter | string {
  const text = (name: string) => {
    const value = req.query[name];
    return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
  };
  const kind = text('kind');
  if (kind !== undefined && !KINDS.includes(kind)) return `kind must be one of ${KINDS.join(', ')}`;
  const before = text('before');
  const beforeId = before === undefined ? undefined : Number(before);
  if (beforeId !== undefined && !Number.isSafeInteger(beforeId)) return 'before must be a movement id';
  return {
    sku: text('sku'),
    channel: text('channel'),
    kind: kind as MovementKind | undefined,
    beforeId,
    limit,
  };
}

/** Newest first in batches by id, so a long export never holds a read open or the whole ledger in memory. */
async function* ledgerBatches(queries: ConsoleQueries, filter: LedgerFilter) {
  let beforeId = filter.beforeId;
  for (;;) {
    const batch = await queries.ledger({ ...filter, beforeId });
    if (batch.length > 0) yield batch;
    if (batch.length < filter.limit) return;
    beforeId = batch[batch.length - 1]?.id;
  }
}

export const ledgerRoutes: PageRoutes = (api, { queries }) => {
  api.get('/ledger', async (req, res) => {
    const filter = ledgerFilter(req, LEDGER_PAGE);
    if (typeof filter === 'string') return apiError(res, 400, ErrorCode.INVALID_INPUT, filter);
    res.json({ movements: await queries.ledger(filter), page: LEDGER_PAGE });
  });

  api.get('/ledger.csv', async (req, res) => {
    const filter = ledgerFilter(req, CSV_BATCH);
    if (typeof filter === 'string') return apiError(res, 400, ErrorCode.INVALID_INPUT, filter);
    const day = new Date(await queries.now()).toISOString().slice(0, 10);
    await sendCsv(res, `stocklock-ledger-${day}.csv`, LEDGER_COLUMNS, ledgerBatches(queries, filter));
  });
};
