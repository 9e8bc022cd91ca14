// `stocklock serve` (stdio or HTTP) and `stocklock start` (HTTP, demo catalog and a dev token on a new database).
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import { readCatalog } from '../catalog.js';
import {
  addStoreOptions,
  assertChannel,
  type PaymentFlags,
  type StoreFlags,
  storeOptions,
} from '../config.js';
import { parseDuration } from '../domain/rules.js';
import { createLogger, type Logger } from '../logger.js';
import { withPayments } from '../payments/paying-store.js';
import { createSessionCloser } from '../payments/session-closer.js';
import { setUpPayments } from '../payments/setup.js';
import { paymentRoutes } from '../payments/webhooks.js';
import { describeDatabase, openStore } from '../storage/open.js';
import type { InventoryStore } from '../storage/store.js';
import { startSweeper } from '../sweeper.js';
import {
  addHttpOptions,
  envFlag,
  parseByteSize,
  parsePort,
  portSource,
  type ServeFlags,
  trustProxyHops,
} from './http-options.js';
import { CLI_CHANNEL, dbFlag, UsageError, VERSION } from './shared.js';

/** The HTTP server's 10 s drain for requests in flight, and 10 s more for closing sessions and the store. */
const SHUTDOWN_DEADLINE_MS = 20_000;

export const DEMO_CATALOG = fileURLToPath(new URL('../../examples/demo-catalog.json', import.meta.url));

export function addServeCommands(program: Command): void {
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
  ).action(async (flags: StoreFlags & ServeFlags & PaymentFlags, command: Command) => {
    if (!flags.stdio && !flags.http)
      throw new UsageError('choose a transport: serve --stdio or serve --http', 'stocklock serve');
    await serve(
      {
        ...flags,
        admin: flags.admin ?? envFlag('STOCKLOCK_ADMIN'),
        auth: flags.auth === false ? false : !envFlag('STOCKLOCK_NO_AUTH'),
        console: flags.console === false ? false : !envFlag('STOCKLOCK_NO_CONSOLE'),
        apps: flags.apps === false ? false : !envFlag('STOCKLOCK_NO_APPS'),
      },
      false,
      command,
    );
  });

  addStoreOptions(
    addHttpOptions(
      program
        .command('start')
        .description(
          'serve HTTP; on a brand-new database load the demo catalog and print a development token',
        ),
    ),
  ).action(async (flags: StoreFlags & ServeFlags & PaymentFlags, command: Command) => {
    await serve(
      {
        ...flags,
        http: true,
        auth: true,
        channel: 'default',
        console: true,
        apps: flags.apps === false ? false : !envFlag('STOCKLOCK_NO_APPS'),
      },
      true,
      command,
    );
  });
}

/** A port that cannot be bound, named with the flag and environment variable that choose another. */
function listenError(error: unknown, host: string, port: number, command: Command): unknown {
  const code = (error as { code?: string }).code;
  const problem =
    code === 'EADDRINUSE'
      ? 'is already in use (another stocklock, or another program)'
      : code === 'EACCES'
        ? 'needs privileges this user does not have (ports below 1024)'
        : undefined;
  if (!problem) return error;
  return new UsageError(
    `port ${port} on ${host} ${problem}; choose another with --port or STOCKLOCK_PORT (it came from ${portSource(command)})`,
    `stocklock ${command.name()}`,
  );
}

async function serve(
  flags: StoreFlags & ServeFlags & PaymentFlags,
  demo: boolean,
  command: Command,
): Promise<void> {
  const logger = createLogger();
  const channel = assertChannel(flags.channel);
  const port = flags.http ? parsePort(flags.port, command) : 0;
  // Checked before the database is opened: a payment set-up that cannot work must not start.
  const payments = setUpPayments(
    flags,
    process.env,
    flags.publicUrl ?? `http://${flags.host.includes(':') ? `[${flags.host}]` : flags.host}:${port}`,
    logger,
  );
  // An order cancelled unpaid (cancel_order, the console, the timeout sweep, a revoked grant) gets its payment
  // session closed at the provider after the commit.
  const sessions = createSessionCloser(payments.provider, { logger });
  const options = { ...storeOptions(flags), onOrdersCancelled: sessions.onOrdersCancelled };
  const store = await openStore(flags.db, options);
  logger.info({ database: describeDatabase(flags.db) }, 'opened the database');
  // Connections check out through the provider; the webhooks, the console and the sweeper use the store itself.
  const shopStore = withPayments(store, payments.provider, { logger });
  const stopSweeper = startSweeper(store, parseDuration(flags.sweepInterval), logger);
  const brandNew = demo && (await store.isEmpty());
  if (brandNew) {
    const result = await store.importProducts(CLI_CHANNEL, readCatalog(DEMO_CATALOG).rows);
    logger.info({ ...result }, 'loaded the demo catalog into a brand-new database');
  }
  if (flags.stdio) {
    await serveStdio(shopStore, { channel, admin: Boolean(flags.admin), apps: flags.apps }, logger);
    await stopSweeper();
    // Sessions being closed finish first (their retries are bounded; the shutdown deadline bounds the rest).
    await sessions.settled();
    await store.close();
    return;
  }
  const { serveHttp } = await import('../transports/http.js');
  const merchantConsole = flags.console
    ? await openConsole(flags.db, store, logger, flags.publicUrl)
    : undefined;
  const server = await serveHttp(
    shopStore,
    {
      host: flags.host,
      port,
      allowedHosts:
        flags.allowedHosts
          ?.split(',')
          .map((h) => h.trim())
          .filter(Boolean) ?? [],
      auth: flags.auth !== false,
      channel,
      sessionIdleMs: parseDuration(flags.sessionIdle),
      maxSessions: Number(flags.maxSessions),
      maxSessionsPerCredential: Number(flags.maxSessionsPerCredential),
      maxBodyBytes: parseByteSize(flags.maxBody, '--max-body'),
      headersTimeoutMs: parseDuration(flags.headersTimeout),
      requestTimeoutMs: parseDuration(flags.requestTimeout),
      maxConnections: Number(flags.maxConnections),
      version: VERSION,
      console: merchantConsole?.handle,
      apps: flags.apps,
      payments: {
        router: paymentRoutes({ store, clock: options.clock, logger, ...payments.webhooks }),
      },
      ...(flags.publicUrl ? { publicUrl: flags.publicUrl } : {}),
      trustProxy: trustProxyHops(flags.trustProxy),
    },
    logger,
  ).catch((error: unknown) => {
    throw listenError(error, flags.host, port, command);
  });
  const consoleUrl = merchantConsole ? server.url.replace(/\/mcp$/, '/console/') : undefined;
  if (consoleUrl) logger.info({ url: consoleUrl }, 'serving the merchant console');
  if (demo) {
    // Made only once the port is bound: a start that fails leaves no admin token nobody was shown.
    const devToken = brandNew
      ? (await store.createToken('web', true, 'development token from npm start')).token
      : undefined;
    printAttachHelp(server.url, flags.db, devToken, consoleUrl);
  }
  const shutdown = async (signal: string) => {
    // Whatever hangs (a request, the database, a log reader), the process ends within the drain and a grace.
    setTimeout(() => {
      logger.error({ signal, afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    await merchantConsole?.close();
    await server.close();
    await stopSweeper();
    // Sessions being closed finish first (their retries are bounded; the shutdown deadline bounds the rest).
    await sessions.settled();
    await store.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

async function serveStdio(
  store: InventoryStore,
  options: { channel: string; admin: boolean; apps: boolean },
  logger: Logger,
) {
  const { serveStdio: run } = await import('../transports/stdio.js');
  await run(store, { ...options, version: VERSION }, logger);
}

/** The console and its own read connection; a database it cannot open is logged and the console left out. */
async function openConsole(db: string, store: InventoryStore, logger: Logger, publicUrl?: string) {
  const { openConsoleQueries } = await import('../storage/open-console.js');
  const { createConsole } = await import('../console/console.js');
  let queries: Awaited<ReturnType<typeof openConsoleQueries>>;
  try {
    queries = await openConsoleQueries(db, store.options.clock);
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'the merchant console is off');
    return undefined;
  }
  const handle = createConsole({ store, queries, logger, publicUrl });
  return {
    handle,
    close: async () => {
      await handle.close();
      await queries.close();
    },
  };
}

/**
 * What `npm start` prints: lines that work as printed, for the database and port it was started with.
 * The token goes into the shell's environment once, so every later line reads it from there.
 */
export function printAttachHelp(
  url: string,
  db: string,
  token: string | undefined,
  consoleUrl?: string,
): void {
  const on = dbFlag(db);
  const header = '--header "Authorization: Bearer $STOCKLOCK_TOKEN"';
  const lines = [
    '',
    `stocklock is serving MCP at ${url}`,
    `Database: ${describeDatabase(db)}`,
    '',
    token
      ? 'Development token (admin, channel "web"; shown once, only its hash is stored). In the terminal you will use:'
      : 'Existing database: no token is printed. Make one (admin, channel "web") in the terminal you will use:',
    token
      ? `  export STOCKLOCK_TOKEN=${token}`
      : `  export STOCKLOCK_TOKEN=$(npx stocklock token create --channel web --admin${on})`,
    '',
    'Then, in this directory:',
    `  curl -s ${url.replace(/\/mcp$/, '/healthz')}`,
    // --header arrived in inspector 0.16.6 (0.15.0 has none); its CLI runs on Node 20 despite engines >=22.7.5.
    `  npx -y @modelcontextprotocol/inspector@0.16.6 --cli ${url} --transport http ${header} --method tools/list`,
    `  npx stocklock stock${on}`,
    `  npx stocklock audit${on}`,
    `  claude mcp add --transport http stocklock ${url} ${header}`,
    '',
    ...(consoleUrl ? [`Merchant console: ${consoleUrl} (sign in with an admin token)`, ''] : []),
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}
