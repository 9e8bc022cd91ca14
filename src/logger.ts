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
    pino.destination(2),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
