// Who a request counts against for rate limits, and the 429 it gets past one.
import type { Request, Response } from 'express';
import ipaddr from 'ipaddr.js';
import type { Rate, RateLimiter } from '../domain/limits.js';
import type { InventoryStore } from '../storage/store.js';

/**
 * The client address a limit counts against: express's `req.ip` (so `--trust-proxy` decides how many
 * X-Forwarded-For hops are believed), IPv4 as is, IPv6 by its /64, which one subscriber holds whole.
 */
export function clientAddressKey(req: Request): string {
  const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.process(address);
  } catch {
    return address;
  }
  if (ip.kind() === 'ipv4') return ip.toString();
  const parts = (ip as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16));
  return `${parts.join(':')}::/64`;
}

/** Retry-After in whole seconds (RFC 9110 §10.2.3), never 0: a client reading 0 would retry at once. */
export function setRetryAfter(res: Response, retryAfterMs: number): void {
  res.set('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
}

/** The limiter of `rate` named `name`, or undefined when the limit is off. */
export function limiterFor(
  limiter: InventoryStore['limiter'],
  name: string,
  rate: Rate | null,
): RateLimiter | undefined {
  return rate ? limiter(name, rate.points, rate.durationS) : undefined;
}
