// `stocklock serve` (stdio or HTTP) and `stocklock start` (HTTP, demo catalog and a dev token on a new database).
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import { readCatalog } from '../catalog.js';
import { addStoreOptions, assertChannel, type StoreFlags, storeOptions } from '../config.js';
import { parseDuration } from '../domain/rules.js';
import { createLogger, type Logger } from '../logger.js';
import { openStore } from '../storage/open.js';
import type { InventoryStore } from '../storage/store.js';
import { startSweeper } from '../sweeper.js';
import { CLI_CHANNEL, VERSION } from './shared.js';

export const DEMO_CATALOG = fileURLToPath(new URL('../../examples/demo-catalog.json', import.meta.url));

interface ServeFlags {
  stdio?: boolean;
  http?: boolean;
  channel: string;
  admin?: boolean;
  port: string;
  host: string;
  allowedHosts?: string;
  publicUrl?: string;
  auth: boolean;
  /** false (--no-console): no merchant console at /console. */
  console: boolean;
  sessionIdle: string;
  maxSessions: string;
  sweepInterval: string;
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
      new Option(
        '--public-url <url>',
        'the https origin clients reach this server at, e.g. behind a TLS proxy; names the OAuth issuer and resource (required beyond loopback)',
      ).env('STOCKLOCK_PUBLIC_URL'),
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
        .description(
          'serve HTTP; on a brand-new database load the demo catalog and print a development token',
        ),
    ),
  ).action(async (flags: StoreFlags & ServeFlags) => {
    await serve({ ...flags, http: true, auth: true, channel: 'default', console: true }, true);
  });
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
  const { serveHttp } = await import('../transports/http.js');
  const merchantConsole = flags.console
    ? await openConsole(flags.db, store, logger, flags.publicUrl)
    : undefined;
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
      console: merchantConsole?.handle,
      ...(flags.publicUrl ? { publicUrl: flags.publicUrl } : {}),
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

async function serveStdio(store: InventoryStore, channel: string, admin: boolean, logger: Logger) {
  const { serveStdio: run } = await import('../transports/stdio.js');
  await run(store, { channel, admin, version: VERSION }, logger);
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
