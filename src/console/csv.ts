// CSV for the console's exports: cells a spreadsheet cannot run as formulas, written to the response batch by batch.
import type { Response } from 'express';
import type { ConsoleMovement } from '../storage/console-queries.js';

/** A CSV cell: quoted when needed, and text that a spreadsheet would run as a formula is defused. */
export function csvCell(value: string | number | null, text: boolean): string {
  if (value === null) return '';
  let cell = String(value);
  if (text && /^[=+\-@\t\r]/.test(cell)) cell = `'${cell}`;
  return /[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

/** A column: its header, how a row gives its value, and whether it is free text (defused) or a number. */
export interface CsvColumn<Row> {
  name: string;
  value: (row: Row) => string | number | null;
  text: boolean;
}

const text = <Row>(name: string, value: (row: Row) => string | number | null): CsvColumn<Row> => ({
  name,
  value,
  text: true,
});
const plain = <Row>(name: string, value: (row: Row) => string | number | null): CsvColumn<Row> => ({
  name,
  value,
  text: false,
});

export const LEDGER_COLUMNS: CsvColumn<ConsoleMovement>[] = [
  plain('id', (m) => m.id),
  plain('at', (m) => new Date(m.at).toISOString()),
  text('sku', (m) => m.sku),
  plain('kind', (m) => m.kind),
  plain('quantity', (m) => m.quantity),
  plain('on_hand_delta', (m) => m.on_hand_delta),
  plain('reserved_delta', (m) => m.reserved_delta),
  text('channel', (m) => m.channel),
  text('cart_id', (m) => m.cart_id),
  text('order_id', (m) => m.order_id),
  text('note', (m) => m.note),
];

export function csvHeader<Row>(columns: CsvColumn<Row>[]): string {
  return `${columns.map((column) => column.name).join(',')}\r\n`;
}

export function csvLine<Row>(columns: CsvColumn<Row>[], row: Row): string {
  return `${columns.map((column) => csvCell(column.value(row), column.text)).join(',')}\r\n`;
}

/** The longest rest between two batches of an export. */
const MAX_REST_MS = 50;

/**
 * Sends a CSV download written as it is read: each batch goes out (waiting for the socket to drain) before
 * the next is asked for, so memory holds one batch however long the export. Stops when the client leaves.
 */
export async function sendCsv<Row>(
  res: Response,
  filename: string,
  columns: CsvColumn<Row>[],
  batches: AsyncIterable<Row[]>,
): Promise<void> {
  res.set({
    'Content-Type': 'text/csv; charset=utf-8',
    'Content-Disposition': `attachment; filename="${filename}"`,
  });
  res.write(csvHeader(columns));
  let started = performance.now();
  for await (const batch of batches) {
    if (res.destroyed) break;
    const ok = res.write(batch.map((row) => csvLine(columns, row)).join(''));
    // The event loop's time this batch took (read and formatted): the export then rests as long, so it takes
    // at most half the loop and a tool call arriving meanwhile finds it free half the time. A batch read on
    // SQLite resolves without a turn of the event loop, so without the rest it would chain every batch.
    const busy = performance.now() - started;
    if (!ok && !res.destroyed) await drained(res);
    await new Promise((resume) => setTimeout(resume, Math.min(busy, MAX_REST_MS)));
    started = performance.now();
  }
  res.end();
}

/** Resolves when the socket takes more, or is gone. */
function drained(res: Response): Promise<void> {
  return new Promise((resume) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resume();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
