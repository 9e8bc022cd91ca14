// The merchant console at /console: sign-in, CSRF, the JSON the pages read, the actions they take, the live feed.
/*
 * Decisions, each the rule plus its reason:
 *
 * - Sign-in takes an admin token (the same credential as the admin tools); a customer token is refused,
 *   because a console sees and changes every channel. The session cookie is HttpOnly, SameSite=Strict,
 *   Path=/console, Secure when the public URL is https. Sessions live in the database (console_sessions),
 *   so every server on it accepts the cookie and a restart signs nobody out; only the SHA-256 of the
 *   cookie's secret and of the CSRF token (derived from that secret) are stored.
 * - A session ends at sign-out, after `ttlMs`, after `idleMs` without a request, or when its admin token
 *   is revoked (checked against the store at most every few seconds).
 * - CSRF: every state-changing request carries the session's token (header X-CSRF-Token or form field
 *   _csrf), compared in constant time; the sign-in form uses a double-submit cookie because there is no
 *   session yet. SameSite=Strict alone is not enough: other ports of localhost are "same site".
 * - Every action goes through the InventoryStore, so each rule and ledger movement lives in one place;
 *   the console's own stock changes are recorded under the channel "console".
 * - Reads come from a connection of the console's own (ConsoleQueries), so the store is not asked to
 *   serve page views; the live feed is pushed (server-sent events), never polled by the browser.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { allowHost, denyHost, isGrantId } from '../auth/admin.js';
import { effectiveHosts, normalizeHost } from '../auth/hosts.js';
import { clientAddressKey, limiterFor, setRetryAfter } from '../auth/limits.js';
import { CatalogError, catalogFormat, checkCatalog } from '../catalog.js';
import { assertChannel, CHANNEL_PATTERN } from '../config.js';
import { ErrorCode, isStockError, StockError } from '../domain/errors.js';
import { DEFAULT_RATE_LIMITS } from '../domain/limits.js';
import { MAX_STOCK } from '../domain/rules.js';
import { MovementKind } from '../domain/types.js';
import type { Logger } from '../logger.js';
import type { ConsoleMovement, ConsoleQueries, LedgerFilter } from '../storage/console-queries.js';
import { hashToken } from '../storage/shared.js';
import type { InventoryStore } from '../storage/store.js';
import { ChangeFeed, DEFAULT_THROTTLE_MS } from './events.js';
import { shellPage, signInPage } from './pages.js';
import {
  type ConsoleSession,
  DEFAULT_SESSION_LIMITS,
  randomSecret,
  type SessionLimits,
  SessionTable,
  sameSecret,
} from './sessions.js';

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
}

export interface ConsoleHandle {
  /** Mount at /console. */
  router: Router;
  /** Ends every live stream and the change watch; the store and queries stay open (the caller owns them). */
  close(): Promise<void>;
}

/** The channel the console's own stock changes are recorded under in the ledger. */
export const CONSOLE_CHANNEL = { channel: 'console' };
export const SESSION_COOKIE = 'stocklock_console';
const SIGN_IN_COOKIE = 'stocklock_console_signin';
const COOKIE_PATH = '/console';
const TOKEN_CHECK_MS = 5_000;
const STOCK_LIMIT = 500;
const HOLDS_LIMIT = 200;
const LEDGER_PAGE = 100;
const CSV_BATCH = 1_000;
const DEFAULT_MAX_IMPORT_BYTES = 20 * 1024 * 1024;
const ASSETS = fileURLToPath(new URL('../../public/console/', import.meta.url));
const ASSET_TYPES: Record<string, string> = {
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  // Not no-referrer: Chromium then sends "Origin: null" on form posts, which the Origin check refuses.
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
};

const quantity = (min: number) =>
  z
    .number({ error: 'quantity must be a whole number' })
    .int('quantity must be a whole number')
    .min(min, `quantity must be at least ${min}`)
    .max(MAX_STOCK, `quantity must be at most ${MAX_STOCK}`);
const note = z.string().trim().max(500, 'note must be at most 500 characters').optional();
const restockBody = z.strictObject({ quantity: quantity(1), note });
const setStockBody = z.strictObject({ quantity: quantity(0), note });
const tokenBody = z.strictObject({
  channel: z
    .string()
    .regex(CHANNEL_PATTERN, 'channel must be 1-64 of a-z 0-9 . _ - starting with a letter or digit'),
  admin: z.boolean().default(false),
  label: z.string().trim().max(100, 'label must be at most 100 characters').optional(),
});
/** channel null denies the host, as `oauth deny` does. */
const hostBody = z.strictObject({
  host: z.string().trim().min(1, 'host is required').max(253, 'host must be at most 253 characters'),
  channel: z.string().trim().nullable(),
});
const GRANT_REVOKE_REASON = 'revoked in the console';
const KINDS = Object.values(MovementKind) as string[];

function cookies(req: Request): Record<string, string> {
  const jar: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    const name = part.slice(0, at).trim();
    try {
      jar[name] = decodeURIComponent(part.slice(at + 1).trim());
    } catch {
      // a malformed cookie is no cookie
    }
  }
  return jar;
}

function apiError(res: Response, status: number, code: string, message: string, details: object = {}): void {
  res.status(status).json({ error: { code, message, ...details } });
}

function stockErrorStatus(code: string): number {
  if (code === ErrorCode.UNKNOWN_SKU || code === ErrorCode.CART_NOT_FOUND) return 404;
  if (code === ErrorCode.INVALID_INPUT) return 400;
  if (code === ErrorCode.STORE_BUSY) return 503;
  return 409;
}

function invalid(res: Response, error: z.ZodError): void {
  apiError(res, 400, ErrorCode.INVALID_INPUT, error.issues.map((issue) => issue.message).join('; '), {
    fields: error.issues.map((issue) => ({ field: issue.path.join('.'), problem: issue.message })),
  });
}

/** A CSV cell: quoted when needed, and text that a spreadsheet would run as a formula is defused. */
function csvCell(value: string | number | null, text: boolean): string {
  if (value === null) return '';
  let cell = String(value);
  if (text && /^[=+\-@\t\r]/.test(cell)) cell = `'${cell}`;
  return /[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

const CSV_COLUMNS: [keyof ConsoleMovement, boolean][] = [
  ['id', false],
  ['at', false],
  ['sku', true],
  ['kind', false],
  ['quantity', false],
  ['on_hand_delta', false],
  ['reserved_delta', false],
  ['channel', true],
  ['cart_id', true],
  ['order_id', true],
  ['note', true],
];

function csvLine(m: ConsoleMovement): string {
  return `${CSV_COLUMNS.map(([key, text]) =>
    key === 'at' ? new Date(m.at).toISOString() : csvCell(m[key], text),
  ).join(',')}\r\n`;
}

export function createConsole(options: ConsoleOptions): ConsoleHandle {
  const { store, queries, logger } = options;
  const secure = options.publicUrl?.startsWith('https:') ?? false;
  const sessions = new SessionTable(queries.sessions, { ...DEFAULT_SESSION_LIMITS, ...options.sessions });
  // Revoked tokens end their sessions. A token found live is trusted for a few seconds; one not found is
  // asked about again at once, so a token made a moment ago (after the list was read) signs in.
  let liveTokens: { ids: Promise<Set<string>>; at: number } | undefined;
  function readLiveTokens(): Promise<Set<string>> {
    const ids = store
      .listTokens()
      .then((list) => new Set(list.filter((t) => t.admin && t.revoked_at === null).map((t) => t.id)));
    liveTokens = { ids, at: Date.now() };
    ids.catch(() => {
      liveTokens = undefined;
    });
    return ids;
  }
  async function tokenLive(tokenId: string): Promise<boolean> {
    if (liveTokens && Date.now() - liveTokens.at <= TOKEN_CHECK_MS && (await liveTokens.ids).has(tokenId)) {
      return true;
    }
    return (await readLiveTokens()).has(tokenId);
  }

  const feed = new ChangeFeed(queries, options.throttleMs ?? DEFAULT_THROTTLE_MS, async () => {
    if (sessions.size === 0) return;
    liveTokens = undefined;
    for (const tokenId of sessions.tokenIds()) {
      if (!(await tokenLive(tokenId))) await sessions.deleteByToken(tokenId);
    }
    // A sign-out or expiry on another server removed the row: this server's pages of it end too.
    await sessions.recheck();
  });
  const maxImportBytes = options.maxImportBytes ?? DEFAULT_MAX_IMPORT_BYTES;
  const cookieBase = { httpOnly: true, sameSite: 'strict' as const, secure, path: COOKIE_PATH };

  async function currentSession(
    req: Request,
  ): Promise<{ session: ConsoleSession; secret: string } | undefined> {
    const secret = cookies(req)[SESSION_COOKIE];
    const session = await sessions.find(secret);
    if (!session || !secret) return undefined;
    if (!(await tokenLive(session.tokenId))) {
      await sessions.deleteByToken(session.tokenId);
      feed.sweep();
      return undefined;
    }
    return { session, secret };
  }

  function csrfFrom(req: Request): string | undefined {
    const header = req.headers['x-csrf-token'];
    if (typeof header === 'string') return header;
    const body = req.body as { _csrf?: unknown } | undefined;
    return typeof body?._csrf === 'string' ? body._csrf : undefined;
  }

  function sendSignIn(res: Response, status: number, problem?: string): void {
    const csrf = randomSecret();
    res.cookie(SIGN_IN_COOKIE, csrf, { ...cookieBase, maxAge: 3_600_000 });
    res.status(status).type('html').send(signInPage(csrf, problem));
  }

  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '8kb' });
  const json = express.json({ limit: '64kb' });

  router.use((req, res, next) => {
    res.set(SECURITY_HEADERS);
    // A browser says when a request comes from another site; such a request never reaches a handler.
    if (req.headers['sec-fetch-site'] === 'cross-site') {
      apiError(res, 403, 'FORBIDDEN', 'Cross-site requests are not accepted by the console.');
      return;
    }
    next();
  });

  router.get('/assets/:name', (req, res) => {
    const name = String(req.params.name);
    const type = ASSET_TYPES[name];
    const path = `${ASSETS}${name}`;
    if (!type || !existsSync(path)) {
      res.status(404).type('text').send('Not found');
      return;
    }
    res.set({ 'Content-Type': type, 'Cache-Control': 'no-cache' }).send(readFileSync(path));
  });

  router.get('/', async (req, res) => {
    // Relative links (assets/, api/) resolve under /console/ wherever a proxy mounts it.
    if (!req.originalUrl.split('?')[0]?.endsWith('/')) {
      res.redirect(303, `${req.baseUrl}/`);
      return;
    }
    res.set('Cache-Control', 'no-store');
    const found = await currentSession(req);
    if (!found) {
      sendSignIn(res, 200);
      return;
    }
    res.type('html').send(shellPage(found.session.csrf, found.session.channel));
  });

  router.post('/sign-in', form, async (req, res) => {
    res.set('Cache-Control', 'no-store');
    // Failed sign-ins count per address; past the limit even the right token waits.
    const rate = (store.options.rateLimits ?? DEFAULT_RATE_LIMITS).consoleSignIn;
    const failures = limiterFor(store.limiter, 'console-sign-in', rate);
    const limited = await failures?.check(clientAddressKey(req));
    if (limited && !limited.allowed) {
      logger.warn({ ip: req.ip }, 'console sign-in refused: rate limit');
      setRetryAfter(res, limited.retryAfterMs);
      sendSignIn(res, 429, 'Too many failed sign-ins from this address. Wait a few minutes, then try again.');
      return;
    }
    const body = (req.body ?? {}) as { token?: unknown; _csrf?: unknown };
    const expected = cookies(req)[SIGN_IN_COOKIE];
    if (!expected || !sameSecret(typeof body._csrf === 'string' ? body._csrf : undefined, expected)) {
      logger.warn({ ip: req.socket.remoteAddress }, 'console sign-in refused: missing or wrong CSRF token');
      sendSignIn(res, 403, 'The form expired or cookies are blocked. Reload the page and sign in again.');
      return;
    }
    const token = typeof body.token === 'string' ? body.token.trim() : '';
    const record = token ? await store.verifyToken(token) : undefined;
    if (!record) {
      await failures?.consume(clientAddressKey(req));
      logger.warn({ ip: req.socket.remoteAddress }, 'console sign-in refused: unknown or revoked token');
      sendSignIn(res, 401, 'That token is unknown or revoked.');
      return;
    }
    if (!record.admin) {
      logger.warn({ tokenId: record.id, channel: record.channel }, 'console sign-in refused: customer token');
      sendSignIn(
        res,
        403,
        `That is a customer token (channel "${record.channel}"). The console needs an admin token: npx stocklock token create --channel ops --admin`,
      );
      return;
    }
    const { secret } = await sessions.create(record.id, record.channel);
    logger.info({ tokenId: record.id, channel: record.channel }, 'console sign-in');
    res.clearCookie(SIGN_IN_COOKIE, cookieBase);
    res.cookie(SESSION_COOKIE, secret, {
      ...cookieBase,
      maxAge: options.sessions?.ttlMs ?? DEFAULT_SESSION_LIMITS.ttlMs,
    });
    res.redirect(303, './');
  });

  /** Everything below needs a live session; state-changing requests also need its CSRF token. */
  const requireSession = async (req: Request, res: Response, next: NextFunction) => {
    const found = await currentSession(req);
    if (!found) {
      res.set('Cache-Control', 'no-store');
      apiError(res, 401, 'SIGNED_OUT', 'Sign in again: the session ended or was never started.');
      return;
    }
    res.locals.session = found.session;
    res.locals.secret = found.secret;
    next();
  };
  const requireCsrf = (req: Request, res: Response, next: NextFunction) => {
    const session = res.locals.session as ConsoleSession;
    const given = csrfFrom(req);
    if (given === undefined || !sameSecret(hashToken(given), session.csrfHash)) {
      logger.warn(
        { path: req.path, tokenId: session.tokenId },
        'console request refused: missing or wrong CSRF token',
      );
      apiError(
        res,
        403,
        'CSRF',
        'Refused: the request lacks this page’s CSRF token. Reload the page and try again.',
      );
      return;
    }
    next();
  };

  router.post('/sign-out', form, requireSession, requireCsrf, async (_req, res) => {
    const session = res.locals.session as ConsoleSession;
    await sessions.delete(res.locals.secret as string);
    feed.sweep();
    logger.info({ tokenId: session.tokenId }, 'console sign-out');
    res.clearCookie(SESSION_COOKIE, cookieBase);
    res.redirect(303, './');
  });

  const api = express.Router();
  api.use(requireSession, (req, res, next) => {
    res.set('Cache-Control', 'no-store');
    if (req.method === 'GET' || req.method === 'HEAD') next();
    else requireCsrf(req, res, next);
  });

  api.get('/events', (_req, res) => {
    const session = res.locals.session as ConsoleSession;
    feed.open(res, () => sessions.live(session));
  });

  api.get('/stock', async (req, res) => {
    const search = typeof req.query.q === 'string' ? req.query.q.slice(0, 100) : '';
    const products = await queries.stock(search, STOCK_LIMIT);
    res.json({ now: await queries.now(), products, limit: STOCK_LIMIT });
  });

  api.post('/stock/:sku/restock', json, async (req, res) => {
    const parsed = restockBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const level = await store.restock(CONSOLE_CHANNEL, {
      sku: String(req.params.sku),
      quantity: parsed.data.quantity,
      note: parsed.data.note || undefined,
    });
    res.json({ level });
  });

  api.post('/stock/:sku/set', json, async (req, res) => {
    const parsed = setStockBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const level = await store.setStock(CONSOLE_CHANNEL, {
      sku: String(req.params.sku),
      quantity: parsed.data.quantity,
      note: parsed.data.note || undefined,
    });
    res.json({ level });
  });

  api.get('/holds', async (_req, res) => {
    res.json({ now: await queries.now(), carts: await queries.holds(HOLDS_LIMIT), limit: HOLDS_LIMIT });
  });

  api.post('/holds/:cartId/release', json, async (req, res) => {
    const cartId = String(req.params.cartId);
    const owner = await queries.cartOwner(cartId);
    if (owner === undefined) {
      apiError(res, 404, ErrorCode.CART_NOT_FOUND, `No cart has id "${cartId}".`, { cart_id: cartId });
      return;
    }
    // Released as its own channel and holder: the store's rules for the cart's owner apply unchanged.
    const result = await store.releaseCart(owner, { cartId });
    logger.info(
      { cart: cartId, channel: owner.channel, released: result.released },
      'console released a cart',
    );
    res.json(result);
  });

  api.get('/channels', async (_req, res) => {
    const [activity, tokens, grants, rules] = await Promise.all([
      queries.channelActivity(7),
      store.listTokens(),
      queries.grants(),
      store.oauth.hostRules(),
    ]);
    res.json({ now: await queries.now(), ...activity, tokens, grants, hosts: effectiveHosts(rules) });
  });

  api.post('/grants/:id/revoke', json, async (req, res) => {
    const id = String(req.params.id);
    // The store drops the grant's access and refresh tokens with it: the client is refused from now on.
    const revoked =
      isGrantId(id) && (await store.oauth.revokeGrant(id, store.options.clock.now(), GRANT_REVOKE_REASON));
    if (!revoked) {
      apiError(res, 404, 'GRANT_NOT_FOUND', `No live OAuth grant has id "${id}".`, { id });
      return;
    }
    logger.info({ grantId: id }, 'console revoked an OAuth grant');
    res.json({ revoked: id });
  });

  // The host map is edited by the same functions as `stocklock oauth allow` and `oauth deny`.
  api.post('/oauth-hosts', json, async (req, res) => {
    const parsed = hostBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const { host, channel } = parsed.data;
    try {
      // The checks allowHost/denyHost and the CLI apply, made first so a refusal changes nothing.
      normalizeHost(host);
      if (channel !== null) assertChannel(channel);
    } catch (error) {
      apiError(res, 400, ErrorCode.INVALID_INPUT, (error as Error).message);
      return;
    }
    const now = store.options.clock.now();
    const saved =
      channel === null
        ? await denyHost(store.oauth, host, now)
        : await allowHost(store.oauth, host, channel, now);
    logger.info(
      { host: saved, channel },
      channel === null ? 'console denied an OAuth host' : 'console allowed an OAuth host',
    );
    res.json({ host: saved, channel });
  });

  api.post('/tokens', json, async (req, res) => {
    const parsed = tokenBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const { channel, admin, label } = parsed.data;
    const issued = await store.createToken(channel, admin, label || undefined);
    logger.info({ tokenId: issued.record.id, channel, admin }, 'console created a token');
    // The secret leaves the server this once; the store keeps only its hash.
    res.status(201).json(issued);
  });

  api.post('/tokens/:id/revoke', json, async (req, res) => {
    const id = String(req.params.id);
    const revoked = await store.revokeToken(id);
    if (!revoked) {
      apiError(res, 404, 'TOKEN_NOT_FOUND', `No live token has id "${id}".`, { id });
      return;
    }
    liveTokens = undefined;
    await sessions.deleteByToken(id);
    feed.sweep();
    logger.info({ tokenId: id }, 'console revoked a token');
    res.json({ revoked: id });
  });

  function ledgerFilter(req: Request, limit: number): LedgerFilter | string {
    const text = (name: string) => {
      const value = req.query[name];
      return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
    };
    const kind = text('kind');
    if (kind !== undefined && !KINDS.includes(kind)) return `kind must be one of ${KINDS.join(', ')}`;
    const before = text('before');
    const beforeId = before === undefined ? undefined : Number(before);
    if (beforeId !== undefined && !Number.isSafeInteger(beforeId)) return 'before must be a movement id';
    return {
      sku: text('sku'),
      channel: text('channel'),
      kind: kind as MovementKind | undefined,
      beforeId,
      limit,
    };
  }

  api.get('/ledger', async (req, res) => {
    const filter = ledgerFilter(req, LEDGER_PAGE);
    if (typeof filter === 'string') return apiError(res, 400, ErrorCode.INVALID_INPUT, filter);
    res.json({ movements: await queries.ledger(filter), page: LEDGER_PAGE });
  });

  api.get('/ledger.csv', async (req, res) => {
    const filter = ledgerFilter(req, CSV_BATCH);
    if (typeof filter === 'string') return apiError(res, 400, ErrorCode.INVALID_INPUT, filter);
    res.set({
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="stocklock-ledger-${new Date(await queries.now()).toISOString().slice(0, 10)}.csv"`,
    });
    res.write(`${CSV_COLUMNS.map(([key]) => key).join(',')}\r\n`);
    // Newest first in batches by id, so a long export never holds a read open or the whole ledger in memory.
    let beforeId = filter.beforeId;
    for (;;) {
      const batch = await queries.ledger({ ...filter, beforeId });
      if (batch.length === 0 || res.destroyed) break;
      const ok = res.write(batch.map(csvLine).join(''));
      if (!ok) await new Promise((resume) => res.once('drain', resume));
      beforeId = batch[batch.length - 1]?.id;
      if (batch.length < CSV_BATCH) break;
    }
    res.end();
  });

  api.post('/import', express.text({ type: () => true, limit: maxImportBytes }), async (req, res) => {
    const text = typeof req.body === 'string' ? req.body : '';
    if (text.trim() === '') {
      apiError(res, 400, ErrorCode.INVALID_INPUT, 'The file is empty.', { problems: ['the file is empty'] });
      return;
    }
    const { catalog, problems } = checkCatalog(text, catalogFormat(text, req.headers['content-type']));
    if (problems.length > 0) {
      apiError(
        res,
        400,
        ErrorCode.INVALID_INPUT,
        `Nothing was imported: ${problems.length} line(s) failed.`,
        {
          problems,
        },
      );
      return;
    }
    try {
      const result = await store.importProducts(CONSOLE_CHANNEL, catalog.rows);
      logger.info({ ...result, rows: catalog.rows.length }, 'console imported a catalog');
      res.json({ ...result, rows: catalog.rows.length });
    } catch (error) {
      // The store names the failing row by its index; the merchant needs the line of the file.
      const row = isStockError(error) ? error.details.row : undefined;
      if (!isStockError(error) || typeof row !== 'number') throw error;
      const message = error.message.replace(/^row \d+: /, `${catalog.where[row - 1]}: `);
      apiError(res, stockErrorStatus(error.code), error.code, `Nothing was imported: ${message}`, {
        problems: [message],
      });
    }
  });

  api.post('/audit', json, async (_req, res) => {
    res.json(await store.audit());
  });

  api.use((_req, res) => apiError(res, 404, 'NOT_FOUND', 'No such console endpoint.'));

  router.use('/api', api);

  // Refusals a person can act on are answered as such; anything else is logged and kept vague.
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
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
        `The file or request is too large (at most ${maxImportBytes} bytes for an import).`,
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
    logger.error({ err }, 'console request failed');
    apiError(res, 500, 'INTERNAL', 'Internal error; the server log has the details.');
  });

  return {
    router,
    async close() {
      feed.close();
    },
  };
}
