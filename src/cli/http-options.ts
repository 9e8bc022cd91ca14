// The HTTP server's flags, shared by `serve` and `start`, and the parsing of the ones commander cannot check.
import { type Command, Option } from 'commander';
import { addPaymentOptions } from '../config.js';
import { flagSource, UsageError } from './shared.js';

export interface ServeFlags {
  stdio?: boolean;
  http?: boolean;
  channel: string;
  admin?: boolean;
  port: string;
  host: string;
  allowedHosts?: string;
  publicUrl?: string;
  trustProxy: string;
  auth: boolean;
  /** false (--no-console): no merchant console at /console. */
  console: boolean;
  /** false (--no-apps): the tools without the MCP App, text and structuredContent only. */
  apps: boolean;
  sessionIdle: string;
  maxSessions: string;
  maxSessionsPerCredential: string;
  maxBody: string;
  headersTimeout: string;
  requestTimeout: string;
  maxConnections: string;
  sweepInterval: string;
}

/**
 * Boolean flags read their environment twin here: commander would treat any set value, even "false", as true.
 */
export function envFlag(name: string): boolean {
  const value = process.env[name]?.trim().toLowerCase();
  if (value === undefined || value === '' || ['0', 'false', 'no', 'off'].includes(value)) return false;
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  throw new Error(`${name} must be true or false, got "${process.env[name]}"`);
}

/** `64kb`, `1mb` or a number of bytes; at least 1 KB, since an initialize alone is a few hundred bytes. */
export function parseByteSize(text: string, flag: string): number {
  const match = /^\s*(\d+)\s*(b|kb|k|mb|m)?\s*$/i.exec(text);
  const unit = (match?.[2] ?? 'b').toLowerCase();
  const bytes = match
    ? Number(match[1]) * (unit.startsWith('m') ? 1024 * 1024 : unit.startsWith('k') ? 1024 : 1)
    : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1024) {
    throw new Error(`${flag} must be a size of at least 1kb (e.g. 65536, 64kb, 1mb), got "${text}"`);
  }
  return bytes;
}

/** The HTTP server's options, shared by `serve` and `start`. */
export function addHttpOptions(command: Command): Command {
  return addPaymentOptions(command)
    .addOption(
      new Option(
        '--no-apps',
        'do not offer the MCP App (the shop view in ChatGPT, Claude and other hosts): text and structured results only (env STOCKLOCK_NO_APPS=true)',
      ),
    )
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
      new Option(
        '--trust-proxy <hops>',
        'how many proxies in front to believe X-Forwarded-For from, for the client address rate limits count (1 behind one TLS proxy)',
      )
        .env('STOCKLOCK_TRUST_PROXY')
        .default('0'),
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
      new Option(
        '--max-sessions-per-credential <n>',
        'most open HTTP sessions of one token or OAuth grant; its own oldest idle one makes room',
      )
        .env('STOCKLOCK_MAX_SESSIONS_PER_CREDENTIAL')
        .default('100'),
    )
    .addOption(
      new Option('--max-body <size>', 'largest /mcp request body, after decompression (bytes, or 64kb, 1mb)')
        .env('STOCKLOCK_MAX_BODY')
        .default('64kb'),
    )
    .addOption(
      new Option(
        '--headers-timeout <duration>',
        "longest a client may take to send a request's headers (408, closed)",
      )
        .env('STOCKLOCK_HEADERS_TIMEOUT')
        .default('10s'),
    )
    .addOption(
      new Option(
        '--request-timeout <duration>',
        'longest a client may take to send a whole request, body included',
      )
        .env('STOCKLOCK_REQUEST_TIMEOUT')
        .default('30s'),
    )
    .addOption(
      new Option('--max-connections <n>', 'most open HTTP connections; past it new ones are closed at once')
        .env('STOCKLOCK_MAX_CONNECTIONS')
        .default('2000'),
    )
    .addOption(
      new Option('--sweep-interval <duration>', 'how often expired carts are released')
        .env('STOCKLOCK_SWEEP_INTERVAL')
        .default('30s'),
    );
}

export function trustProxyHops(text: string): number {
  const hops = Number(text);
  if (!/^\d+$/.test(text.trim()) || hops > 10) {
    throw new UsageError(
      `--trust-proxy must be a number of proxy hops (0-10), got "${text}"`,
      'stocklock serve',
    );
  }
  return hops;
}

/** Where the port came from, so the message names what to change: `--port` or STOCKLOCK_PORT. */
export function portSource(command: Command): string {
  return flagSource(command, 'port', '--port', 'STOCKLOCK_PORT');
}

/** `--port` checked before anything is opened: a bad value must not leave a new database behind. */
export function parsePort(text: string, command: Command): number {
  const port = Number(text);
  if (!/^\d+$/.test(text.trim()) || port > 65_535) {
    throw new UsageError(
      `port "${text}" from ${portSource(command)} is not a port number (0-65535; 0 picks a free one)`,
      `stocklock ${command.name()}`,
    );
  }
  return port;
}
