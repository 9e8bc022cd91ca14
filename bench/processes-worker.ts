// One process of the multi-process scenario, reused across runs: {"open": …} opens a database and answers
// {"ready": true}; {"go": true} reserves the hot SKU in a loop for the window and reports every latency.
import { isStockError } from '../src/domain/errors.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { compileReplay, freshFor, type Script } from './capture.js';
import { benchStoreOptions, HOT_SKU, parentMessages, reply, type Sync } from './lib.js';
import { openRaw } from './raw.js';

interface Open {
  mode: 'store' | 'store-polling' | 'sqlite-busy-handler';
  db: string;
  sync: Sync;
  windowMs: number;
  /** The store's reserve, captured by the parent: the busy-handler baseline replays it. */
  script: Script;
}

const ctx = { channel: `proc-${process.pid}` };
let run: { reserve: () => unknown; close: () => Promise<void> | void; windowMs: number } | undefined;

function open({ mode, db, sync, windowMs, script }: Open): void {
  if (mode === 'store' || mode === 'store-polling') {
    // store-polling: the same store without the writers queue, waiting by jittered retries alone.
    const store = openSqliteStore(db, benchStoreOptions(sync, { queueWriters: mode === 'store' }));
    run = {
      reserve: () => store.addToCart(ctx, { sku: HOT_SKU, quantity: 1 }),
      close: () => store.close(),
      windowMs,
    };
  } else {
    // The baseline: the store's statements waiting in SQLite's own busy handler, which sleeps in steps up to
    // 100 ms. The script was captured on the channel "bench"; each process sells as its own, as the store does.
    const raw = openRaw(db, sync, undefined, 5_000);
    const ownChannel: Script = { ...script, ids: [...script.ids, 'bench'] };
    const replay = compileReplay(raw, ownChannel);
    run = {
      reserve: () => {
        const fresh = freshFor(ownChannel, Date.now());
        fresh.ids.set('bench', ctx.channel);
        replay(fresh);
      },
      close: () => {
        raw.close();
      },
      windowMs,
    };
  }
}

async function go(): Promise<void> {
  if (!run) throw new Error('go before open');
  const { reserve, close, windowMs } = run;
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
  run = undefined;
  reply({ latencies, busy, failed, lastError, elapsedMs });
}

parentMessages((message) => {
  if (message.open) {
    open(message.open as Open);
    reply({ ready: true });
  } else if (message.go) {
    void go();
  }
});
process.stdin.on('end', () => process.exit(0));
