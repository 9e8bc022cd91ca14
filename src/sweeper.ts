// Background upkeep: releases expired carts and unpaid orders past pay_by, forgets idempotency records past their
// retention, prunes dead OAuth records and
// expired MCP sessions.
import { IDEMPOTENCY_RETENTION_MS } from './domain/rules.js';
import type { Logger } from './logger.js';
import type { InventoryStore } from './storage/store.js';

/**
 * One round of upkeep: expired carts released, orders past pay_by cancelled, idempotency records past
 * IDEMPOTENCY_RETENTION_MS dropped, OAuth codes, grants and registrations nobody can use any more dropped
 * (OAUTH_RETENTION), MCP sessions past their expiry.
 */
export async function sweepOnce(store: InventoryStore, logger: Logger): Promise<void> {
  const swept = await store.sweepExpired();
  if (swept.carts > 0) logger.info(swept, 'released expired carts');
  const overdue = await store.sweepOverdueOrders();
  if (overdue.orders > 0) logger.info(overdue, 'cancelled orders past their payment time');
  await store.pruneIdempotency(IDEMPOTENCY_RETENTION_MS);
  const pruned = await store.oauth.prune(store.options.clock.now());
  if (pruned.codes + pruned.grants + pruned.clients > 0) logger.info(pruned, 'pruned spent OAuth records');
  const sessions = await store.mcpSessions.prune(store.options.clock.now());
  if (sessions > 0) logger.info({ sessions }, 'pruned expired MCP sessions');
}

export function startSweeper(store: InventoryStore, intervalMs: number, logger: Logger): () => Promise<void> {
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = (async () => {
      try {
        await sweepOnce(store, logger);
      } catch (error) {
        // A busy store now is fine: the next tick tries again, and writes release expired holds themselves.
        logger.warn({ err: error }, 'sweep failed');
      } finally {
        running = undefined;
      }
    })();
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
