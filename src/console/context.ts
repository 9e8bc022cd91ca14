// What every console route shares: the store, its reads, the session table, the live feed, and the error answers.
import type { Response, Router } from 'express';
import type { z } from 'zod';
import type { Clock } from '../domain/clock.js';
import { ErrorCode } from '../domain/errors.js';
import type { Logger } from '../logger.js';
import type { ConsoleQueries } from '../storage/console-queries.js';
import type { InventoryStore } from '../storage/store.js';
import type { ChangeFeed } from './events.js';
import type { SessionTable } from './sessions.js';

/** The channel the console's own stock changes are recorded under in the ledger. */
export const CONSOLE_CHANNEL = { channel: 'console' };

export interface CookieOptions {
  httpOnly: true;
  sameSite: 'strict';
  secure: boolean;
  path: string;
}

/**
 * Built once by createConsole and handed to every route module. Routes change stock only through `store`
 * (so each rule and ledger movement lives in one place) and read pages through `queries`.
 */
export interface ConsoleContext {
  store: InventoryStore;
  queries: ConsoleQueries;
  logger: Logger;
  clock: Clock;
  sessions: SessionTable;
  feed: ChangeFeed;
  /** Attributes of every cookie the console sets (Path=/console, HttpOnly, SameSite=Strict, Secure on https). */
  cookieBase: CookieOptions;
  /** How long a session cookie lives in the browser. */
  sessionTtlMs: number;
  maxImportBytes: number;
  /** Forgets the cached list of live admin tokens: the next check asks the store. */
  forgetLiveTokens(): void;
}

export function apiError(
  res: Response,
  status: number,
  code: string,
  message: string,
  details: object = {},
): void {
  res.status(status).json({ error: { code, message, ...details } });
}

export function stockErrorStatus(code: string): number {
  if (
    code === ErrorCode.UNKNOWN_SKU ||
    code === ErrorCode.CART_NOT_FOUND ||
    code === ErrorCode.ORDER_NOT_FOUND
  ) {
    return 404;
  }
  if (code === ErrorCode.INVALID_INPUT) return 400;
  if (code === ErrorCode.STORE_BUSY) return 503;
  return 409;
}

export function invalid(res: Response, error: z.ZodError): void {
  apiError(res, 400, ErrorCode.INVALID_INPUT, error.issues.map((issue) => issue.message).join('; '), {
    fields: error.issues.map((issue) => ({ field: issue.path.join('.'), problem: issue.message })),
  });
}

/** A page's API: the routes one console page reads and acts through, mounted under /console/api. */
export type PageRoutes = (api: Router, ctx: ConsoleContext) => void;
