// Background upkeep: releases expired carts and forgets idempotency records past their retention.
import type { Logger } from './logger.js';
import type { InventoryStore } from './storage/store.js';

/** DESIGN keeps idempotency records at least 24 hours. */
export const IDEMPOTENCY_RETENTION_MS = 24 * 3_600_000;

export function startSweeper(store: InventoryStore, intervalMs: number, logger: Logger): () => Promise<void> {
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = (async () => {
      try {
        const swept = await store.sweepExpired();
        if (swept.carts > 0) logger.info(swept, 'released expired carts');
        await store.pruneIdempotency(IDEMPOTENCY_RETENTION_MS);
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
