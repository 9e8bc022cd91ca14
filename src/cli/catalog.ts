// `stocklock import FILE`: products and their stock from JSON or CSV, all rows or none.
import type { Command } from 'commander';
import { readCatalog } from '../catalog.js';
import { addStoreOptions, type StoreFlags } from '../config.js';
import { isStockError, StockError } from '../domain/errors.js';
import { CLI_CHANNEL, withStore } from './shared.js';

export function addImportCommand(program: Command): void {
  addStoreOptions(
    program
      .command('import')
      .argument(
        '<file>',
        'a JSON array or CSV of sku,name,price|price_minor,currency,stock[,track_stock,description]',
      )
      .description('create or update products and set their stock; all rows or none'),
  ).action(async (file: string, flags: StoreFlags) => {
    const { rows, where } = readCatalog(file);
    const result = await withStore(flags, (store) => store.importProducts(CLI_CHANNEL, rows)).catch(
      (error) => {
        // The store names the failing row by its index; the merchant needs the line of the file.
        const row = isStockError(error) ? error.details.row : undefined;
        if (typeof row !== 'number' || !isStockError(error)) throw error;
        throw new StockError(
          error.code,
          error.message.replace(/^row \d+: /, `${where[row - 1]}: `),
          error.details,
        );
      },
    );
    process.stdout.write(
      `Imported ${rows.length} products (${result.created} new, ${result.updated} updated).\n`,
    );
  });
}
