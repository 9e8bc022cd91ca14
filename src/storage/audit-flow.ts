// The audit's steps, written once for both dialects: from scratch (`full`), or incremental from the last clean
// audit's checkpoint, whose ledger rows are fingerprinted again before its totals are trusted.
import type { AuditReport } from '../domain/types.js';
import {
  type AuditQuery,
  type AuditRows,
  auditQueries,
  auditReport,
  bindAudit,
  type LedgerMismatch,
} from './audit.js';

type Dialect = 'sqlite' | 'postgres';

/**
 * Sums over a range of ledger rows. Any change to a row's deltas or quantity, a row removed or added, or
 * deltas moved between rows (each row is weighted by its id) changes them; edits to a row's text columns
 * (sku, kind, cart, order, channel, note) do not.
 */
export interface Fingerprint {
  rows: number;
  onHand: number;
  reserved: number;
  quantity: number;
  weighted: number;
}

export interface Checkpoint {
  /** Every ledger row up to this id is summed in `skus` and fingerprinted in `fingerprint`. */
  ledgerId: number;
  at: number;
  fingerprint: Fingerprint;
  /** Per SKU: the sums of on_hand_delta and reserved_delta up to `ledgerId`. */
  skus: Record<string, [number, number]>;
}

/**
 * Orders made this long before the checkpoint are checked again: longer than any write transaction lasts
 * (so one that began before the checkpoint and committed after is covered) and than the clocks of the
 * processes sharing a SQLite file plausibly disagree.
 */
export const REVISIT_MS = 60 * 60_000;

/** What the flow asks its dialect: a query's rows, the store's time, or the ledger's end (null if unknown). */
export type AuditAsk =
  | { query: string; sql: string; names: string[]; params: Record<string, unknown> }
  | { now: true }
  | { position: true };

export interface AuditOutcome {
  report: AuditReport;
  /** The checkpoint to save: only from an audit that found nothing wrong and knows where the ledger ended. */
  checkpoint?: Checkpoint;
}

const P = 65521;

function flowQueries(dialect: Dialect) {
  const int = dialect === 'postgres' ? '::bigint' : '';
  // A range of the ledger's primary key; SQLite would rather walk the whole SKU index for the GROUP BY.
  const byId = dialect === 'sqlite' ? 'stock_movements NOT INDEXED' : 'stock_movements';
  return {
    checkpoint: 'SELECT ledger_id, at, fingerprint, sku_totals FROM audit_checkpoints WHERE id = 1',
    products: 'SELECT sku, on_hand, reserved FROM products',
    // Per SKU, the rows after the checkpoint: those up to the ledger's end (`to`) go into the next checkpoint.
    ledgerDelta: `SELECT sku, SUM(CASE WHEN id <= @to THEN on_hand_delta ELSE 0 END)${int} AS on_to,
        SUM(CASE WHEN id <= @to THEN reserved_delta ELSE 0 END)${int} AS res_to,
        SUM(on_hand_delta)${int} AS on_all, SUM(reserved_delta)${int} AS res_all
      FROM ${byId} WHERE id > @from GROUP BY sku`,
    fingerprint: `SELECT COUNT(*) AS n, COALESCE(SUM(on_hand_delta), 0)${int} AS on_hand,
        COALESCE(SUM(reserved_delta), 0)${int} AS reserved, COALESCE(SUM(quantity), 0)${int} AS quantity,
        COALESCE(SUM(((id % ${P}) * ((on_hand_delta % ${P}) + 3 * (reserved_delta % ${P}) + 7 * (quantity % ${P})))
          % ${P}), 0)${int} AS weighted
      FROM ${byId} WHERE id > @from AND id <= @to`,
  };
}

/** Saves a checkpoint unless a later one is already there. Parameters: ledgerId, at, fingerprint, skuTotals. */
export function saveCheckpointSql(dialect: Dialect): { sql: string; names: string[] } {
  return bindAudit(
    dialect,
    `INSERT INTO audit_checkpoints (id, ledger_id, at, fingerprint, sku_totals)
     VALUES (1, @ledgerId, @at, @fingerprint, @skuTotals)
     ON CONFLICT (id) DO UPDATE SET ledger_id = excluded.ledger_id, at = excluded.at,
       fingerprint = excluded.fingerprint, sku_totals = excluded.sku_totals
     WHERE audit_checkpoints.ledger_id <= excluded.ledger_id`,
  );
}

export function checkpointParams(c: Checkpoint): Record<string, unknown> {
  return {
    ledgerId: c.ledgerId,
    at: c.at,
    fingerprint: JSON.stringify(c.fingerprint),
    skuTotals: JSON.stringify(c.skus),
  };
}

const fingerprintOf = (row: Record<string, unknown> | undefined): Fingerprint => ({
  rows: Number(row?.n ?? 0),
  onHand: Number(row?.on_hand ?? 0),
  reserved: Number(row?.reserved ?? 0),
  quantity: Number(row?.quantity ?? 0),
  weighted: Number(row?.weighted ?? 0),
});

const sameFingerprint = (a: Fingerprint, b: Fingerprint) =>
  a.rows === b.rows &&
  a.onHand === b.onHand &&
  a.reserved === b.reserved &&
  a.quantity === b.quantity &&
  a.weighted === b.weighted;

const describe = (f: Fingerprint) =>
  `${f.rows} rows, on_hand ${f.onHand}, reserved ${f.reserved}, quantity ${f.quantity}, weight ${f.weighted}`;

// biome-ignore lint/suspicious/noExplicitAny: a stored row, checked field by field.
function parseCheckpoint(row: any): Checkpoint | string {
  try {
    const fingerprint = JSON.parse(row.fingerprint) as Fingerprint;
    const skus = JSON.parse(row.sku_totals) as Record<string, [number, number]>;
    const checkpoint = { ledgerId: Number(row.ledger_id), at: Number(row.at), fingerprint, skus };
    // The per-SKU totals are themselves checked: they must add up to the fingerprint's sums.
    let on = 0;
    let res = 0;
    for (const [o, r] of Object.values(skus)) {
      on += o;
      res += r;
    }
    if (on !== fingerprint.onHand || res !== fingerprint.reserved) {
      return `its SKU totals add up to ${on} / ${res}, not its fingerprint's ${fingerprint.onHand} / ${fingerprint.reserved}`;
    }
    return checkpoint;
  } catch {
    return 'it cannot be read';
  }
}

/** The audit as a generator of asks (driven synchronously on SQLite's connection, asynchronously otherwise). */
export function* auditFlow(
  dialect: Dialect,
  incremental: boolean,
): Generator<AuditAsk, AuditOutcome, unknown> {
  const q = flowQueries(dialect);
  const ask = function* (
    query: string,
    sql: string,
    params: Record<string, unknown> = {},
  ): Generator<AuditAsk, Record<string, unknown>[], unknown> {
    const bound = bindAudit(dialect, sql);
    return (yield { query, sql: bound.sql, names: bound.names, params }) as Record<string, unknown>[];
  };
  const end = (yield { position: true }) as number | null;
  const problems: string[] = [];
  let base: Checkpoint | undefined;
  if (incremental) {
    const [row] = yield* ask('checkpoint', q.checkpoint);
    const parsed = row ? parseCheckpoint(row) : undefined;
    if (typeof parsed === 'string') problems.push(`the last clean audit's checkpoint is wrong: ${parsed}`);
    else if (parsed) {
      // The rows the checkpoint summed must still be the rows it summed.
      const [now] = yield* ask('fingerprint', q.fingerprint, { from: 0, to: parsed.ledgerId });
      const found = fingerprintOf(now);
      if (sameFingerprint(found, parsed.fingerprint)) base = parsed;
      else {
        problems.push(
          `the ledger up to movement ${parsed.ledgerId} was changed after the last clean audit checked it (then ${describe(parsed.fingerprint)}; now ${describe(found)}); this audit summed the whole ledger again`,
        );
      }
    }
  }
  const from = base?.ledgerId ?? 0;
  // Without a known end, no checkpoint: every row after `from` is counted, none saved as checked.
  const to = end === null ? from : Math.max(end, from);
  const now = (yield { now: true }) as number;

  const totals = new Map<string, [number, number]>(Object.entries(base?.skus ?? {}));
  const current = new Map<string, [number, number]>();
  for (const [sku, t] of totals) current.set(sku, [t[0], t[1]]);
  for (const d of yield* ask('ledgerDelta', q.ledgerDelta, { from, to })) {
    const sku = String(d.sku);
    const t = totals.get(sku) ?? [0, 0];
    totals.set(sku, [t[0] + Number(d.on_to), t[1] + Number(d.res_to)]);
    const c = current.get(sku) ?? [0, 0];
    current.set(sku, [c[0] + Number(d.on_all), c[1] + Number(d.res_all)]);
  }
  const ledger: LedgerMismatch[] = [];
  for (const p of yield* ask('products', q.products)) {
    const [onSum, resSum] = current.get(String(p.sku)) ?? [0, 0];
    const onHand = Number(p.on_hand);
    const reserved = Number(p.reserved);
    if (onHand !== onSum || reserved !== resSum)
      ledger.push({ sku: String(p.sku), onHand, reserved, onSum, resSum });
  }
  ledger.sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
  const [added] = yield* ask('fingerprint', q.fingerprint, { from, to });

  const rows = {} as AuditRows;
  const checks = auditQueries(dialect, base ? 'incremental' : 'full');
  for (const key of Object.keys(checks) as AuditQuery[]) {
    rows[key] = yield* ask(key, checks[key], { from, since: (base?.at ?? 0) - REVISIT_MS, now });
  }
  const report = auditReport(rows, ledger, problems);
  if (base) report.since = { movement: base.ledgerId, at: new Date(base.at).toISOString() };
  if (!report.ok || end === null) return { report };
  const f = fingerprintOf(added);
  const b = base?.fingerprint;
  const fingerprint: Fingerprint = {
    rows: (b?.rows ?? 0) + f.rows,
    onHand: (b?.onHand ?? 0) + f.onHand,
    reserved: (b?.reserved ?? 0) + f.reserved,
    quantity: (b?.quantity ?? 0) + f.quantity,
    weighted: (b?.weighted ?? 0) + f.weighted,
  };
  return { report, checkpoint: { ledgerId: to, at: now, fingerprint, skus: Object.fromEntries(totals) } };
}

/** Drives the flow with answers given at once (SQLite's connection, inside one read transaction). */
export function runAuditSync(
  flow: Generator<AuditAsk, AuditOutcome, unknown>,
  answer: (a: AuditAsk) => unknown,
) {
  let step = flow.next();
  while (!step.done) step = flow.next(answer(step.value));
  return step.value;
}

/** Drives the flow with answers that arrive later (PostgreSQL, or SQLite's audit worker). */
export async function runAuditAsync(
  flow: Generator<AuditAsk, AuditOutcome, unknown>,
  answer: (a: AuditAsk) => Promise<unknown>,
): Promise<AuditOutcome> {
  let step = flow.next();
  while (!step.done) step = flow.next(await answer(step.value));
  return step.value;
}

/**
 * The arguments a bound statement takes, in the form its driver wants: PostgreSQL's values in order,
 * better-sqlite3's one object of named values (none at all for a statement without parameters).
 */
export function argsFor(dialect: Dialect, names: string[], params: Record<string, unknown>): unknown[] {
  if (dialect === 'postgres') return names.map((n) => params[n]);
  return names.length === 0 ? [] : [Object.fromEntries(names.map((n) => [n, params[n]]))];
}
