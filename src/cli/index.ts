// The `stocklock` program: every command group registered in help order, and one way to report a failure.
import { Command } from 'commander';
import { ErrorCode, isStockError, type StockError } from '../domain/errors.js';
import { addImportCommand } from './catalog.js';
import { addAuditCommand, addBackupCommand, addMigrateCommand, addSweepCommand } from './maintenance.js';
import { addOAuthCommands } from './oauth.js';
import { addChannelCommands, addOrderCommands } from './orders.js';
import { addServeCommands } from './serve.js';
import { UsageError, VERSION } from './shared.js';
import { addStockChangeCommands, addStockCommand } from './stock.js';
import { addTokenCommands } from './tokens.js';

/** Commander's message as one line: `error: unknown option '--dbb'` + `(Did you mean --db?)`. */
function oneLine(message: string): string {
  return `stocklock: ${message
    .replace(/^error: /, '')
    .trim()
    .replace(/\s*\n\s*/g, ' ')}\n`;
}

/** A mistake on the command line answers with one line and where the usage is, never a page of help. */
function pointAtHelp(command: Command, path: string): void {
  command.showHelpAfterError(`Run \`${path} --help\` for usage.`);
  for (const sub of command.commands) pointAtHelp(sub, `${path} ${sub.name()}`);
}

export function buildProgram(): Command {
  const program = new Command()
    .name('stocklock')
    .description('One stock pool for every sales channel: an MCP inventory server that never oversells.')
    .version(VERSION)
    // Set before the subcommands exist: commander copies it into each one as it is created.
    .configureOutput({ outputError: (message, write) => write(oneLine(message)) });
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
  addChannelCommands(program);
  addOrderCommands(program);
  pointAtHelp(program, 'stocklock');
  return program;
}

/**
 * The store words its refusals for MCP clients ("use search_products"); at the command line the hint
 * names a command instead.
 */
function cliMessage(error: StockError): string {
  if (error.code === ErrorCode.UNKNOWN_SKU && typeof error.details.sku === 'string')
    return `No active product has SKU "${error.details.sku}"; \`stocklock stock\` lists every SKU.`;
  if (error.code === ErrorCode.STORE_BUSY)
    return error.message.replace('retry the same call shortly', 'run the command again shortly');
  return error.message;
}

/** Runs the command line; a failure prints `stocklock: CODE: message` on stderr and exits 1. */
export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (isStockError(error)) {
      process.stderr.write(`stocklock: ${error.code}: ${cliMessage(error)}\n`);
    } else if (error instanceof UsageError) {
      process.stderr.write(`stocklock: ${error.message}\nRun \`${error.command} --help\` for usage.\n`);
    } else if (error instanceof Error) {
      process.stderr.write(`stocklock: ${error.message}\n`);
      if (process.env.STOCKLOCK_DEBUG) process.stderr.write(`${error.stack}\n`);
    } else {
      process.stderr.write(`stocklock: ${String(error)}\n`);
    }
    process.exit(1);
  }
}
