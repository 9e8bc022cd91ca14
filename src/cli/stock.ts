// Stock commands: `restock` and `set-stock` (one implementation, a ledger movement each) and the `stock` table.
import type { Command } from 'commander';
import { addDbOption, addWriteOptions, type StoreFlags } from '../config.js';
import { ErrorCode, StockError } from '../domain/errors.js';
import type { StockLevel } from '../domain/types.js';
import { describeDatabase } from '../storage/open.js';
import type { InventoryStore, StockChange } from '../storage/store.js';
import { printJson, printStockTable } from './output.js';
import { CLI_CHANNEL, noteDatabase, withStore } from './shared.js';

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
  /** What was done, for the line above the new level. */
  done: string;
  apply(store: InventoryStore, change: StockChange): Promise<StockLevel>;
}

const STOCK_CHANGES: StockChangeCommand[] = [
  {
    name: 'restock',
    quantityHelp: 'units received',
    description: 'add received units to on-hand',
    done: 'Restocked',
    apply: (store, change) => store.restock(CLI_CHANNEL, change),
  },
  {
    name: 'set-stock',
    quantityHelp: 'counted on-hand units',
    description: 'set on-hand after a stock take (refused below what carts hold)',
    done: 'Set on-hand of',
    apply: (store, change) => store.setStock(CLI_CHANNEL, change),
  },
];

/** `restock` then `set-stock`: SKU, quantity, an optional note; prints the SKU's new level. */
export function addStockChangeCommands(program: Command): void {
  for (const command of STOCK_CHANGES) {
    addWriteOptions(
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
      process.stdout.write(`${command.done} ${level.sku} in ${describeDatabase(flags.db)}:\n`);
      printStockTable([level]);
    });
  }
}

/** `stock [SKU…]`: the table (or JSON) of what it knows; SKUs it does not know are named and exit 1. */
export function addStockCommand(program: Command): void {
  addDbOption(
    program
      .command('stock')
      .argument('[skus...]', 'only these SKUs')
      .option('--json', 'print JSON')
      .description('show on hand, reserved and available per SKU'),
  ).action(async (skus: string[], flags: StoreFlags & { json?: boolean }) => {
    const levels = await withStore(flags, (store) => store.stockLevels(skus), { writes: false });
    if (flags.json) {
      noteDatabase(flags.db);
      printJson(levels);
    } else {
      process.stdout.write(`Stock in ${describeDatabase(flags.db)}:\n`);
      printStockTable(levels);
    }
    const known = new Set(levels.map((level) => level.sku));
    const unknown = [...new Set(skus.filter((sku) => !known.has(sku)))];
    if (unknown.length > 0) {
      throw new StockError(
        ErrorCode.UNKNOWN_SKU,
        `no product with SKU ${unknown.join(', ')}; \`stocklock stock\` lists every SKU`,
        { skus: unknown },
      );
    }
  });
}
