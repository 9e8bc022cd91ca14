// One process of the multi-process scenario: reserves in a loop on a shared SQLite file and reports every latency.
// Usage: processes-worker.ts store|sqlite-busy-handler DB FULL|NORMAL WINDOW_MS; starts on {"go":true} from stdin.
import { isStockError } from '../src/domain/errors.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { benchStoreOptions, HOT_SKU, parentMessages, reply, type Sync } from './lib.js';
import { openRaw, rawShop } from './store.js';

const [mode = 'store', db = '', sync = 'NORMAL', window = '1000'] = process.argv.slice(2);
const windowMs = Number(window);
const ctx = { channel: `proc-${process.pid}` };

type Reserve = () => Promise<unknown> | unknown;
let reserve: Reserve;
let close: () => Promise<void> | void;
if (mode === 'store') {
  const store = openSqliteStore(db, benchStoreOptions(sync as Sync));
  reserve = () => store.addToCart(ctx, { sku: HOT_SKU, quantity: 1 });
  close = () => store.close();
} else {
  // The baseline: the same SQL waiting in SQLite's own busy handler, which sleeps in steps up to 100 ms.
  const raw = openRaw(db, sync as Sync, undefined, 5_000);
  const shop = rawShop(raw, ctx.channel);
  reserve = () => shop.reserve(HOT_SKU, Date.now());
  close = () => {
    raw.close();
  };
}

parentMessages(async (message) => {
  if (!message.go) return;
  const latencies: number[] = [];
  let busy = 0;
  let failed = 0;
  let lastError = '';
  const started = performance.now();
  const deadline = started + windowMs;
  while (performance.now() < deadline) {
    const t0 = performance.now();
    try {
      await reserve();
    } catch (error) {
      if (isStockError(error) && error.code === 'STORE_BUSY') busy += 1;
      else {
        failed += 1;
        lastError = String(error);
      }
    }
    latencies.push(Math.round((performance.now() - t0) * 100) / 100);
  }
  const elapsedMs = performance.now() - started;
  await close();
  reply({ latencies, busy, failed, lastError, elapsedMs });
  process.exit(0);
});
reply({ ready: true });
