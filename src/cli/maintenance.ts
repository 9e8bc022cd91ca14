// Keeping the database: `migrate`, `sweep`, `audit` (exit 1 on a violation) and `backup`.
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { addStoreOptions, type StoreFlags } from '../config.js';
import { isPostgresUrl, redactUrl } from '../storage/open.js';
import { printAudit, printJson } from './output.js';
import { withStore } from './shared.js';

const PG_DUMP_HINT =
  'backup copies a SQLite database; back up PostgreSQL with pg_dump (e.g. pg_dump --format=custom --file=stocklock.dump "$STOCKLOCK_DB")';

export function addMigrateCommand(program: Command): void {
  addStoreOptions(program.command('migrate').description('apply database migrations')).action(
    async (flags: StoreFlags) => {
      await withStore(flags, async () => undefined);
      process.stdout.write(`Database ${redactUrl(flags.db)} is up to date.\n`);
    },
  );
}

export function addSweepCommand(program: Command): void {
  addStoreOptions(program.command('sweep').description('release expired reservations now')).action(
    async (flags: StoreFlags) => {
      const result = await withStore(flags, (store) => store.sweepExpired());
      process.stdout.write(`Released ${result.units} units from ${result.carts} expired carts.\n`);
    },
  );
}

export function addAuditCommand(program: Command): void {
  addStoreOptions(
    program
      .command('audit')
      .option('--json', 'print the report as JSON')
      .description('check every invariant; exit 1 on a violation'),
  ).action(async (flags: StoreFlags & { json?: boolean }) => {
    const report = await withStore(flags, (store) => store.audit());
    if (flags.json) printJson(report);
    else printAudit(report);
    if (!report.ok) process.exitCode = 1;
  });
}

export function addBackupCommand(program: Command): void {
  addStoreOptions(
    program
      .command('backup')
      .argument('<file>', 'where to write the copy')
      .option('--force', 'replace FILE if it already exists')
      .description('copy the SQLite database to FILE while it serves (online and consistent)'),
  ).action(async (file: string, flags: StoreFlags & { force?: boolean }) => {
    if (isPostgresUrl(flags.db)) throw new Error(PG_DUMP_HINT);
    // Opening would create an empty database, and back that up.
    if (!existsSync(flags.db)) throw new Error(`no database at ${flags.db} (check --db or STOCKLOCK_DB)`);
    if (existsSync(file) && !flags.force) {
      throw new Error(`${file} already exists; choose another file, or pass --force to replace it`);
    }
    await withStore(flags, async (store) => {
      if (!store.backup) throw new Error(PG_DUMP_HINT);
      await store.backup(file);
    });
    process.stdout.write(`Backed up ${flags.db} to ${file} (${statSync(file).size} bytes).\n`);
  });
}
