// Two builds of the store side by side in one process: did a restructure slow the write path down?
// Usage: node --import tsx scripts/compare-stores.ts OLD_CHECKOUT [NEW_CHECKOUT=.] [--calls N] [--sync FULL|NORMAL]
// Each checkout's src/ is loaded as its own module graph; calls alternate one by one between the two
// stores (each on its own file in one temp directory), so load on a shared machine hits both alike.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { calls: { type: 'string', default: '4000' }, sync: { type: 'string', default: 'NORMAL' } },
});
const [oldRoot, newRoot = '.'] = positionals;
if (!oldRoot) throw new Error('usage: compare-stores.ts OLD_CHECKOUT [NEW_CHECKOUT]');
const calls = Number(values.calls);
const synchronous = values.sync === 'FULL' ? 'FULL' : 'NORMAL';

interface Contender {
  label: string;
  // biome-ignore lint/suspicious/noExplicitAny: two builds of one interface, typed by neither
  store: any;
  reserveNs: bigint;
  checkoutNs: bigint;
}

const dir = mkdtempSync(join(tmpdir(), 'stocklock-compare-'));
const ctx = { channel: 'bench' };
const SKUS = Array.from({ length: 100 }, (_, i) => `SKU-${i}`);

async function open(label: string, root: string): Promise<Contender> {
  const src = (file: string) => pathToFileURL(resolve(root, 'src', file)).href;
  const { openSqliteStore } = await import(src('storage/sqlite/store.ts'));
  const { systemClock } = await import(src('domain/clock.ts'));
  const { DEFAULT_LIMITS } = await import(src('domain/rules.ts'));
  const store = openSqliteStore(join(dir, `${label}.db`), {
    clock: systemClock,
    reservationTtlMs: 15 * 60_000,
    limits: { ...DEFAULT_LIMITS, maxChannelReserved: 1_000_000_000 },
    lockTimeoutMs: 5_000,
    synchronous,
  });
  await store.importProducts(
    ctx,
    SKUS.map((sku) => ({ sku, name: sku, price_minor: 100, currency: 'EUR', stock: 1_000_000 })),
  );
  return { label, store, reserveNs: 0n, checkoutNs: 0n };
}

const contenders = [await open('before', oldRoot), await open('after', newRoot)];
// Warm both JITs before timing.
for (let i = 0; i < 200; i++) {
  for (const c of contenders) {
    const cart = await c.store.addToCart(ctx, { sku: SKUS[i % SKUS.length], quantity: 1 });
    await c.store.checkout(ctx, { cartId: cart.cart_id });
  }
}
for (let i = 0; i < calls; i++) {
  const sku = SKUS[i % SKUS.length];
  // Alternate who goes first, so neither always meets the other's WAL checkpoint.
  const order = i % 2 === 0 ? contenders : [...contenders].reverse();
  for (const c of order) {
    let t = process.hrtime.bigint();
    const cart = await c.store.addToCart(ctx, { sku, quantity: 1 });
    const afterReserve = process.hrtime.bigint();
    c.reserveNs += afterReserve - t;
    t = afterReserve;
    await c.store.checkout(ctx, { cartId: cart.cart_id });
    c.checkoutNs += process.hrtime.bigint() - t;
  }
}
const perSecond = (ns: bigint) => Math.round((calls * 1e9) / Number(ns));
const [before, after] = contenders as [Contender, Contender];
console.log(`synchronous=${synchronous}, ${calls} reserve+checkout pairs each, alternating call by call`);
for (const c of contenders) {
  console.log(`${c.label.padEnd(7)} reserve ${perSecond(c.reserveNs)} tx/s, checkout ${perSecond(c.checkoutNs)} tx/s`);
}
console.log(
  `after/before: reserve ${(Number(before.reserveNs) / Number(after.reserveNs)).toFixed(2)}×, ` +
    `checkout ${(Number(before.checkoutNs) / Number(after.checkoutNs)).toFixed(2)}×`,
);
for (const c of contenders) {
  const report = await c.store.audit();
  if (!report.ok) throw new Error(`${c.label}: audit failed`);
  await c.store.close();
}
rmSync(dir, { recursive: true, force: true });
