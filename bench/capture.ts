// Captures the SQL a SqliteStore actually runs for a call and replays it on raw prepared statements, so the
// "same statements, no stocklock code" baseline follows the store whenever the store's statements change.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { SqliteStore } from '../src/storage/sqlite/store.js';
import type { StoreOptions } from '../src/storage/store.js';
import type { Sync } from './lib.js';
import { openRaw, prepareDatabase } from './raw.js';

type Method = 'run' | 'get' | 'all' | 'iterate';
const METHODS = new Set<string>(['run', 'get', 'all', 'iterate']);

/**
 * One statement of a captured call. `bound` steps came through a prepared statement of the store and are
 * replayed with its arguments; the others (BEGIN IMMEDIATE, COMMIT, SAVEPOINT … from better-sqlite3's
 * transaction wrapper) are replayed verbatim from SQLite's own trace.
 */
export interface Step {
  sql: string;
  method: Method;
  args: unknown[];
  bound: boolean;
}

/** What one store call ran, in order, with what SQLite reported executing (`verbose`, parameters expanded). */
export interface Script {
  steps: Step[];
  trace: string[];
  /** The clock when the call started: captured timestamps are shifted by (replay time − this). */
  startedAt: number;
  /** Ids the call generated (cart, order): each replay gets fresh ones of the same shape. */
  ids: string[];
}

/** Substitutions for one replayed call. */
export interface Fresh {
  ids: Map<string, string>;
  shift: number;
}

/** Numbers this close to the call's clock are timestamps (now, now + TTL, now − retention …). */
const TIMESTAMP_WINDOW_MS = 400 * 86_400_000;

function isTimestamp(value: unknown, startedAt: number): value is number {
  return typeof value === 'number' && Math.abs(value - startedAt) <= TIMESTAMP_WINDOW_MS;
}

/**
 * A SqliteStore on a connection that records every statement it runs. The store is built on a proxy of the
 * connection, so each statement it prepares (now or later) is wrapped; SQLite's `verbose` trace is the
 * ground truth that every executed statement was accounted for.
 */
export class CapturingStore {
  readonly store: SqliteStore;
  private readonly db: Database.Database;
  private readonly trace: string[] = [];
  private steps: { step: Step; traceIndex: number }[] = [];
  private recording = false;

  constructor(path: string, sync: Sync, options: StoreOptions) {
    this.db = openRaw(path, sync, (sql) => {
      if (this.recording) this.trace.push(sql);
    });
    const wrapStatement = (statement: Database.Statement) =>
      new Proxy(statement, {
        get: (target, property) => {
          const value = Reflect.get(target, property);
          if (typeof value !== 'function') return value;
          if (typeof property === 'string' && METHODS.has(property)) {
            return (...args: unknown[]) => {
              if (!this.recording) return value.apply(target, args);
              const traceIndex = this.trace.length;
              const result = value.apply(target, args);
              // better-sqlite3 reports a statement once, when it starts stepping.
              if (this.trace.length !== traceIndex + 1) {
                throw new Error(
                  `capture: ${property}() of "${target.source}" produced ${this.trace.length - traceIndex} trace entries, expected 1`,
                );
              }
              this.steps.push({
                step: { sql: target.source, method: property as Method, args, bound: true },
                traceIndex,
              });
              // An iterator is replayed by draining it; the store's own result is what it asked for.
              return result;
            };
          }
          return value.bind(target);
        },
      });
    const connection = new Proxy(this.db, {
      get: (target, property) => {
        const value = Reflect.get(target, property);
        if (property === 'prepare') {
          return (sql: string) => wrapStatement(target.prepare(sql));
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    // No writers queue: it runs no SQL, and the capture never competes for the lock.
    this.store = new SqliteStore(connection, options);
  }

  /**
   * Runs one store call and returns what it executed. `idsOf` names the ids the call generated (read from
   * its result); a verbatim step that mentions one of them could not be replayed, so the capture fails.
   */
  async record<T>(
    call: () => Promise<T>,
    idsOf: (result: T) => string[],
  ): Promise<{ result: T; script: Script }> {
    this.trace.length = 0;
    this.steps = [];
    const startedAt = Date.now();
    this.recording = true;
    let result: T;
    try {
      result = await call();
    } finally {
      this.recording = false;
    }
    const ids = idsOf(result);
    const byIndex = new Map(this.steps.map((s) => [s.traceIndex, s.step]));
    const steps = this.trace.map((sql, index): Step => {
      const bound = byIndex.get(index);
      if (bound) return bound;
      const named = ids.find((id) => sql.includes(id));
      if (named !== undefined) {
        throw new Error(
          `capture: "${sql}" names ${named} but did not run through a prepared statement of the store`,
        );
      }
      return { sql, method: 'run', args: [], bound: false };
    });
    return { result, script: { steps, trace: [...this.trace], startedAt, ids } };
  }

  close(): void {
    this.db.close();
  }
}

/** A fresh id of the same prefix and length, random like the store's (so index inserts land alike). */
export function freshLike(id: string): string {
  const cut = id.indexOf('_') + 1;
  let body = '';
  while (body.length < id.length - cut) body += randomUUID().replaceAll('-', '');
  return id.slice(0, cut) + body.slice(0, id.length - cut);
}

export function freshFor(script: Script, now: number): Fresh {
  return { ids: new Map(script.ids.map((id) => [id, freshLike(id)])), shift: now - script.startedAt };
}

function substituter(value: unknown, script: Script): ((fresh: Fresh) => unknown) | undefined {
  if (typeof value === 'string' && script.ids.includes(value)) return (fresh) => fresh.ids.get(value);
  if (isTimestamp(value, script.startedAt)) return (fresh) => value + fresh.shift;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    const fields = entries.map(([key, v]) => [key, substituter(v, script)] as const);
    if (fields.every(([, f]) => f === undefined)) return undefined;
    return (fresh) =>
      Object.fromEntries(entries.map(([key, v], i) => [key, fields[i]?.[1] ? fields[i][1](fresh) : v]));
  }
  return undefined;
}

/** One cache of prepared statements per connection: 1,000 scripts of the same SQL share them. */
const preparedOn = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function statementFor(db: Database.Database, sql: string): Database.Statement {
  let cache = preparedOn.get(db);
  if (!cache) {
    cache = new Map();
    preparedOn.set(db, cache);
  }
  let statement = cache.get(sql);
  if (!statement) {
    statement = db.prepare(sql);
    cache.set(sql, statement);
  }
  return statement;
}

/**
 * Compiles a script into a replay on `db`: each distinct SQL prepared once, arguments rebuilt only where an
 * id or a timestamp must change. `onStep` (for the per-statement breakdown) is told when each step ends.
 */
export function compileReplay(
  db: Database.Database,
  script: Script,
  onStep?: (index: number) => void,
): (fresh: Fresh) => void {
  const calls = script.steps.map((step) => {
    const statement = statementFor(db, step.sql);
    const makers = step.args.map((arg) => substituter(arg, script));
    const argsFor = makers.every((m) => m === undefined)
      ? () => step.args
      : (fresh: Fresh) =>
          step.args.map((arg, i) => {
            const make = makers[i];
            return make ? make(fresh) : arg;
          });
    if (step.method === 'iterate') {
      return (fresh: Fresh) => {
        for (const _ of statement.iterate(...argsFor(fresh))) {
          // Drained, as the store drains it.
        }
      };
    }
    const method = step.method;
    return (fresh: Fresh) => statement[method](...argsFor(fresh));
  });
  const rollback = () => {
    if (db.inTransaction) statementFor(db, 'ROLLBACK').run();
  };
  return (fresh) => {
    try {
      for (let i = 0; i < calls.length; i++) {
        (calls[i] as (f: Fresh) => unknown)(fresh);
        onStep?.(i);
      }
    } catch (error) {
      rollback();
      throw error;
    }
  };
}

/** The same ids and times as captured: replays the call exactly, for checking a replay against its trace. */
export function asCaptured(script: Script): Fresh {
  return { ids: new Map(script.ids.map((id) => [id, id])), shift: 0 };
}

/** The trace a replay with `fresh` must produce: the captured one with the same ids and times replaced. */
export function expectedTrace(script: Script, fresh: Fresh): string[] {
  const stamps = new Set<number>();
  for (const step of script.steps) {
    const visit = (value: unknown): void => {
      if (isTimestamp(value, script.startedAt)) stamps.add(value);
      else if (value !== null && typeof value === 'object') Object.values(value).forEach(visit);
    };
    step.args.forEach(visit);
  }
  return script.trace.map((sql) => {
    let out = sql;
    for (const [from, to] of fresh.ids) out = out.replaceAll(from, to);
    for (const stamp of stamps) out = out.replaceAll(String(stamp), String(stamp + fresh.shift));
    return out;
  });
}

/** A short label for a statement: its first words, whitespace folded. */
export function label(sql: string, width = 72): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}

/** What the store ran for one SKU: a reserve into a new cart, then the checkout of that one-line cart. */
export interface ShopScripts {
  reserve: Script;
  checkout: Script;
}

/** Runs `replay` on a fresh connection to `path` and returns SQLite's trace of it. */
function traceOf(path: string, replay: (db: Database.Database) => void): string[] {
  const trace: string[] = [];
  let on = false;
  const db = openRaw(path, 'NORMAL', (sql) => {
    if (on) trace.push(sql);
  });
  try {
    on = true;
    replay(db);
    return trace;
  } finally {
    db.close();
  }
}

function assertSameTrace(what: string, store: string[], replay: string[]): void {
  const first = store.findIndex((sql, i) => replay[i] !== sql);
  if (store.length === replay.length && first === -1) return;
  const at = first === -1 ? Math.min(store.length, replay.length) : first;
  throw new Error(
    `capture: the replay of ${what} ran ${replay.length} statements against the store's ${store.length}; ` +
      `first difference at #${at + 1}:\n  store:  ${store[at] ?? '(none)'}\n  replay: ${replay[at] ?? '(none)'}`,
  );
}

/**
 * Captures, for each SKU, the statements SqliteStore runs for add_to_cart (a new cart, one unit, no key) and
 * for the checkout of that cart, then proves the replays: every script replayed as captured on a second
 * database must make SQLite trace exactly what the store made it trace (same statements, same values, same
 * count), and a replay with fresh ids and times must trace the same with only those replaced.
 */
export async function captureShop(
  dir: string,
  skus: string[],
  options: StoreOptions,
): Promise<Map<string, ShopScripts>> {
  const base = mkdtempSync(join(dir, 'capture-'));
  const path = join(base, 'store.db');
  const twin = join(base, 'replay.db');
  await prepareDatabase(path, 'NORMAL');
  await prepareDatabase(twin, 'NORMAL');
  const capture = new CapturingStore(path, 'NORMAL', options);
  const ctx = { channel: 'bench' };
  const scripts = new Map<string, ShopScripts>();
  try {
    // The first call of a connection may differ (the channel's counter row is created): copy later ones.
    const warm = await capture.store.addToCart(ctx, { sku: skus[0] as string, quantity: 1 });
    await capture.store.checkout(ctx, { cartId: warm.cart_id });
    for (const sku of skus) {
      const reserve = await capture.record(
        () => capture.store.addToCart(ctx, { sku, quantity: 1 }),
        (cart) => [cart.cart_id],
      );
      const checkout = await capture.record(
        () => capture.store.checkout(ctx, { cartId: reserve.result.cart_id }),
        (order) => [order.cart_id, order.order_id],
      );
      scripts.set(sku, { reserve: reserve.script, checkout: checkout.script });
    }
  } finally {
    capture.close();
  }
  verifyReplays(twin, scripts);
  return scripts;
}

/**
 * Proves the replays on `twin` (a database prepared like the store's): every script replayed as captured must
 * make SQLite trace exactly what the store made it trace (same statements, same values, same count), and a
 * replay with fresh ids and times must trace the same with only those replaced. Throws on any difference.
 */
export function verifyReplays(twin: string, scripts: Map<string, ShopScripts>): void {
  const all = [...scripts.values()];
  const replayed = traceOf(twin, (db) => {
    for (const { reserve, checkout } of all) {
      compileReplay(db, reserve)(asCaptured(reserve));
      compileReplay(db, checkout)(asCaptured(checkout));
    }
  });
  assertSameTrace(
    'the captured calls',
    all.flatMap(({ reserve, checkout }) => [...reserve.trace, ...checkout.trace]),
    replayed,
  );
  const first = all[0] as ShopScripts;
  const { reserve, checkout } = freshShop(first, Date.now());
  const freshTrace = traceOf(twin, (db) => {
    compileReplay(db, first.reserve)(reserve);
    compileReplay(db, first.checkout)(checkout);
  });
  assertSameTrace(
    'a call with fresh ids and times',
    [...expectedTrace(first.reserve, reserve), ...expectedTrace(first.checkout, checkout)],
    freshTrace,
  );
}

/** Fresh ids and times for a reserve and the checkout of the cart that reserve makes. */
export function freshShop(scripts: ShopScripts, now: number): { reserve: Fresh; checkout: Fresh } {
  const reserve = freshFor(scripts.reserve, now);
  const checkout = freshFor(scripts.checkout, now);
  const [cart] = scripts.checkout.ids as [string, string];
  checkout.ids.set(cart, reserve.ids.get(cart) as string);
  return { reserve, checkout };
}
