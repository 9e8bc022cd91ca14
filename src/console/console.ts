// The merchant console at /console: composes its session gate, its page APIs and the live feed into one router.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { CatalogError } from '../catalog.js';
import type { Clock } from '../domain/clock.js';
import { ErrorCode, StockError } from '../domain/errors.js';
import type { Logger } from '../logger.js';
import type { ConsoleQueries } from '../storage/console-queries.js';
import type { InventoryStore } from '../storage/store.js';
import { apiError, type ConsoleContext, type PageRoutes, stockErrorStatus } from './context.js';
import { ChangeFeed, DEFAULT_THROTTLE_MS } from './events.js';
import { guard, LiveTokens, sessionGate } from './middleware.js';
import { auditRoutes } from './routes/audit.js';
import { channelsRoutes } from './routes/channels.js';
import { holdsRoutes } from './routes/holds.js';
import { importRoutes } from './routes/import.js';
import { ledgerRoutes } from './routes/ledger.js';
import { ordersRoutes } from './routes/orders.js';
import { shellRoutes } from './routes/shell.js';
import { signInRoutes } from './routes/sign-in.js';
import { stockRoutes } from './routes/stock.js';
import { type ConsoleSession, DEFAULT_SESSION_LIMITS, type SessionLimits, SessionTable } from './sessions.js';

export { CONSOLE_CHANNEL } from './context.js';
export { SESSION_COOKIE } from './middleware.js';

export interface ConsoleOptions {
  store: InventoryStore;
  queries: ConsoleQueries;
  logger: Logger;
  /** The address merchants reach the server at; https makes the session cookie Secure. */
  publicUrl?: string;
  sessions?: Partial<SessionLimits>;
  /** Changes closer together than this reach the pages as one event. */
  throttleMs?: number;
  /** Largest catalog the import page accepts. */
  maxImportBytes?: number;
  /** Defaults to the store's clock. */
  clock?: Clock;
}

export interface ConsoleHandle {
  /** Mount at /console. */
  router: Router;
  /** Ends every live stream and the change watch; the store and queries stay open (the caller owns them). */
  close(): Promise<void>;
}

const DEFAULT_MAX_IMPORT_BYTES = 20 * 1024 * 1024;

/**
 * One entry per page, in the nav's order (pages.ts lists the same names, public/console/pages/ holds the
 * browser side): a new page is one routes file here, one module there, and its name in both lists.
 */
const PAGES: PageRoutes[] = [
  stockRoutes,
  holdsRoutes,
  ordersRoutes,
  channelsRoutes,
  ledgerRoutes,
  importRoutes,
  auditRoutes,
];

export function createConsole(options: ConsoleOptions): ConsoleHandle {
  const { store, queries, logger } = options;
  const clock = options.clock ?? store.options.clock;
  const limits = { ...DEFAULT_SESSION_LIMITS, ...options.sessions };
  const sessions = new SessionTable(queries.sessions, limits, () => clock.now());
  const tokens = new LiveTokens({ store, clock });
  const feed = new ChangeFeed(
    queries,
    options.throttleMs ?? DEFAULT_THROTTLE_MS,
    async () => {
      if (sessions.size === 0) return;
      tokens.forget();
      for (const tokenId of sessions.tokenIds()) {
        if (!(await tokens.has(tokenId))) await sessions.deleteByToken(tokenId);
      }
      // A sign-out or expiry on another server removed the row: this server's pages of it end too.
      await sessions.recheck();
    },
    clock,
  );
  const ctx: ConsoleContext = {
    store,
    queries,
    logger,
    clock,
    sessions,
    feed,
    cookieBase: {
      httpOnly: true,
      sameSite: 'strict',
      secure: options.publicUrl?.startsWith('https:') ?? false,
      path: '/console',
    },
    sessionTtlMs: limits.ttlMs,
    maxImportBytes: options.maxImportBytes ?? DEFAULT_MAX_IMPORT_BYTES,
    forgetLiveTokens: () => tokens.forget(),
  };
  const gate = sessionGate(ctx, tokens);

  const router = express.Router();
  router.use(guard);
  shellRoutes(router, gate);
  signInRoutes(router, ctx, gate);

  // Everything under /api needs a live session; state-changing requests also need its CSRF token.
  const api = express.Router();
  api.use(gate.requireSession, (req, res, next) => {
    res.set('Cache-Control', 'no-store');
    if (req.method === 'GET' || req.method === 'HEAD') next();
    else gate.requireCsrf(req, res, next);
  });
  api.get('/events', (_req, res) => {
    const session = res.locals.session as ConsoleSession;
    feed.open(res, () => sessions.live(session));
  });
  for (const routes of PAGES) routes(api, ctx);
  api.use((_req, res) => apiError(res, 404, 'NOT_FOUND', 'No such console endpoint.'));
  router.use('/api', api);
  router.use(errorAnswer(ctx));

  return {
    router,
    async close() {
      feed.close();
    },
  };
}

/** Refusals a person can act on are answered as such; anything else is logged and kept vague. */
function errorAnswer(ctx: ConsoleContext) {
  return (err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof StockError) {
      apiError(res, stockErrorStatus(err.code), err.code, err.message, err.details);
      return;
    }
    if (err instanceof CatalogError) {
      apiError(res, 400, ErrorCode.INVALID_INPUT, err.message, { problems: [err.message] });
      return;
    }
    const { type, status } = (err ?? {}) as { type?: string; status?: number };
    if (type === 'entity.too.large') {
      apiError(
        res,
        413,
        'TOO_LARGE',
        `The file or request is too large (at most ${ctx.maxImportBytes} bytes for an import).`,
      );
      return;
    }
    if (type === 'entity.parse.failed') {
      apiError(res, 400, ErrorCode.INVALID_INPUT, 'The request body is not valid JSON.');
      return;
    }
    if (typeof status === 'number' && status >= 400 && status < 500) {
      apiError(res, status, 'BAD_REQUEST', (err as Error).message);
      return;
    }
    ctx.logger.error({ err }, 'console request failed');
    apiError(res, 500, 'INTERNAL', 'Internal error; the server log has the details.');
  };
}
