#!/usr/bin/env node
// The `stocklock` command: serve the MCP server, manage stock and tokens, audit the books.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { readCatalog } from './catalog.js';
import { addStoreOptions, assertChannel, type StoreFlags, storeOptions } from './config.js';
import { isStockError, StockError } from './domain/errors.js';
import { parseDuration } from './domain/rules.js';
import type { AuditReport, StockLevel } from './domain/types.js';
import { createLogger } from './logger.js';
import { isPostgresUrl, openStore, redactUrl } from './storage/open.js';
import type { InventoryStore } from './storage/store.js';
import { startSweeper } from './sweeper.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
export const DEMO_CATALOG = fileURLToPath(new URL('../examples/demo-catalog.json', import.meta.url));

/** CLI admin actions are recorded in the ledger under this channel. */
const CLI_CHANNEL = { channel: 'cli' };

async function withStore<T>(flags: StoreFlags, fn: (store: InventoryStore) => Promise<T>): Promise<T> {
  const store = await openStore(flags.db, storeOptions(flags));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * Boolean flags read their environment twin here: commander would treat any set value, even "false", as true.
 */
function envFlag(name: string): boolean {
  const value = process.env[name]?.trim().toLowerCase();
  if (value === undefined || value === '' || ['0', 'false', 'no', 'off'].includes(value)) return false;
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  throw new Error(`${name} must be true or false, got "${process.env[name]}"`);
}

function quantityArg(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new Error(`quantity must be a whole number, got "${text}"`);
  return value;
}

function printTable(levels: StockLevel[]): void {
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

function printAudit(report: AuditReport): void {
  const { products, carts, orders, movements } = report.checked;
  process.stdout.write(
    `Checked ${products} products, ${carts} carts, ${orders} orders, ${movements} ledger movements.\n`,
  );
  if (report.ok) {
    process.stdout.write('OK: every invariant holds; the books balance.\n');
    return;
  }
  process.stdout.write(`FAILED: ${report.violations.length} violation(s)\n`);
  for (const v of report.violations)
    process.stdout.write(`  invariant ${v.invariant} ${v.subject}: ${v.message}\n`);
}

const program = new Command()
  .name('stocklock')
  .description('One stock pool for every sales channel: an MCP inventory server that never oversells.')
  .version(VERSION)
  .showHelpAfterError();

/** The HTTP server's options, shared by `serve` and `start`. */
function addHttpOptions(command: Command): Command {
  return command
    .addOption(new Option('--port <port>', 'HTTP port').env('STOCKLOCK_PORT').default('3000'))
    .addOption(new Option('--host <host>', 'HTTP address to bind').env('STOCKLOCK_HOST').default('127.0.0.1'))
    .addOption(
      new Option(
        '--allowed-hosts <list>',
        'comma-separated Host/Origin names to accept (required beyond loopback)',
      ).env('STOCKLOCK_ALLOWED_HOSTS'),
    )
    .addOption(
      new Option('--session-idle <duration>', 'HTTP sessions idle this long are closed')
        .env('STOCKLOCK_SESSION_IDLE')
        .default('30m'),
    )
    .addOption(
      new Option('--max-sessions <n>', 'most open HTTP sessions')
        .env('STOCKLOCK_MAX_SESSIONS')
        .default('1000'),
    )
    .addOption(
      new Option('--sweep-interval <duration>', 'how often expired carts are released')
        .env('STOCKLOCK_SWEEP_INTERVAL')
        .default('30s'),
    );
}

addStoreOptions(
  addHttpOptions(
    program
      .command('serve')
      .description('run the MCP server over stdio or Streamable HTTP (migrates the database first)')
      .addOption(new Option('--stdio', 'serve one connection on stdin/stdout').conflicts('http'))
      .addOption(new Option('--http', 'serve Streamable HTTP on /mcp'))
      .addOption(
        new Option(
          '--channel <name>',
          'stdio: the sales channel of this connection; HTTP --no-auth: of every connection',
        )
          .env('STOCKLOCK_CHANNEL')
          .default('default'),
      )
      .addOption(
        new Option('--admin', 'stdio: offer the admin tools on this connection (env STOCKLOCK_ADMIN=true)'),
      )
      .addOption(
        new Option(
          '--no-console',
          'HTTP: do not serve the merchant console at /console (env STOCKLOCK_NO_CONSOLE=true)',
        ),
      )
      .addOption(
        new Option(
          '--no-auth',
          'HTTP without tokens, loopback only: every connection is a customer on --channel (env STOCKLOCK_NO_AUTH=true)',
        ),
      ),
  ),
).action(async (flags: StoreFlags & ServeFlags) => {
  if (!flags.stdio && !flags.http) throw new Error('choose a transport: serve --stdio or serve --http');
  await serve(
    {
      ...flags,
      admin: flags.admin ?? envFlag('STOCKLOCK_ADMIN'),
      auth: flags.auth === false ? false : !envFlag('STOCKLOCK_NO_AUTH'),
      console: flags.console === false ? false : !envFlag('STOCKLOCK_NO_CONSOLE'),
    },
    false,
  );
});

addStoreOptions(
  addHttpOptions(
    program
      .command('start')
      .description('serve HTTP; on a brand-new database load the demo catalog and print a development token'),
  ),
).action(async (flags: StoreFlags & ServeFlags) => {
  await serve({ ...flags, http: true, auth: true, channel: 'default', console: true }, true);
});

interface ServeFlags {
  stdio?: boolean;
  http?: boolean;
  channel: string;
  admin?: boolean;
  port: string;
  host: string;
  allowedHosts?: string;
  auth: boolean;
  /** false (--no-console): no merchant console at /console. */
  console: boolean;
  sessionIdle: string;
  maxSessions: string;
  sweepInterval: string;
}

async function serve(flags: StoreFlags & ServeFlags, demo: boolean): Promise<void> {
  const logger = createLogger();
  const channel = assertChannel(flags.channel);
  const store = await openStore(flags.db, storeOptions(flags));
  const stopSweeper = startSweeper(store, parseDuration(flags.sweepInterval), logger);
  const brandNew = demo && (await store.isEmpty());
  if (brandNew) {
    const result = await store.importProducts(CLI_CHANNEL, readCatalog(DEMO_CATALOG).rows);
    logger.info({ ...result }, 'loaded the demo catalog into a brand-new database');
  }
  if (flags.stdio) {
    await serveStdio(store, channel, Boolean(flags.admin), logger);
    await stopSweeper();
    await store.close();
    return;
  }
  const { serveHttp } = await import('./transports/http.js');
  const merchantConsole = flags.console ? await openConsole(flags.db, store, logger) : undefined;
  const server = await serveHttp(
    store,
    {
      host: flags.host,
      port: Number(flags.port),
      allowedHosts:
        flags.allowedHosts
          ?.split(',')
          .map((h) => h.trim())
          .filter(Boolean) ?? [],
      auth: flags.auth !== false,
      channel,
      sessionIdleMs: parseDuration(flags.sessionIdle),
      maxSessions: Number(flags.maxSessions),
      version: VERSION,
      console: merchantConsole?.console,
    },
    logger,
  );
  const consoleUrl = merchantConsole ? server.url.replace(/\/mcp$/, '/console/') : undefined;
  if (consoleUrl) logger.info({ url: consoleUrl }, 'serving the merchant console');
  if (demo) {
    // Made only once the port is bound: a start that fails leaves no admin token nobody was shown.
    const devToken = brandNew
      ? (await store.createToken('web', true, 'development token from npm start')).token
      : undefined;
    printAttachHelp(server.url, devToken, consoleUrl);
  }
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    await merchantConsole?.close();
    await server.close();
    await stopSweeper();
    await store.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

async function serveStdio(
  store: InventoryStore,
  channel: string,
  admin: boolean,
  logger: ReturnType<typeof createLogger>,
) {
  const { serveStdio: run } = await import('./transports/stdio.js');
  await run(store, { channel, admin, version: VERSION }, logger);
}

/** The console and its own read connection; a database it cannot open is logged and the console left out. */
async function openConsole(db: string, store: InventoryStore, logger: ReturnType<typeof createLogger>) {
  const { openConsoleQueries } = await import('./storage/console-queries.js');
  const { createConsole } = await import('./console/console.js');
  let queries: Awaited<ReturnType<typeof openConsoleQueries>>;
  try {
    queries = await openConsoleQueries(db, store.options.clock);
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'the merchant console is off');
    return undefined;
  }
  const handle = createConsole({ store, queries, logger });
  return {
    console: handle,
    close: async () => {
      await handle.close();
      await queries.close();
    },
  };
}

function printAttachHelp(url: string, token: string | undefined, consoleUrl?: string): void {
  const auth = token ?? '<a token from: npx stocklock token create --channel web>';
  const lines = [
    '',
    `stocklock is serving MCP at ${url}`,
    token
      ? `Development token (admin, channel "web"; shown once, only its hash is stored):\n  ${token}`
      : 'Existing database: make a token with `npx stocklock token create --channel web`.',
    '',
    'Attach a client:',
    `  Claude Code:    claude mcp add --transport http stocklock ${url} --header "Authorization: Bearer ${auth}"`,
    // --header arrived in inspector 0.16.6 (0.15.0 has none); its CLI runs on Node 20 despite engines >=22.7.5.
    `  MCP inspector:  npx -y @modelcontextprotocol/inspector@0.16.6 --cli ${url} --transport http --header "Authorization: Bearer ${auth}" --method tools/list`,
    `  curl:           curl -s ${url.replace(/\/mcp$/, '/healthz')}`,
    '',
    ...(consoleUrl ? [`Merchant console: ${consoleUrl} (sign in with an admin token)`, ''] : []),
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

addStoreOptions(program.command('migrate').description('apply database migrations')).action(
  async (flags: StoreFlags) => {
    await withStore(flags, async () => undefined);
    process.stdout.write(`Database ${redactUrl(flags.db)} is up to date.\n`);
  },
);

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
  const result = await withStore(flags, (store) => store.importProducts(CLI_CHANNEL, rows)).catch((error) => {
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
    `Imported ${rows.length} products (${result.created} new, ${result.updated} updated).\n`,
  );
});

addStoreOptions(
  program
    .command('restock')
    .argument('<sku>')
    .argument('<quantity>', 'units received')
    .option('--note <text>', 'why, for the ledger')
    .description('add received units to on-hand'),
).action(async (sku: string, quantity: string, flags: StoreFlags & { note?: string }) => {
  const level = await withStore(flags, (store) =>
    store.restock(CLI_CHANNEL, { sku, quantity: quantityArg(quantity), note: flags.note }),
  );
  printTable([level]);
});

addStoreOptions(
  program
    .command('set-stock')
    .argument('<sku>')
    .argument('<quantity>', 'counted on-hand units')
    .option('--note <text>', 'why, for the ledger')
    .description('set on-hand after a stock take (refused below what carts hold)'),
).action(async (sku: string, quantity: string, flags: StoreFlags & { note?: string }) => {
  const level = await withStore(flags, (store) =>
    store.setStock(CLI_CHANNEL, { sku, quantity: quantityArg(quantity), note: flags.note }),
  );
  printTable([level]);
});

addStoreOptions(
  program
    .command('stock')
    .argument('[skus...]', 'only these SKUs')
    .option('--json', 'print JSON')
    .description('show on hand, reserved and available per SKU'),
).action(async (skus: string[], flags: StoreFlags & { json?: boolean }) => {
  const levels = await withStore(flags, (store) => store.stockLevels(skus));
  if (flags.json) process.stdout.write(`${JSON.stringify(levels, null, 2)}\n`);
  else printTable(levels);
});

addStoreOptions(program.command('sweep').description('release expired reservations now')).action(
  async (flags: StoreFlags) => {
    const result = await withStore(flags, (store) => store.sweepExpired());
    process.stdout.write(`Released ${result.units} units from ${result.carts} expired carts.\n`);
  },
);

addStoreOptions(
  program
    .command('audit')
    .option('--json', 'print the report as JSON')
    .description('check every invariant; exit 1 on a violation'),
).action(async (flags: StoreFlags & { json?: boolean }) => {
  const report = await withStore(flags, (store) => store.audit());
  if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else printAudit(report);
  if (!report.ok) process.exitCode = 1;
});

const PG_DUMP_HINT =
  'backup copies a SQLite database; back up PostgreSQL with pg_dump (e.g. pg_dump --format=custom --file=stocklock.dump "$STOCKLOCK_DB")';

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

const token = program.command('token').description('HTTP credentials: one token per channel');
addStoreOptions(
  token
    .command('create')
    .requiredOption('--channel <name>', 'the sales channel this token speaks for')
    .option('--admin', 'also allow the admin tools')
    .option('--label <text>', 'a note for token list')
    .description('create a token and print it once (only its hash is stored)'),
).action(async (flags: StoreFlags & { channel: string; admin?: boolean; label?: string }) => {
  const channel = assertChannel(flags.channel);
  const issued = await withStore(flags, (store) =>
    store.createToken(channel, Boolean(flags.admin), flags.label),
  );
  process.stderr.write(
    `Created ${issued.record.id} for channel "${channel}"${flags.admin ? ' (admin)' : ''}. It is shown only now:\n`,
  );
  process.stdout.write(`${issued.token}\n`);
});
addStoreOptions(
  token.command('list').option('--json', 'print JSON').description('list tokens (never their secrets)'),
).action(async (flags: StoreFlags & { json?: boolean }) => {
  const tokens = await withStore(flags, (store) => store.listTokens());
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
    return;
  }
  for (const t of tokens) {
    const state = t.revoked_at ? `revoked ${t.revoked_at}` : `last used ${t.last_used_at ?? 'never'}`;
    process.stdout.write(
      `${t.id}  ${t.channel}${t.admin ? ' (admin)' : ''}  created ${t.created_at}  ${state}  ${t.label ?? ''}\n`,
    );
  }
  if (tokens.length === 0)
    process.stdout.write('No tokens. Create one with: stocklock token create --channel web\n');
});
addStoreOptions(
  token
    .command('revoke')
    .argument('<id>', 'the token id from token list')
    .description('revoke a token at once'),
).action(async (id: string, flags: StoreFlags) => {
  const revoked = await withStore(flags, (store) => store.revokeToken(id));
  if (!revoked) throw new Error(`no live token with id "${id}" (see stocklock token list)`);
  process.stdout.write(`Revoked ${id}.\n`);
});

program.parseAsync().catch((error: unknown) => {
  if (isStockError(error)) {
    process.stderr.write(`stocklock: ${error.code}: ${error.message}\n`);
  } else if (error instanceof Error) {
    process.stderr.write(`stocklock: ${error.message}\n`);
    if (process.env.STOCKLOCK_DEBUG) process.stderr.write(`${error.stack}\n`);
  } else {
    process.stderr.write(`stocklock: ${String(error)}\n`);
  }
  process.exit(1);
});
