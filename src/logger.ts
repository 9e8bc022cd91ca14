// The one logger: JSON lines on stderr, because stdout belongs to the MCP protocol in stdio mode.
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = process.env.STOCKLOCK_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      base: { service: 'stocklock' },
      // Defence in depth: a token must never reach a log line even if someone logs a request.
      redact: {
        paths: ['token', 'authorization', '*.authorization', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    // Synchronous: a buffered destination flushes at exit and retries a write to a closed pipe forever, so a
    // server whose log reader died would never finish shutting down. Written at once, a closed pipe (EPIPE)
    // just ends the logging.
    pino.destination({ dest: 2, sync: true }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
