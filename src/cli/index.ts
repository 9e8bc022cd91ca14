// The `stocklock` program: every command group registered in help order, and one way to report a failure.
import { Command } from 'commander';
import { isStockError } from '../domain/errors.js';
import { addImportCommand } from './catalog.js';
import { addAuditCommand, addBackupCommand, addMigrateCommand, addSweepCommand } from './maintenance.js';
import { addOAuthCommands } from './oauth.js';
import { addServeCommands } from './serve.js';
import { VERSION } from './shared.js';
import { addStockChangeCommands, addStockCommand } from './stock.js';
import { addTokenCommands } from './tokens.js';

export function buildProgram(): Command {
  const program = new Command()
    .name('stocklock')
    .description('One stock pool for every sales channel: an MCP inventory server that never oversells.')
    .version(VERSION)
    .showHelpAfterError();
  addServeCommands(program);
  addMigrateCommand(program);
  addImportCommand(program);
  addStockChangeCommands(program);
  addStockCommand(program);
  addSweepCommand(program);
  addAuditCommand(program);
  addBackupCommand(program);
  addTokenCommands(program);
  addOAuthCommands(program);
  return program;
}

/** Runs the command line; a failure prints `stocklock: CODE: message` on stderr and exits 1. */
export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (isStockError(error)) {
      process.stderr.write(`stocklock: ${error.code}: ${error.message}\n`);
    } else if (error instanceof Error) {
      process.stderr.write(`stocklock: ${error.message}\n`);
      if (process.env.STOCKLOCK_DEBUG) process.stderr.write(`${error.stack}\n`);
    } else {
      process.stderr.write(`stocklock: ${String(error)}\n`);
    }
    process.exit(1);
  }
}
