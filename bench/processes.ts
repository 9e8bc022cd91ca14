// Scenario 3: 2, 4 and 8 processes reserving one hot SKU in a loop on one SQLite file, through SqliteStore, beside
// the same SQL waiting in SQLite's own busy handler, and beside the same processes each on a file of its own.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureShop, type Script } from './capture.js';
import {
  benchStoreOptions,
  type Child,
  fmt,
  HOT_SKU,
  median,
  percentile,
  type RunSettings,
  type Section,
  type Sync,
  section,
  spawnNode,
} from './lib.js';
import { prepareDatabase } from './raw.js';

const WORKER = fileURLToPath(new URL('./processes-worker.ts', import.meta.url));

interface ContentionFigures {
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  busy: number;
}

type Contender = 'shared' | 'polling' | 'busy-handler' | 'separate';

const CONTENDERS: Record<
  Contender,
  { worker: 'store' | 'store-polling' | 'sqlite-busy-handler'; label: string }
> = {
  shared: { worker: 'store', label: 'stocklock' },
  polling: { worker: 'store-polling', label: 'stocklock without the writers queue (retries only)' },
  'busy-handler': { worker: 'sqlite-busy-handler', label: 'SQLite busy handler' },
  separate: { worker: 'store', label: 'stocklock, a file per process (no shared lock)' },
};

interface Report {
  latencies: number[];
  busy: number;
  failed: number;
  lastError: string;
  elapsedMs: number;
}

/** One run: the first `processes` workers open their files, start together, reserve for `windowMs`, report. */
async function contend(
  workers: Child[],
  contender: Contender,
  template: string,
  dir: string,
  sync: Sync,
  processes: number,
  windowMs: number,
  script: Script,
): Promise<ContentionFigures> {
  const files = Array.from({ length: processes }, (_, i) =>
    join(dir, contender === 'separate' ? `own-${i}.db` : 'shared.db'),
  );
  for (const file of new Set(files)) copyFileSync(template, file);
  const team = workers.slice(0, processes);
  team.forEach((w, i) => {
    w.send({ open: { mode: CONTENDERS[contender].worker, db: files[i], sync, windowMs, script } });
  });
  await Promise.all(team.map((w) => w.next()));
  for (const w of team) w.send({ go: true });
  const reports = await Promise.all(team.map((w) => w.next<Report>()));
  const failedWith = reports.find((r) => r.failed > 0)?.lastError;
  if (failedWith) throw new Error(`a ${contender} worker failed: ${failedWith}`);
  const latencies = Float64Array.from(reports.flatMap((r) => r.latencies)).sort();
  const elapsed = Math.max(...reports.map((r) => r.elapsedMs));
  return {
    throughput: (latencies.length * 1000) / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? Number.NaN,
    busy: reports.reduce((sum, r) => sum + r.busy, 0),
  };
}

export async function processesScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    '3. Processes on one SQLite file',
    'N processes (child_process) each reserve the hot SKU in a loop, one call at a time, each through its own ' +
      'SqliteStore on one database file. Latency is per call, waiting for the lock included; throughput is all ' +
      'processes together. stocklock queues its writers first come, first served (a kernel file lock, ' +
      '`src/storage/sqlite/writer-queue.ts`); beside it, the same store without that queue, waiting by jittered ' +
      "retries alone (what stocklock did before). Baseline: the store's own statements (captured from it in this run) waiting in SQLite's own busy handler " +
      '(`busy_timeout = 5000`). ' +
      'Control: the same N processes each on a file of its own, so nobody waits for a lock: what is left is the ' +
      'cost of N busy processes sharing the cores.',
    [
      'processes',
      'synchronous',
      'contender',
      'tx/s',
      'p50 ms',
      'p99 ms',
      'max ms',
      'STORE_BUSY / SQLITE_BUSY',
    ],
  );
  const repeats = settings.quick ? 1 : 3;
  const windowMs = settings.quick ? 300 : 1_000;
  const syncs: Sync[] = settings.quick ? ['NORMAL'] : ['NORMAL', 'FULL'];
  const counts = settings.quick ? [2] : [2, 4, 8];
  const order = Object.keys(CONTENDERS) as Contender[];
  let worst = { max: 0, where: '' };
  let refusals = 0;
  const captured = await captureShop(settings.dir, [HOT_SKU], benchStoreOptions('NORMAL'));
  const script = captured.get(HOT_SKU)?.reserve as Script;
  // Spawned once and reused: a run only opens a database in each, so start-up is not in the figures.
  const workers = Array.from({ length: Math.max(...counts) }, () => spawnNode(WORKER));
  try {
    for (const sync of syncs) {
      // Every run starts from a copy of one prepared file.
      const template = join(settings.dir, `procs-template-${sync}.db`);
      await prepareDatabase(template, sync);
      for (const processes of counts) {
        const runs = new Map<Contender, ContentionFigures[]>(order.map((c) => [c, []]));
        for (let r = 0; r < repeats; r++) {
          for (let k = 0; k < order.length; k++) {
            const contender = order[(r + k) % order.length] as Contender;
            const dir = join(settings.dir, `procs-${contender}-${sync}-${processes}-${r}`);
            mkdirSync(dir);
            runs
              .get(contender)
              ?.push(await contend(workers, contender, template, dir, sync, processes, windowMs, script));
          }
        }
        for (const contender of order) {
          const figures = runs.get(contender) ?? [];
          const m = (pick: (f: ContentionFigures) => number) => median(figures.map(pick));
          if (contender === 'shared') {
            if (m((f) => f.max) > worst.max) {
              const control = median((runs.get('separate') ?? []).map((f) => f.max));
              worst = {
                max: m((f) => f.max),
                where: `${processes} processes, ${sync}; control with no shared lock ${fmt.ms(control)} ms`,
              };
            }
            refusals += figures.reduce((sum, f) => sum + f.busy, 0);
          }
          out.rows.push([
            String(processes),
            sync,
            CONTENDERS[contender].label,
            fmt.rate(m((f) => f.throughput)),
            fmt.ms(m((f) => f.p50)),
            fmt.ms(m((f) => f.p99)),
            fmt.ms(m((f) => f.max)),
            contender === 'separate' ? '—' : String(m((f) => f.busy)),
          ]);
        }
      }
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  out.goals.push(
    {
      name: 'Processes: max latency (median of repeats, worst N)',
      target: '≤ 50 ms',
      measured: `${fmt.ms(worst.max)} ms (${worst.where})`,
      met: worst.max <= 50,
    },
    {
      name: 'Processes: STORE_BUSY refusals (all runs)',
      target: '0',
      measured: String(refusals),
      met: refusals === 0,
    },
  );
  return [out];
}
