// Keeping the database: `migrate`, `sweep`, `audit` (exit 1 on a violation) and `backup`.
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { addDbOption, addWriteOptions, type StoreFlags } from '../config.js';
import { describeDatabase, isPostgresUrl } from '../storage/open.js';
import { printAudit, printJson } from './output.js';
import { noteDatabase, requireDatabase, withStore } from './shared.js';

const PG_DUMP_HINT =
  'backup copies a SQLite database; back up PostgreSQL with pg_dump (e.g. pg_dump --format=custom --file=stocklock.dump "$STOCKLOCK_DB")';

export function addMigrateCommand(program: Command): void {
  addDbOption(
    program.command('migrate').description('create the database, or bring its schema up to date'),
  ).action(async (flags: StoreFlags) => {
    await withStore(flags, async () => undefined, { create: true });
    process.stdout.write(`Database ${describeDatabase(flags.db)} is up to date.\n`);
  });
}

export function addSweepCommand(program: Command): void {
  addWriteOptions(
    program
      .command('sweep')
      .description('release expired reservations and orders past their payment time now'),
  ).action(async (flags: StoreFlags) => {
    const [carts, orders] = await withStore(flags, async (store) => [
      await store.sweepExpired(),
      await store.sweepOverdueOrders(),
    ]);
    process.stdout.write(
      `Released ${carts.units} units from ${carts.carts} expired carts in ${describeDatabase(flags.db)}.\n`,
    );
    if (orders.orders > 0) {
      process.stdout.write(
        `Released ${orders.units} units from ${orders.orders} orders past their payment time.\n`,
      );
    }
  });
}

export function addAuditCommand(program: Command): void {
  addDbOption(
    program
      .command('audit')
      .option('--json', 'print the report as JSON')
      .option('--full', 'check the whole history from scratch, not from the last clean audit')
      .description('check every invariant; exit 1 on a violation'),
  ).action(async (flags: StoreFlags & { json?: boolean; full?: boolean }) => {
    // No writers queue: auditing a backup leaves nothing beside it (SQLite removes its -wal and -shm on close).
    // A clean audit records its checkpoint, so the next one checks only what came after (best effort).
    const report = await withStore(
      flags,
      (store) => store.audit({ incremental: flags.full !== true, checkpoint: true }),
      { writes: false },
    );
    if (flags.json) {
      noteDatabase(flags.db);
      printJson(report);
    } else printAudit(report, describeDatabase(flags.db));
    if (!report.ok) process.exitCode = 1;
  });
}

export function addBackupCommand(program: Command): void {
  addDbOption(
    program
      .command('backup')
      .argument('<file>', 'where to write the copy')
      .option('--force', 'replace FILE if it already exists')
      .description('copy the SQLite database to FILE while it serves (online and consistent)'),
  ).action(async (file: string, flags: StoreFlags & { force?: boolean }) => {
    if (isPostgresUrl(flags.db)) throw new Error(PG_DUMP_HINT);
    // Opening would create an empty database, and back that up.
    await requireDatabase(flags.db);
    if (existsSync(file) && !flags.force) {
      throw new Error(`${file} already exists; choose another file, or pass --force to replace it`);
    }
    await withStore(
      flags,
      async (store) => {
        if (!store.backup) throw new Error(PG_DUMP_HINT);
        await store.backup(file);
      },
      { writes: false },
    );
    process.stdout.write(
      `Backed up ${describeDatabase(flags.db)} to ${file} (${statSync(file).size} bytes).\n`,
    );
  });
}
