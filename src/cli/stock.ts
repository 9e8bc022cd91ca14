// Stock commands: `restock` and `set-stock` (one implementation, a ledger movement each) and the `stock` table.
import type { Command } from 'commander';
import { addStoreOptions, type StoreFlags } from '../config.js';
import type { StockLevel } from '../domain/types.js';
import type { InventoryStore, StockChange } from '../storage/store.js';
import { printJson, printStockTable } from './output.js';
import { CLI_CHANNEL, withStore } from './shared.js';

function quantityArg(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new Error(`quantity must be a whole number, got "${text}"`);
  return value;
}

interface StockChangeCommand {
  name: string;
  quantityHelp: string;
  description: string;
  apply(store: InventoryStore, change: StockChange): Promise<StockLevel>;
}

const STOCK_CHANGES: StockChangeCommand[] = [
  {
    name: 'restock',
    quantityHelp: 'units received',
    description: 'add received units to on-hand',
    apply: (store, change) => store.restock(CLI_CHANNEL, change),
  },
  {
    name: 'set-stock',
    quantityHelp: 'counted on-hand units',
    description: 'set on-hand after a stock take (refused below what carts hold)',
    apply: (store, change) => store.setStock(CLI_CHANNEL, change),
  },
];

/** `restock` then `set-stock`: SKU, quantity, an optional note; prints the SKU's new level. */
export function addStockChangeCommands(program: Command): void {
  for (const command of STOCK_CHANGES) {
    addStoreOptions(
      program
        .command(command.name)
        .argument('<sku>')
        .argument('<quantity>', command.quantityHelp)
        .option('--note <text>', 'why, for the ledger')
        .description(command.description),
    ).action(async (sku: string, quantity: string, flags: StoreFlags & { note?: string }) => {
      const level = await withStore(flags, (store) =>
        command.apply(store, { sku, quantity: quantityArg(quantity), note: flags.note }),
      );
      printStockTable([level]);
    });
  }
}

export function addStockCommand(program: Command): void {
  addStoreOptions(
    program
      .command('stock')
      .argument('[skus...]', 'only these SKUs')
      .option('--json', 'print JSON')
      .description('show on hand, reserved and available per SKU'),
  ).action(async (skus: string[], flags: StoreFlags & { json?: boolean }) => {
    const levels = await withStore(flags, (store) => store.stockLevels(skus));
    if (flags.json) printJson(levels);
    else printStockTable(levels);
  });
}
