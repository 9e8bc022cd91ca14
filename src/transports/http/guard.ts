// The DNS-rebinding guard: which binds are safe, and which Host and Origin headers a request may carry.
/*
 * Binding beyond loopback needs allowedHosts. Host must be a loopback name with the port we listen
 * on, or match allowedHosts (an entry `name` matches any port, `name:port` only that port,
 * `https://name` is matched by hostname). An absent Origin is fine (non-browser clients send none);
 * a present one must be a loopback origin or match allowedHosts (a full origin entry must match
 * exactly). Both checks answer 403 JSON before the body is read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../logger.js';
import { sendRpcError } from './replies.js';

const LOOPBACK_BIND = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);
/** Loopback as WHATWG URL spells hostnames (IPv6 in brackets). */
const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', '[::1]', 'localhost']);

interface HostRule {
  hostname: string;
  port?: string;
  /** Set when the entry was a full origin (scheme://host[:port]): Origin must equal it. */
  origin?: string;
}

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_BIND.has(host.toLowerCase());
}

/** Throws, with the flag to fix, on a bind that would expose the server unguarded. */
export function assertSafeBind(options: {
  host: string;
  auth: boolean;
  allowedHosts: string[];
  publicUrl?: string;
}): void {
  const loopback = isLoopbackHost(options.host);
  if (!options.auth && !loopback) {
    throw new Error(
      `--no-auth is refused on ${options.host}: without tokens the server may only bind to loopback (127.0.0.1, ::1, localhost).`,
    );
  }
  if (!loopback && options.allowedHosts.length === 0) {
    throw new Error(
      `Binding to ${options.host} needs --allowed-hosts: list the host names clients use to reach this server (e.g. --allowed-hosts shop.example.com), so DNS rebinding cannot reach it.`,
    );
  }
  if (!loopback && options.publicUrl?.trim().toLowerCase().startsWith('http:')) {
    throw new Error(
      `--public-url ${options.publicUrl} is plain http while the server binds to ${options.host}: tokens, codes and the console's cookie would cross the network in clear. Give the https origin of the TLS proxy in front (e.g. --public-url https://shop.example.com), or bind to loopback (--host 127.0.0.1).`,
    );
  }
  if (options.auth && !loopback && !options.publicUrl) {
    throw new Error(
      `Binding to ${options.host} needs --public-url: the https origin clients reach this server at (e.g. --public-url https://shop.example.com), which names the OAuth issuer and resource.`,
    );
  }
}

/** True for a URL whose host is loopback (http://127.0.0.1:3000, http://localhost:3000). */
export function isLoopbackUrl(url: string): boolean {
  return LOOPBACK_HOSTNAMES.has(new URL(url).hostname);
}

function parseHostRule(entry: string): HostRule {
  const text = entry.trim().toLowerCase();
  try {
    if (text.includes('://')) {
      const url = new URL(text);
      if (url.pathname !== '/' || url.search || url.hash) throw new Error('not an origin');
      return { hostname: url.hostname, origin: url.origin };
    }
    const url = new URL(`http://${text}`);
    if (url.pathname !== '/' || url.search || url.hash || url.username) throw new Error('not a host');
    return { hostname: url.hostname, port: url.port || undefined };
  } catch {
    throw new Error(
      `allowed host "${entry}" is not a host name, host:port or origin (e.g. shop.example.com, shop.example.com:8443, https://shop.example.com)`,
    );
  }
}

function effectivePort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}

function hostAllowed(hostHeader: string | undefined, listenPort: number, rules: HostRule[]): boolean {
  if (!hostHeader) return false;
  let url: URL;
  try {
    url = new URL(`http://${hostHeader}`);
  } catch {
    return false;
  }
  if (url.username || url.pathname !== '/') return false;
  if (LOOPBACK_HOSTNAMES.has(url.hostname) && effectivePort(url) === String(listenPort)) return true;
  return rules.some(
    (rule) => rule.hostname === url.hostname && (rule.port === undefined || rule.port === effectivePort(url)),
  );
}

function originAllowed(origin: string | undefined, rules: HostRule[]): boolean {
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // includes the opaque "null" origin of sandboxed frames and file: pages
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (LOOPBACK_HOSTNAMES.has(url.hostname)) return true;
  return rules.some((rule) =>
    rule.origin !== undefined
      ? rule.origin === url.origin
      : rule.hostname === url.hostname && (rule.port === undefined || rule.port === effectivePort(url)),
  );
}

/**
 * Middleware (express, or plain node:http) that answers 403 to a foreign Host or Origin. Throws at once on a malformed
 * allowedHosts entry; `listenPort` is read per request because port 0 is bound only later.
 */
export function hostGuard(
  allowedHosts: string[],
  listenPort: () => number,
  logger: Logger,
): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  const rules = allowedHosts.map(parseHostRule);
  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    header: 'Host' | 'Origin',
    logMessage: string,
  ) => {
    const value = header === 'Host' ? req.headers.host : req.headers.origin;
    logger.warn({ [header.toLowerCase()]: value, ip: req.socket.remoteAddress }, logMessage);
    sendRpcError(
      res,
      403,
      -32000,
      `Forbidden: ${header} "${value ?? ''}" is not allowed (see --allowed-hosts).`,
    );
  };
  return (req, res, next) => {
    if (!hostAllowed(req.headers.host, listenPort(), rules)) {
      refuse(req, res, 'Host', 'refused a request for a foreign Host');
    } else if (!originAllowed(req.headers.origin, rules)) {
      refuse(req, res, 'Origin', 'refused a request from a foreign Origin');
    } else {
      next();
    }
  };
}
