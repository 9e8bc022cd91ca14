// How commands print: the stock table, the audit report, JSON. Results on stdout, nothing else there.
import type { AuditReport, StockLevel } from '../domain/types.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printStockTable(levels: StockLevel[]): void {
  const rows = [
    ['SKU', 'NAME', 'ON HAND', 'RESERVED', 'AVAILABLE'],
    ...levels.map((l) => [
      l.sku,
      l.name.length > 40 ? `${l.name.slice(0, 39)}…` : l.name,
      String(l.on_hand),
      String(l.reserved),
      l.available === null ? 'untracked' : String(l.available),
    ]),
  ];
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  for (const row of rows) {
    const cells = row.map((cell, column) =>
      column >= 2 ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
    );
    process.stdout.write(`${cells.join('  ').trimEnd()}\n`);
  }
}

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

export function printAudit(report: AuditReport, database: string): void {
  const { products, carts, orders, movements } = report.checked;
  const counted = [
    count(products, 'product'),
    count(carts, 'cart'),
    count(orders, 'order'),
    count(movements, 'ledger movement'),
  ];
  process.stdout.write(`Checked ${counted.join(', ')} in ${database}.\n`);
  if (report.since) {
    process.stdout.write(
      `Incremental: the ledger up to movement ${report.since.movement} (checked clean at ${report.since.at}) re-fingerprinted; what came after checked in full. \`audit --full\` checks everything from scratch.\n`,
    );
  }
  if (report.ok) {
    process.stdout.write('OK: every invariant holds; the books balance.\n');
    return;
  }
  process.stdout.write(`FAILED: ${report.violations.length} violation(s)\n`);
  for (const v of report.violations)
    process.stdout.write(`  invariant ${v.invariant} ${v.subject}: ${v.message}\n`);
}
