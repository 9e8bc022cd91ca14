// `stocklock import FILE`: products and their stock from JSON or CSV, all rows or none.
import type { Command } from 'commander';
import { readCatalog } from '../catalog.js';
import { addWriteOptions, type StoreFlags } from '../config.js';
import { isStockError, StockError } from '../domain/errors.js';
import type { ImportStockLine } from '../domain/import-stock.js';
import { describeDatabase } from '../storage/open.js';
import { CLI_CHANNEL, withStore } from './shared.js';

export function addImportCommand(program: Command): void {
  addWriteOptions(
    program
      .command('import')
      .argument(
        '<file>',
        'CSV or a JSON array of sku,name,price|price_minor,currency,stock[,track_stock,description,active] (example: examples/demo-catalog.csv)',
      )
      .option(
        '--set-stock',
        "set existing products' on-hand to the file's stock too (refused below what carts hold)",
      )
      .description(
        "create or update products, all rows or none; new products take the file's stock, existing ones keep theirs",
      ),
  ).action(async (file: string, flags: StoreFlags & { setStock?: boolean }) => {
    const setStock = Boolean(flags.setStock);
    const { rows, where, format } = readCatalog(file);
    const result = await withStore(flags, (store) => store.importProducts(CLI_CHANNEL, rows, { setStock }), {
      create: true,
    }).catch((error) => {
      // The store names the failing row by its index; the merchant needs the line of the file.
      const row = isStockError(error) ? error.details.row : undefined;
      if (typeof row !== 'number' || !isStockError(error)) throw error;
      throw new StockError(
        error.code,
        error.message.replace(/^row \d+: /, `${where[row - 1]}: `),
        error.details,
      );
    });
    process.stdout.write(
      `Imported ${rows.length} products from ${file} (${format}) into ${describeDatabase(flags.db)} (${result.created} new, ${result.updated} updated).\n`,
    );
    printStockOutcome(result.stock, setStock);
  });
}

/** Says what the import did to existing products' on-hand: every change, or every figure it kept. */
function printStockOutcome(lines: ImportStockLine[], setStock: boolean): void {
  const existing = lines.filter((line) => line.before !== null);
  if (existing.length === 0) return;
  const out = (text: string) => process.stdout.write(`${text}\n`);
  if (setStock) {
    const changed = existing.filter((line) => line.after !== line.before);
    out(
      changed.length === 0
        ? 'On-hand unchanged: the file agrees with every count.'
        : 'On-hand set from the file:',
    );
    for (const line of changed) out(`  ${line.sku}: on hand ${line.before} → ${line.after}`);
    return;
  }
  const differing = existing.filter((line) => line.file !== null && line.file !== line.before);
  if (differing.length === 0) return;
  out(
    `Kept the on-hand of ${differing.length} existing product${differing.length > 1 ? 's' : ''} where the file differs (--set-stock sets it from the file):`,
  );
  for (const line of differing) out(`  ${line.sku}: ${line.before} on hand kept; the file says ${line.file}`);
}
