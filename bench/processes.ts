// Scenario 3: 2, 4 and 8 processes reserving one hot SKU in a loop on one SQLite file, through SqliteStore
// (short busy timeout, asynchronous retries) beside the same SQL waiting in SQLite's own busy handler.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fmt,
  median,
  percentile,
  type RunSettings,
  type Section,
  type Sync,
  section,
  spawnNode,
} from './lib.js';
import { prepareDatabase } from './store.js';

const WORKER = fileURLToPath(new URL('./processes-worker.ts', import.meta.url));

export interface ContentionFigures {
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  busy: number;
  failed: number;
}

/** One run: `processes` workers start together, reserve for `windowMs`, and report every latency. */
export async function contend(
  mode: 'store' | 'sqlite-busy-handler',
  db: string,
  sync: Sync,
  processes: number,
  windowMs: number,
): Promise<ContentionFigures> {
  const workers = Array.from({ length: processes }, () =>
    spawnNode(WORKER, [mode, db, sync, String(windowMs)]),
  );
  try {
    await Promise.all(workers.map((w) => w.next()));
    for (const w of workers) w.send({ go: true });
    const reports = await Promise.all(
      workers.map((w) =>
        w.next<{ latencies: number[]; busy: number; failed: number; lastError: string; elapsedMs: number }>(),
      ),
    );
    const failedWith = reports.find((r) => r.failed > 0)?.lastError;
    if (failedWith) throw new Error(`a ${mode} worker failed: ${failedWith}`);
    const latencies = Float64Array.from(reports.flatMap((r) => r.latencies)).sort();
    const elapsed = Math.max(...reports.map((r) => r.elapsedMs));
    return {
      throughput: (latencies.length * 1000) / elapsed,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies[latencies.length - 1] ?? Number.NaN,
      busy: reports.reduce((sum, r) => sum + r.busy, 0),
      failed: reports.reduce((sum, r) => sum + r.failed, 0),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

export async function processesScenario(settings: RunSettings): Promise<Section[]> {
  const out = section(
    '3. Processes on one SQLite file',
    'N processes (child_process) each reserve the hot SKU in a loop, one call at a time, through their own ' +
      'SqliteStore on one database file. Latency is per call, waiting for the lock included. The baseline runs ' +
      "the same SQL with SQLite's own busy handler (`busy_timeout = 5000`). Throughput is all processes together.",
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
  const windowMs = settings.quick ? 300 : 2_000;
  const syncs: Sync[] = settings.quick ? ['NORMAL'] : ['NORMAL', 'FULL'];
  const counts = settings.quick ? [2] : [2, 4, 8];
  let worstMax = 0;
  let refusals = 0;
  for (const sync of syncs) {
    for (const processes of counts) {
      const runs: Record<string, ContentionFigures[]> = { store: [], 'sqlite-busy-handler': [] };
      for (let r = 0; r < repeats; r++) {
        for (const mode of (r % 2 === 0
          ? ['store', 'sqlite-busy-handler']
          : ['sqlite-busy-handler', 'store']) as ('store' | 'sqlite-busy-handler')[]) {
          const db = join(settings.dir, `procs-${mode}-${sync}-${processes}-${r}.db`);
          await prepareDatabase(db, sync);
          runs[mode]?.push(await contend(mode, db, sync, processes, windowMs));
        }
      }
      for (const [mode, figures] of Object.entries(runs)) {
        const m = (pick: (f: ContentionFigures) => number) => median(figures.map(pick));
        if (mode === 'store') {
          worstMax = Math.max(worstMax, ...figures.map((f) => f.max));
          refusals += figures.reduce((sum, f) => sum + f.busy, 0);
        }
        out.rows.push([
          String(processes),
          sync,
          mode === 'store' ? 'stocklock' : 'SQLite busy handler',
          fmt.rate(m((f) => f.throughput)),
          fmt.ms(m((f) => f.p50)),
          fmt.ms(m((f) => f.p99)),
          fmt.ms(m((f) => f.max)),
          String(m((f) => f.busy)),
        ]);
      }
    }
  }
  out.goals.push(
    {
      name: 'Processes: max latency (worst run, any N)',
      target: '≤ 50 ms',
      measured: `${fmt.ms(worstMax)} ms`,
      met: worstMax <= 50,
    },
    {
      name: 'Processes: STORE_BUSY refusals',
      target: '0',
      measured: String(refusals),
      met: refusals === 0,
    },
  );
  return [out];
}
