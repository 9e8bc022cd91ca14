// One PostgreSQL write transaction: its connection, the product rows it has locked, its time, and the ledger
// rows and channel counters it writes last (the store's flush).
import type pg from 'pg';
import type { DatabaseTime } from '../../domain/clock.js';
import type { ProductRow } from '../../domain/views.js';
import type { Movement } from '../../domain/writes.js';
import { S, type Statement } from './statements.js';

/**
 * A call's lock budget is one deadline. PostgreSQL's timeouts count per statement (lock_timeout even per lock),
 * so a transaction re-sends what is left of the budget before a statement once this long has passed since it
 * last did: calls that wait on nothing pay no extra round trip, and a lock wait ends at most this late.
 */
const BUDGET_RESYNC_MS = 20;
/**
 * statement_timeout is what is left of the budget plus this much: it bounds a statement that waits on several
 * locks in turn, while a statement doing work as the deadline passes still gets to finish it.
 */
const STATEMENT_GRACE_MS = 250;
/** Past the deadline a statement may not wait for a lock at all (0 would mean "no limit"), only do its work. */
const NO_WAIT_MS = 1;

/** One write transaction: its client, the product rows it has locked, and what it writes at the end. */
export class Tx {
  /** Product rows this transaction holds the lock on, kept current by every UPDATE … RETURNING. */
  readonly products = new Map<string, ProductRow>();
  /** Changes to channel_holds, written last in channel order (see the lock order in engine.ts). */
  readonly channelDeltas = new Map<string, number>();
  readonly movements: Movement[] = [];
  private decidedAt: number | undefined;

  /** When the timeouts last sent to the server were computed (performance.now()). */
  private budgetSentAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly client: pg.PoolClient,
    private readonly time: DatabaseTime,
    /** The call's one deadline (performance.now() ms) for every lock wait, on every attempt. */
    readonly deadline: number,
  ) {}

  /** BEGIN, with the lock timeouts set to what is left of the call's budget, in one round trip. */
  async begin(): Promise<void> {
    await this.client.query(`BEGIN; ${this.budgetSettings()}`);
  }

  /** The time this transaction decides by: the database's, read once its first row lock was granted. */
  get now(): number {
    if (this.decidedAt === undefined) throw new Error('a write transaction decided before it read the time');
    return this.decidedAt;
  }

  /** The transaction's time if a lock has set it yet. */
  get decided(): number | undefined {
    return this.decidedAt;
  }

  /** Runs a locking statement built with thenNow(); the first one that finds rows sets the time. */
  async locked<T>(statement: Statement, values: unknown[]): Promise<T[]> {
    const rows = await this.rows<T & { now: number }>(statement, [
      ...values,
      this.time.fixedAt,
      this.time.offsetMs,
    ]);
    if (this.decidedAt === undefined && rows.length > 0) {
      this.decidedAt = Math.max(...rows.map((row) => row.now));
    }
    return rows;
  }

  /** The transaction's time, read now if no lock has set it (a transaction that found nothing to lock). */
  async clock(): Promise<number> {
    if (this.decidedAt === undefined) {
      const row = await this.row<{ now: number }>(S.now, [this.time.fixedAt, this.time.offsetMs]);
      this.decidedAt = row?.now ?? 0;
    }
    return this.decidedAt;
  }

  async rows<T>(statement: Statement, values: unknown[]): Promise<T[]> {
    await this.keepBudget();
    const result = await this.client.query({ name: statement.name, text: statement.text, values });
    return result.rows as T[];
  }

  async row<T>(statement: Statement, values: unknown[]): Promise<T | undefined> {
    return (await this.rows<T>(statement, values))[0];
  }

  async run(statement: Statement, values: unknown[]): Promise<number> {
    const result = await this.client.query({ name: statement.name, text: statement.text, values });
    return result.rowCount ?? 0;
  }

  /** Re-sends the remaining budget when time has passed (a wait, or long work), so no wait outlives the deadline. */
  private async keepBudget(): Promise<void> {
    if (performance.now() - this.budgetSentAt < BUDGET_RESYNC_MS) return;
    await this.client.query(this.budgetSettings());
  }

  private budgetSettings(): string {
    this.budgetSentAt = performance.now();
    const remaining = Math.ceil(this.deadline - this.budgetSentAt);
    // statement_timeout bounds a statement that meets several locked rows in turn; past the deadline it only
    // guards against a runaway statement, while lock_timeout forbids any further wait.
    const lock = remaining > 0 ? remaining : NO_WAIT_MS;
    const statement = remaining > 0 ? remaining + STATEMENT_GRACE_MS : STATEMENT_GRACE_MS * 20;
    return `SET LOCAL lock_timeout = ${lock}; SET LOCAL statement_timeout = ${statement}`;
  }

  /** A channel whose holds changed at all keeps its row in the flush, even if the changes add up to zero. */
  addChannel(channel: string, delta: number): void {
    if (delta !== 0) this.channelDeltas.set(channel, (this.channelDeltas.get(channel) ?? 0) + delta);
  }
}
