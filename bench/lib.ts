// What every scenario shares: run settings, timing loops, statistics, result sections, child processes, temp files.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../src/domain/clock.js';
import { DEFAULT_LIMITS } from '../src/domain/rules.js';
import type { ImportRow } from '../src/domain/types.js';
import type { StoreOptions } from '../src/storage/store.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');

/** How long and how often to measure; --quick shrinks every figure so CI can smoke-test the code paths. */
export interface RunSettings {
  quick: boolean;
  /** Paired project/baseline measurements per figure; every figure reported is the median. */
  repeats: number;
  /** Length of one timed window for throughput figures. */
  windowMs: number;
  /** Scratch directory for databases; removed at the end. */
  dir: string;
}

export type Sync = 'FULL' | 'NORMAL';

/** PostgreSQL shares the two cores with the load; with 3 repeats its medians swung between 0.8× and 1.15×. */
export const POSTGRES_REPEATS = 7;

/** One table of BENCHMARKS.md: a heading, what it measures, its rows, and the goals it checks. */
export interface Section {
  title: string;
  intro: string;
  headers: string[];
  rows: string[][];
  notes: string[];
  goals: Goal[];
}

export interface Goal {
  name: string;
  target: string;
  measured: string;
  /** Left out for a figure reported beside the goals without one (a distance to a limit). */
  met?: boolean;
}

export function section(title: string, intro: string, headers: string[]): Section {
  return { title, intro, headers, rows: [], notes: [], goals: [] };
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Runs `op` back to back for `windowMs`; returns operations per second. */
export async function throughput(windowMs: number, op: (i: number) => unknown): Promise<number> {
  let n = 0;
  const started = performance.now();
  const deadline = started + windowMs;
  // Check the clock every 16 operations: performance.now() is cheap but not free at 60k ops/s.
  while (performance.now() < deadline) {
    for (let k = 0; k < 16; k++) {
      // A synchronous baseline is not made to pay for an await it would not have.
      const result = op(n++);
      if (result instanceof Promise) await result;
    }
  }
  return (n * 1000) / (performance.now() - started);
}

/** Runs `workers` async loops of `op` concurrently for `windowMs`; returns completed operations per second. */
export async function concurrentThroughput(
  workers: number,
  windowMs: number,
  op: (worker: number) => Promise<unknown>,
): Promise<number> {
  let n = 0;
  const started = performance.now();
  const deadline = started + windowMs;
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      while (performance.now() < deadline) {
        await op(worker);
        n += 1;
      }
    }),
  );
  return (n * 1000) / (performance.now() - started);
}

/**
 * Measures every contestant `repeats` times, rotating who goes first so drift on a shared machine hits all
 * of them alike; returns each one's median.
 */
export async function interleaved<K extends string>(
  repeats: number,
  contestants: Record<K, () => Promise<number>>,
): Promise<Record<K, number>> {
  const names = Object.keys(contestants) as K[];
  const samples = new Map<K, number[]>(names.map((name) => [name, []]));
  for (let r = 0; r < repeats; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(r + k) % names.length] as K;
      samples.get(name)?.push(await contestants[name]());
    }
  }
  return Object.fromEntries(names.map((name) => [name, median(samples.get(name) ?? [])])) as Record<
    K,
    number
  >;
}

/**
 * Runs the contestants in turn, one call each per round (the order rotating), for `totalMs`; returns each
 * one's mean µs per call. Finer than alternating windows: drift on a shared machine hits every contestant
 * alike. `prepare` (untimed) runs before each timed call and hands it what it made.
 */
export async function roundRobin<K extends string>(
  totalMs: number,
  contestants: Record<K, (round: number, prepared: unknown) => unknown>,
  prepare?: Record<K, (round: number) => unknown>,
): Promise<Record<K, number>> {
  const names = Object.keys(contestants) as K[];
  const spent = new Map<K, number>(names.map((name) => [name, 0]));
  let rounds = 0;
  const deadline = performance.now() + totalMs;
  while (performance.now() < deadline) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(rounds + k) % names.length] as K;
      let prepared = prepare?.[name](rounds);
      if (prepared instanceof Promise) prepared = await prepared;
      const started = performance.now();
      const result = contestants[name](rounds, prepared);
      if (result instanceof Promise) await result;
      spent.set(name, (spent.get(name) ?? 0) + performance.now() - started);
    }
    rounds += 1;
  }
  return Object.fromEntries(names.map((name) => [name, ((spent.get(name) ?? 0) * 1000) / rounds])) as Record<
    K,
    number
  >;
}

export const fmt = {
  rate: (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'),
  // Truncated, not rounded: a 0.895× must not print as the 0.90× it missed.
  ratio: (n: number) => (Number.isFinite(n) ? `${(Math.floor(n * 100 + 1e-9) / 100).toFixed(2)}×` : 'n/a'),
  ms: (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : 'n/a'),
  mb: (bytes: number) => (bytes / (1024 * 1024)).toFixed(1),
};

export function benchStoreOptions(synchronous: Sync, overrides: Partial<StoreOptions> = {}): StoreOptions {
  return {
    clock: systemClock,
    reservationTtlMs: 15 * 60_000,
    lockTimeoutMs: 5_000,
    synchronous,
    // A benchmark reserves far more than any one channel may hold in production; the caps are not under test.
    limits: { ...DEFAULT_LIMITS, maxChannelReserved: 1_000_000_000 },
    ...overrides,
  };
}

export const HOT_SKU = 'HOT-1';
export const SPREAD_SKUS = 1_000;
export const spreadSku = (i: number) => `SKU-${String(i % SPREAD_SKUS).padStart(4, '0')}`;

/** One hot SKU and 1,000 others, each with far more stock than a run can reserve. */
export function benchCatalog(stock = 900_000_000): ImportRow[] {
  return [
    { sku: HOT_SKU, name: 'Flash-sale jacket', price_minor: 14_900, currency: 'EUR', stock },
    ...Array.from({ length: SPREAD_SKUS }, (_, i) => ({
      sku: spreadSku(i),
      name: `Catalog item ${i}`,
      price_minor: 1_000 + i,
      currency: 'EUR',
      stock,
    })),
  ];
}

export function scratchDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'stocklock-bench-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resident set size of a process, from /proc (Linux); NaN elsewhere. */
export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system) a process has used so far, in ms, from /proc (Linux); NaN elsewhere. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) " come the fields from state on; utime and stime are fields 14 and 15 of proc(5),
    // counted in clock ticks of 10 ms (USER_HZ is 100 on Linux).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A child Node process speaking JSON lines on stdout (one object per line). */
export interface Child {
  process: ChildProcess;
  /** Resolves with the next JSON line the child prints. */
  next<T = Record<string, unknown>>(): Promise<T>;
  send(message: unknown): void;
  /** Ends stdin (workers exit on it), then SIGTERM (servers shut down gracefully), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** Send stderr (the server's log) to this file instead of keeping its tail for error messages. */
  stderrFile?: string;
}

/** Spawns a bench TypeScript file (through tsx) or a built .js file. */
export function spawnNode(file: string, args: string[] = [], options: SpawnOptions = {}): Child {
  const loader = file.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const stderrFd = options.stderrFile ? openSync(options.stderrFile, 'a') : undefined;
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, file, ...args], {
    cwd: ROOT,
    env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['pipe', 'pipe', stderrFd ?? 'pipe'],
  });
  if (stderrFd !== undefined) closeSync(stderrFd);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const queue: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  let failure: Error | undefined;
  const failAll = (error: Error) => {
    failure = error;
    for (const wake of waiting.splice(0)) wake(undefined);
  };
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const wake = waiting.shift();
    if (wake) wake(line);
    else queue.push(line);
  });
  child.on('exit', (code, signal) =>
    failAll(
      new Error(
        `${file} exited (${code ?? signal}) before answering. stderr:\n${options.stderrFile ? `see ${options.stderrFile}` : stderr}`,
      ),
    ),
  );
  child.on('error', failAll);
  return {
    process: child,
    next: <T>() =>
      new Promise<T>((resolve, reject) => {
        const take = (line: string | undefined) =>
          line === undefined ? reject(failure) : resolve(JSON.parse(line) as T);
        if (queue.length > 0) take(queue.shift());
        else if (failure) reject(failure);
        else waiting.push(take);
      }),
    send: (message) => child.stdin?.write(`${JSON.stringify(message)}\n`),
    stop: async (graceMs = 5_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const within = (ms: number) => Promise.race([exited.then(() => true), sleep(ms).then(() => false)]);
      // Workers exit when stdin ends; servers are asked to shut down with SIGTERM, then killed.
      child.stdin?.end();
      if (await within(500)) return;
      child.kill('SIGTERM');
      if (await within(graceMs)) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Reads the JSON-lines protocol a bench child speaks: one message per line on stdin. */
export function parentMessages(onMessage: (message: Record<string, unknown>) => void): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() !== '') onMessage(JSON.parse(line) as Record<string, unknown>);
  });
}

export function reply(message: unknown): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}
