// What the endpoint handlers share: CORS for browser-based clients, body parsers, async routes, page headers.
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';

const MAX_FORM_BYTES = 16 * 1024;

/** Metadata, registration, token and revocation serve browser-based MCP clients too (no cookies involved). */
export const cors: RequestHandler = (_req, res, next) => {
  res.set({
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Headers': 'authorization, content-type, mcp-protocol-version',
    'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
  });
  next();
};

export const preflight: RequestHandler = (_req, res) => void res.sendStatus(204);

export const form = express.urlencoded({ extended: false, limit: MAX_FORM_BYTES, parameterLimit: 50 });
export const json = express.json({ limit: MAX_FORM_BYTES });

/** An async handler whose failures reach express's error handler instead of an unhandled rejection. */
export const asyncRoute =
  (fn: (req: Request, res: Response) => Promise<void>): RequestHandler =>
  (req: Request, res: Response, next: NextFunction) =>
    void fn(req, res).catch(next);

/** A POST body as a record of parameters (empty when there was none). */
export const bodyOf = (req: Request) => (req.body ?? {}) as Record<string, unknown>;

/** Headers of every page a person sees while signing in: no framing, no scripts, no caching. */
export function pageHeaders(res: Response, redirectUri?: string): void {
  let formTarget = '';
  if (redirectUri) {
    // Chromium applies form-action to the redirect after the POST as well: allow the client's origin.
    const url = new URL(redirectUri);
    formTarget = url.origin !== 'null' ? ` ${url.origin}` : ` ${url.protocol}`;
  }
  res.set({
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Security-Policy': `default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'${formTarget}; frame-ancestors 'none'; base-uri 'none'`,
    'X-Frame-Options': 'DENY',
    // Not no-referrer: browsers then send Origin: null on the form POST, which the Origin guard refuses.
    'Referrer-Policy': 'same-origin',
    'X-Content-Type-Options': 'nosniff',
  });
}
