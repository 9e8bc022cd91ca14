// One PostgreSQL write transaction: its connection, the product rows it has locked, its time, and the ledger
// rows and channel counters it writes last (the store's flush).
import type pg from 'pg';
import type { DatabaseTime } from '../../domain/clock.js';
import type { ProductRow } from '../../domain/views.js';
import type { Movement } from '../../domain/writes.js';
import { S, type Statement } from './statements.js';

/** One write transaction: its client, the product rows it has locked, and what it writes at the end. */
export class Tx {
  /** Product rows this transaction holds the lock on, kept current by every UPDATE … RETURNING. */
  readonly products = new Map<string, ProductRow>();
  /** Changes to channel_holds, written last in channel order (see the lock order in transactions.ts). */
  readonly channelDeltas = new Map<string, number>();
  readonly movements: Movement[] = [];
  private decidedAt: number | undefined;

  constructor(
    readonly client: pg.PoolClient,
    private readonly time: DatabaseTime,
  ) {}

  /** The time this transaction decides by: the database's, read once its first row lock was granted. */
  get now(): number {
    if (this.decidedAt === undefined) throw new Error('a write transaction decided before it read the time');
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

  /** A channel whose holds changed at all keeps its row in the flush, even if the changes add up to zero. */
  addChannel(channel: string, delta: number): void {
    if (delta !== 0) this.channelDeltas.set(channel, (this.channelDeltas.get(channel) ?? 0) + delta);
  }
}
