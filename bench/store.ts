// Scenarios 1 and 2: SqliteStore's reserve and checkout against the limit (the smallest safe raw transaction),
// the store's own statements replayed raw (captured at run time), and a careful raw reserve and checkout.
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSqliteStore, type SqliteStore } from '../src/storage/sqlite/store.js';
import {
  captureShop,
  compileReplay,
  freshFor,
  freshShop,
  label,
  type Script,
  type ShopScripts,
} from './capture.js';
import { MinimalHttpSession, type RunningServer, startStocklockHttp } from './clients.js';
import {
  benchCatalog,
  benchStoreOptions,
  concurrentThroughput,
  fmt,
  HOT_SKU,
  interleaved,
  type RunSettings,
  roundRobin,
  type Section,
  SPREAD_SKUS,
  type Sync,
  section,
  spreadSku,
} from './lib.js';
import { carefulShop, openRaw, prepareDatabase, smallestSafe } from './raw.js';
import { openUnbatchedStore } from './unbatched-store.js';

export { openRaw, prepareDatabase } from './raw.js';

const CTX = { channel: 'bench' };
const SYNCS: Sync[] = ['NORMAL', 'FULL'];

type Contestant = 'store' | 'limit' | 'replay' | 'careful';

/** Each contestant's reserve of `sku` and checkout of the cart (or held unit) that reserve returned. */
interface Shop {
  reserve(sku: string, i: number): Promise<unknown> | unknown;
  /** Reserves `count` units (untimed), then returns the checkouts to time, one per unit. */
  prepareCheckouts(count: number, skuOf: (i: number) => string): Promise<(() => unknown)[]>;
  close(): Promise<void> | void;
}

function storeShop(store: SqliteStore): Shop {
  return {
    reserve: (sku) => store.addToCart(CTX, { sku, quantity: 1 }),
    prepareCheckouts: async (count, skuOf) => {
      const carts: string[] = [];
      for (let i = 0; i < count; i++)
        carts.push((await store.addToCart(CTX, { sku: skuOf(i), quantity: 1 })).cart_id);
      return carts.map((cartId) => () => store.checkout(CTX, { cartId }));
    },
    close: () => store.close(),
  };
}

function limitShop(db: Database.Database): Shop {
  const limit = smallestSafe(db);
  return {
    reserve: (sku) => limit.reserve(sku, Date.now()),
    prepareCheckouts: async (count, skuOf) => {
      const skus = Array.from({ length: count }, (_, i) => skuOf(i));
      for (const sku of skus) limit.reserve(sku, Date.now());
      return skus.map((sku) => () => limit.sale(sku, Date.now()));
    },
    close: () => {
      db.close();
    },
  };
}

function carefulRawShop(db: Database.Database): Shop {
  const shop = carefulShop(db);
  return {
    reserve: (sku) => shop.reserve(sku, Date.now()),
    prepareCheckouts: async (count, skuOf) => {
      const carts = Array.from({ length: count }, (_, i) => shop.reserve(skuOf(i), Date.now()).id);
      return carts.map((cartId) => () => shop.checkout(cartId, Date.now()));
    },
    close: () => {
      db.close();
    },
  };
}

/** The store's captured statements for each SKU, replayed with fresh ids and times. */
function replayShop(db: Database.Database, scripts: Map<string, ShopScripts>): Shop {
  const compiled = new Map(
    [...scripts].map(([sku, { reserve, checkout }]) => [
      sku,
      {
        reserve,
        checkout,
        scripts: { reserve, checkout },
        runReserve: compileReplay(db, reserve),
        runCheckout: compileReplay(db, checkout),
      },
    ]),
  );
  const of = (sku: string) => {
    const found = compiled.get(sku);
    if (!found) throw new Error(`no captured script for ${sku}`);
    return found;
  };
  return {
    reserve: (sku) => {
      const { reserve, runReserve } = of(sku);
      runReserve(freshFor(reserve, Date.now()));
    },
    prepareCheckouts: async (count, skuOf) => {
      const checkouts: (() => unknown)[] = [];
      for (let i = 0; i < count; i++) {
        const { checkout, runReserve, runCheckout, scripts } = of(skuOf(i));
        const fresh = freshShop(scripts, Date.now());
        runReserve(fresh.reserve);
        checkouts.push(() => runCheckout({ ...fresh.checkout, shift: Date.now() - checkout.startedAt }));
      }
      return checkouts;
    },
    close: () => {
      db.close();
    },
  };
}

/** Statements per transaction, BEGIN and COMMIT included, as SQLite's `verbose` trace counts them. */
async function countStatements(dir: string, run: (db: Database.Database) => void): Promise<number> {
  const path = join(dir, `count-${Math.random().toString(36).slice(2)}.db`);
  await prepareDatabase(path, 'NORMAL');
  let n = 0;
  let on = false;
  const db = openRaw(path, 'NORMAL', () => {
    if (on) n += 1;
  });
  try {
    on = true;
    run(db);
    return n;
  } finally {
    db.close();
  }
}

export async function storeScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    '1–2. Store transactions (one process)',
    'Reserve = `addToCart` into a new cart (one unit); checkout = the sale of a one-line cart. "hot" reserves one ' +
      'SKU every time, "1,000 SKUs" walks the catalog. Every contestant has its own database file made the same ' +
      'way, WAL mode, the synchronous mode of the row, one connection, prepared statements in one `BEGIN IMMEDIATE`. ' +
      '**limit**: the smallest transaction that can reserve without overselling, a conditional ' +
      '`UPDATE products SET reserved = reserved + 1 WHERE sku = ? AND on_hand - reserved >= 1` plus the ledger ' +
      '`INSERT` (checkout: `UPDATE … SET on_hand = on_hand - 1, reserved = reserved - 1 WHERE … AND reserved >= 1` ' +
      'plus the ledger row): how far stocklock is from what SQLite can do. **replay**: the statements the store ' +
      'ran for the same call, captured from it in this run and replayed with fresh ids and times (no stocklock ' +
      "code). **careful raw**: issue 15's reference, the same rows as the store (cart, line, product, channel " +
      'counter, ledger, the expired-holds scan from the expiry index) written carefully on raw statements ' +
      '(`carefulShop` in bench/raw.ts). The four take turns call by call for the whole measurement (the order ' +
      "rotating every round; a checkout's turn first makes its cart, untimed), so a busy moment of the shared " +
      'machine falls on all of them alike: tx/s is 10⁶ ÷ the mean µs per call, not a median of windows.',
    [
      'transaction',
      'SKUs',
      'synchronous',
      'stocklock tx/s',
      'limit tx/s',
      'stocklock ÷ limit',
      'replay tx/s',
      'stocklock ÷ replay',
      'careful raw tx/s',
      'stocklock ÷ careful (goal ≥ 0.7×)',
    ],
  );
  const allSkus = [HOT_SKU, ...Array.from({ length: SPREAD_SKUS }, (_, i) => spreadSku(i))];
  const scripts = await captureShop(settings.dir, allSkus, benchStoreOptions('NORMAL'));
  const hot = scripts.get(HOT_SKU) as ShopScripts;

  const counts = {
    limitReserve: await countStatements(settings.dir, (db) => smallestSafe(db).reserve(HOT_SKU, Date.now())),
    careful: await countStatements(settings.dir, (db) => {
      const shop = carefulShop(db);
      const { id } = shop.reserve(HOT_SKU, Date.now());
      return shop.checkout(id, Date.now());
    }),
  };
  const carefulReserveCount = await countStatements(settings.dir, (db) =>
    carefulShop(db).reserve(HOT_SKU, Date.now()),
  );

  const headline: Record<Sync, number> = { NORMAL: Number.NaN, FULL: Number.NaN };
  const versusReplay: number[] = [];
  const versusCareful: number[] = [];
  for (const sync of SYNCS) {
    const pathOf = (who: Contestant) => join(settings.dir, `${who}-${sync}.db`);
    for (const who of ['store', 'limit', 'replay', 'careful'] as const)
      await prepareDatabase(pathOf(who), sync);
    const shops: Record<Contestant, Shop> = {
      store: storeShop(openSqliteStore(pathOf('store'), benchStoreOptions(sync))),
      limit: limitShop(openRaw(pathOf('limit'), sync)),
      replay: replayShop(openRaw(pathOf('replay'), sync), scripts),
      careful: carefulRawShop(openRaw(pathOf('careful'), sync)),
    };
    // Contestants take turns call by call, so a busy moment of the shared machine hits them all alike.
    const turnsMs = settings.windowMs * settings.repeats * Object.keys(shops).length;
    try {
      for (const spread of [false, true]) {
        const skuOf = spread ? spreadSku : () => HOT_SKU;
        const rate = (us: Record<Contestant, number>) =>
          Object.fromEntries(Object.entries(us).map(([who, t]) => [who, 1e6 / (t as number)])) as Record<
            Contestant,
            number
          >;
        const reserve = rate(
          await roundRobin(
            turnsMs,
            Object.fromEntries(
              Object.entries(shops).map(([who, shop]) => [
                who,
                (round: number) => shop.reserve(skuOf(round), round),
              ]),
            ) as Record<Contestant, (round: number) => unknown>,
          ),
        );
        // A checkout's turn first reserves its cart (untimed), then times the checkout alone.
        const checkout = rate(
          await roundRobin(
            turnsMs,
            Object.fromEntries(
              Object.keys(shops).map((who) => [who, (_: number, sell: unknown) => (sell as () => unknown)()]),
            ) as Record<Contestant, (round: number, prepared: unknown) => unknown>,
            Object.fromEntries(
              Object.entries(shops).map(([who, shop]) => [
                who,
                async (round: number) => (await shop.prepareCheckouts(1, () => skuOf(round)))[0],
              ]),
            ) as Record<Contestant, (round: number) => Promise<unknown>>,
          ),
        );
        for (const [name, figures] of [
          ['reserve', reserve],
          ['checkout', checkout],
        ] as const) {
          const toLimit = figures.store / figures.limit;
          const toReplay = figures.store / figures.replay;
          const toCareful = figures.store / figures.careful;
          if (name === 'reserve' && !spread) headline[sync] = toLimit;
          versusReplay.push(toReplay);
          versusCareful.push(toCareful);
          out.rows.push([
            name,
            spread ? '1,000' : 'hot',
            sync,
            fmt.rate(figures.store),
            fmt.rate(figures.limit),
            fmt.ratio(toLimit),
            fmt.rate(figures.replay),
            fmt.ratio(toReplay),
            fmt.rate(figures.careful),
            `${fmt.ratio(toCareful)} ${toCareful >= 0.7 ? 'met' : 'missed'}`,
          ]);
        }
      }
    } finally {
      for (const shop of Object.values(shops)) await shop.close();
    }
  }
  out.goals.push(
    {
      name: 'Headline: store reserve (hot) vs. the smallest safe raw transaction',
      target: 'a distance, not a goal',
      measured: `${fmt.ratio(headline.NORMAL)} (NORMAL), ${fmt.ratio(headline.FULL)} (FULL)`,
    },
    {
      name: 'Store transaction vs. its own statements replayed raw',
      target: '≥ 0.7×',
      measured: `worst ${fmt.ratio(Math.min(...versusReplay))}`,
      met: Math.min(...versusReplay) >= 0.7,
    },
    {
      name: 'Store reserve and checkout vs. the careful raw reference (issue 15)',
      target: '≥ 0.7×',
      measured: `worst ${fmt.ratio(Math.min(...versusCareful))}`,
      met: Math.min(...versusCareful) >= 0.7,
    },
  );
  out.notes.push(
    `Statements per transaction, BEGIN and COMMIT included, counted by SQLite's trace (better-sqlite3 \`verbose\`): ` +
      `the store's reserve ${hot.reserve.trace.length} and checkout ${hot.checkout.trace.length}; the replay runs ` +
      'exactly those (checked in this run: replayed as captured on a second database, SQLite traced the same ' +
      `statements with the same values for all ${scripts.size * 2} captured calls); the limit ${counts.limitReserve} ` +
      `per reserve; the careful raw reserve ${carefulReserveCount} and checkout ${counts.careful - carefulReserveCount}.`,
  );
  return [out, await breakdownScenario(settings, hot.reserve), await groupCommitScenario(settings)];
}

/**
 * Where a reserve's time goes: the store's captured reserve replayed with a timer after every statement, beside
 * the store with and without its writers queue and the limit, all on their own files, measured alternately.
 */
async function breakdownScenario(settings: RunSettings, script: Script): Promise<Section> {
  const out = section(
    '2b. A reserve, statement by statement',
    "The store's hot-SKU reserve (a new cart, one unit), as captured from the store in this run, replayed on raw " +
      'prepared statements with a clock read after every statement: microseconds per reserve spent in each ' +
      '(BEGIN IMMEDIATE takes the lock; COMMIT writes the WAL, and with FULL waits for its fsync; both include ' +
      "SQLite's automatic checkpoints as they fall). Below them, per reserve: the replay untimed, the store " +
      'without its writers queue (`queueWriters: false`) and with it (as it runs), and the limit. The differences ' +
      'are what stocklock adds around the same statements: its JavaScript (input checks, ids, the cart view, the ' +
      "async call) and the queue's file locks.",
    ['#', 'statement', ...SYNCS.map((sync) => `${sync} µs`)],
  );
  const perStep = new Map<Sync, number[]>();
  const perReserve = new Map<Sync, Record<string, number>>();
  for (const sync of SYNCS) {
    const pathOf = (who: string) => join(settings.dir, `breakdown-${who}-${sync}.db`);
    for (const who of ['queued', 'unqueued', 'timed', 'replay', 'limit'])
      await prepareDatabase(pathOf(who), sync);
    const queued = openSqliteStore(pathOf('queued'), benchStoreOptions(sync));
    const unqueued = openSqliteStore(pathOf('unqueued'), benchStoreOptions(sync, { queueWriters: false }));
    const timedDb = openRaw(pathOf('timed'), sync);
    const replayDb = openRaw(pathOf('replay'), sync);
    const limitDb = openRaw(pathOf('limit'), sync);
    const sums = new Float64Array(script.steps.length);
    let timedRuns = 0;
    let last = 0;
    const timed = compileReplay(timedDb, script, (i) => {
      const now = performance.now();
      sums[i] = (sums[i] ?? 0) + (now - last);
      last = now;
    });
    const untimed = compileReplay(replayDb, script);
    const limit = smallestSafe(limitDb);
    try {
      const spent = await roundRobin(settings.windowMs * settings.repeats * 5, {
        timed: () => {
          const fresh = freshFor(script, Date.now());
          last = performance.now();
          timed(fresh);
          timedRuns += 1;
        },
        replay: () => untimed(freshFor(script, Date.now())),
        unqueued: () => unqueued.addToCart(CTX, { sku: HOT_SKU, quantity: 1 }),
        queued: () => queued.addToCart(CTX, { sku: HOT_SKU, quantity: 1 }),
        limit: () => limit.reserve(HOT_SKU, Date.now()),
      });
      perStep.set(
        sync,
        Array.from(sums, (sum) => (sum * 1000) / timedRuns),
      );
      perReserve.set(sync, spent);
    } finally {
      await queued.close();
      await unqueued.close();
      for (const db of [timedDb, replayDb, limitDb]) db.close();
    }
  }
  const us = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(1));
  script.steps.forEach((step, i) => {
    out.rows.push([
      String(i + 1),
      `\`${label(step.sql)}\``,
      ...SYNCS.map((sync) => us(perStep.get(sync)?.[i])),
    ]);
  });
  const of = (sync: Sync, who: string) => perReserve.get(sync)?.[who] ?? Number.NaN;
  const sumOf = (sync: Sync) => (perStep.get(sync) ?? []).reduce((a, b) => a + b, 0);
  const row = (name: string, value: (sync: Sync) => number) =>
    out.rows.push(['', name, ...SYNCS.map((sync) => us(value(sync)))]);
  row('**all statements** (sum of the rows above; timers included)', sumOf);
  row('the same replay untimed, per reserve', (sync) => of(sync, 'replay'));
  row('stocklock without the writers queue, per reserve', (sync) => of(sync, 'unqueued'));
  row('stocklock as it runs (writers queue), per reserve', (sync) => of(sync, 'queued'));
  row(
    "→ stocklock's JavaScript around the statements (without queue − replay)",
    (sync) => of(sync, 'unqueued') - of(sync, 'replay'),
  );
  row(
    '→ the writers queue (as it runs − without queue)',
    (sync) => of(sync, 'queued') - of(sync, 'unqueued'),
  );
  row('the limit (conditional UPDATE + ledger INSERT), per reserve', (sync) => of(sync, 'limit'));
  out.notes.push(
    'The five take turns call by call (each on its own file, the order rotating every round), so a busy moment ' +
      'of the shared machine falls on all of them alike; each figure is the mean µs per call over the whole run.',
  );
  return out;
}

/** Concurrent callers of one store in scenario 2c (issue 15: 32). */
export const CONCURRENT_CALLERS = 32;

/**
 * Group commit: 32 concurrent callers reserve on one store, with writes batched into shared transactions (as it
 * runs) and unbatched (every write its own transaction, as before group commit), FULL and NORMAL, each on its own
 * file, measured in alternating windows.
 */
export async function groupCommitScenario(settings: RunSettings): Promise<Section> {
  const out = section(
    `2c. Group commit: ${CONCURRENT_CALLERS} concurrent callers`,
    `${CONCURRENT_CALLERS} async callers each \`addToCart\` one unit of the hot SKU into a new cart, back to back, on ` +
      'one store in this process. **batched**: writes that arrive while a batch runs share the next IMMEDIATE ' +
      'transaction, each in its own savepoint, one COMMIT (one WAL sync with FULL) per batch, every call answered ' +
      'after it (src/storage/sqlite/group-commit.ts). **unbatched**: `groupCommit: false`, every write its own ' +
      'transaction, as before. Each contestant has its own file; windows alternate, the order rotating; medians.',
    ['store', 'synchronous', 'reserves/s', '÷ unbatched FULL', '÷ batched NORMAL', 'writes per COMMIT'],
  );
  type Who = 'unbatchedFull' | 'batchedFull' | 'batchedNormal' | 'unbatchedNormal';
  const setups: Record<Who, { sync: Sync; batched: boolean }> = {
    unbatchedFull: { sync: 'FULL', batched: false },
    batchedFull: { sync: 'FULL', batched: true },
    batchedNormal: { sync: 'NORMAL', batched: true },
    unbatchedNormal: { sync: 'NORMAL', batched: false },
  };
  const stores = {} as Record<Who, SqliteStore>;
  for (const [who, { sync, batched }] of Object.entries(setups) as [Who, (typeof setups)[Who]][]) {
    const path = join(settings.dir, `group-${who}.db`);
    await prepareDatabase(path, sync);
    stores[who] = batched
      ? openSqliteStore(path, benchStoreOptions(sync))
      : await openUnbatchedStore(path, benchStoreOptions(sync));
  }
  try {
    const rates = await interleaved(
      settings.repeats * 2,
      Object.fromEntries(
        (Object.keys(setups) as Who[]).map((who) => [
          who,
          () =>
            concurrentThroughput(CONCURRENT_CALLERS, settings.windowMs, () =>
              stores[who].addToCart(CTX, { sku: HOT_SKU, quantity: 1 }),
            ),
        ]),
      ) as Record<Who, () => Promise<number>>,
    );
    for (const who of Object.keys(setups) as Who[]) {
      const { sync, batched } = setups[who];
      const stats = stores[who].groupCommitStats();
      out.rows.push([
        batched ? 'batched' : 'unbatched',
        sync,
        fmt.rate(rates[who]),
        fmt.ratio(rates[who] / rates.unbatchedFull),
        fmt.ratio(rates[who] / rates.batchedNormal),
        batched ? (stats.writes / stats.batches).toFixed(1) : '1',
      ]);
    }
    const gain = rates.batchedFull / rates.unbatchedFull;
    out.goals.push({
      name: `Group commit: FULL store throughput, ${CONCURRENT_CALLERS} concurrent callers, vs. unbatched FULL`,
      target: '≥ 3×',
      measured: fmt.ratio(gain),
      met: gain >= 3,
    });
    await oneCallerRows(settings, out);
    await httpRows(settings, out, rates.unbatchedFull);
    out.notes.push(
      `Batched FULL ÷ batched NORMAL: ${fmt.ratio(rates.batchedFull / rates.batchedNormal)}. Writes per COMMIT is ` +
        "the mean over the whole run (warm-up included), from the store's own counter.",
    );
  } finally {
    for (const store of Object.values(stores)) await store.close();
  }
  return out;
}

/**
 * Group commit over HTTP: a `stocklock serve --http` per synchronous mode, 32 sessions of the minimal keep-alive
 * client (bench/clients.ts) each calling add_to_cart (a new cart, one unit) back to back; alternating windows. The
 * unbatched baseline exists only in this process (bench/unbatched-store.ts), so it has no HTTP row.
 */
async function httpRows(settings: RunSettings, out: Section, unbatchedFull: number): Promise<void> {
  type Who = 'batchedNormal' | 'batchedFull';
  const setups: Record<Who, Sync> = { batchedNormal: 'NORMAL', batchedFull: 'FULL' };
  const servers: RunningServer[] = [];
  try {
    const sessions = {} as Record<Who, MinimalHttpSession[]>;
    for (const [who, sync] of Object.entries(setups) as [Who, Sync][]) {
      const db = join(settings.dir, `group-http-${who}.db`);
      await prepareDatabase(db, sync);
      const server = await startStocklockHttp(db, sync);
      servers.push(server);
      sessions[who] = await Promise.all(
        Array.from({ length: CONCURRENT_CALLERS }, () => MinimalHttpSession.open(server.url, server.token)),
      );
    }
    const rates = await interleaved(
      settings.repeats * 2,
      Object.fromEntries(
        (Object.keys(setups) as Who[]).map((who) => [
          who,
          () =>
            concurrentThroughput(CONCURRENT_CALLERS, settings.windowMs, (worker) =>
              (sessions[who][worker] as MinimalHttpSession).call('add_to_cart', {
                sku: HOT_SKU,
                quantity: 1,
              }),
            ),
        ]),
      ) as Record<Who, () => Promise<number>>,
    );
    for (const who of Object.keys(setups) as Who[]) {
      out.rows.push([
        'HTTP, batched',
        setups[who],
        fmt.rate(rates[who]),
        fmt.ratio(rates[who] / unbatchedFull),
        fmt.ratio(rates[who] / rates.batchedNormal),
        '',
      ]);
    }
    const ratio = rates.batchedFull / rates.batchedNormal;
    out.goals.push({
      name: `Group commit: add_to_cart over HTTP, ${CONCURRENT_CALLERS} clients, FULL vs. NORMAL`,
      target: '≥ 0.9×',
      measured: fmt.ratio(ratio),
      met: ratio >= 0.9,
    });
    await Promise.all(Object.values(sessions).flatMap((list) => list.map((session) => session.close())));
  } finally {
    for (const server of servers) await server.stop();
  }
}

/**
 * What group commit costs a caller who is alone: one sequential caller, batched and unbatched stores taking turns
 * call by call (each on its own file). A lone write still waits one turn of the event loop (setImmediate) for
 * others to join it, and runs without a savepoint.
 */
async function oneCallerRows(settings: RunSettings, out: Section): Promise<void> {
  for (const sync of SYNCS) {
    const stores = {
      batched: openSqliteStore(join(settings.dir, `alone-batched-${sync}.db`), benchStoreOptions(sync)),
      unbatched: await openUnbatchedStore(
        join(settings.dir, `alone-unbatched-${sync}.db`),
        benchStoreOptions(sync),
      ),
    };
    try {
      for (const store of Object.values(stores))
        await store.importProducts({ channel: 'cli' }, benchCatalog());
      const us = await roundRobin(settings.windowMs * settings.repeats * 2, {
        batched: () => stores.batched.addToCart(CTX, { sku: HOT_SKU, quantity: 1 }),
        unbatched: () => stores.unbatched.addToCart(CTX, { sku: HOT_SKU, quantity: 1 }),
      });
      out.rows.push(
        ['one caller, batched', sync, fmt.rate(1e6 / us.batched), '', '', '1'],
        ['one caller, unbatched', sync, fmt.rate(1e6 / us.unbatched), '', '', '1'],
      );
      out.notes.push(
        `One sequential caller, ${sync}: batched ÷ unbatched ${fmt.ratio(us.unbatched / us.batched)} ` +
          `(${(us.batched - us.unbatched).toFixed(1)} µs per call between them; batched pays the wait of one ` +
          'event-loop turn for writes to join, and the lock-free sold-out glance).',
      );
    } finally {
      for (const store of Object.values(stores)) await store.close();
    }
  }
}
