// `npm run bench`: runs every scenario in one process tree, prints the tables and writes BENCHMARKS.md.
// Flags (after `npm run bench --`): --quick (short windows, one repeat: a smoke test for CI, under a minute),
// --only store,processes,mcp,eras,race,memory,postgres,flash-sale,payment-flash-sale,console,hostile-crowd,year-of-sales,app (some scenarios),
// --out FILE (write the report there).
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Database, DRIVER_PACKAGE } from '../src/storage/sqlite/driver.js';
import { appScenario } from './app.js';
import { consoleScenario } from './console.js';
import { erasScenario } from './eras.js';
import { flashSaleScenario } from './flash-sale.js';
import { hostileCrowdScenario } from './hostile-crowd.js';
import { POSTGRES_REPEATS, ROOT, type RunSettings, type Section, scratchDir, section } from './lib.js';
import { mcpScenario } from './mcp.js';
import { memoryScenario } from './memory.js';
import { paymentFlashSaleScenario } from './payment-flash-sale.js';
import { postgresScenario } from './postgres.js';
import { processesScenario } from './processes.js';
import { raceScenario } from './race.js';
import { storeScenario } from './store.js';
import { yearOfSalesScenario } from './year-of-sales.js';

/** What the figures mean and what was found behind them; copied into BENCHMARKS.md after the goals. */
const FINDINGS = join(ROOT, 'bench', 'findings.md');

type Scenario = (settings: RunSettings) => Promise<Section[]>;

const SCENARIOS: Record<string, Scenario> = {
  store: storeScenario,
  processes: processesScenario,
  mcp: mcpScenario,
  eras: erasScenario,
  race: raceScenario,
  memory: memoryScenario,
  postgres: postgresScenario,
  'flash-sale': flashSaleScenario,
  'payment-flash-sale': paymentFlashSaleScenario,
  console: consoleScenario,
  'hostile-crowd': hostileCrowdScenario,
  'year-of-sales': yearOfSalesScenario,
  app: appScenario,
};

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});

function table(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

function versionOf(name: string): string {
  const manifest = join(ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  } finally {
    db.close();
  }
}

function render(sections: Section[], meta: string[]): string {
  const goals = sections.flatMap((s) => s.goals);
  const parts = [
    '# Benchmarks',
    '',
    ...meta,
    '',
    '## Goals',
    '',
    table(
      ['goal', 'target', 'measured', ''],
      goals.map((g) => [
        g.name,
        g.target,
        g.measured,
        g.met === undefined ? '—' : g.met ? 'met' : '**missed**',
      ]),
    ),
    '',
    readFileSync(FINDINGS, 'utf8').trim(),
  ];
  for (const s of sections) {
    parts.push('', `## ${s.title}`, '', s.intro);
    if (s.headers.length > 0) parts.push('', table(s.headers, s.rows));
    if (s.notes.length > 0) parts.push('', ...s.notes.map((note) => `- ${note}`));
  }
  return `${parts.join('\n')}\n`;
}

async function main(): Promise<void> {
  const quick = values.quick ?? false;
  const scratch = scratchDir();
  const settings: RunSettings = {
    quick,
    repeats: quick ? 1 : 3,
    windowMs: quick ? 100 : 800,
    dir: scratch.dir,
  };
  const selected = values.only ? values.only.split(',') : Object.keys(SCENARIOS);
  const started = Date.now();
  const loadAtStart = loadavg();
  const sections: Section[] = [];
  try {
    for (const name of selected) {
      const scenario = SCENARIOS[name];
      if (!scenario)
        throw new Error(`unknown scenario "${name}" (known: ${Object.keys(SCENARIOS).join(', ')})`);
      const t0 = Date.now();
      process.stderr.write(`bench: ${name}…\n`);
      let produced: Section[];
      try {
        produced = await scenario(settings);
      } catch (error) {
        // One broken scenario must not cost the figures of the others; the run still fails at the end.
        process.exitCode = 1;
        // fetch's "fetch failed" says nothing by itself: the reason is in its cause.
        const cause = (error as { cause?: unknown }).cause;
        process.stderr.write(
          `bench: ${name} failed: ${(error as Error).stack ?? String(error)}${cause ? `\ncaused by: ${String((cause as Error).stack ?? cause)}` : ''}\n`,
        );
        produced = [
          {
            ...section(`${name} (failed)`, `This scenario failed: ${(error as Error).message}`, []),
            rows: [],
          },
        ];
      }
      for (const s of produced) {
        process.stdout.write(`\n${s.title}\n${s.headers.length > 0 ? table(s.headers, s.rows) : s.intro}\n`);
        for (const note of s.notes) process.stdout.write(`  - ${note}\n`);
      }
      sections.push(...produced);
      process.stderr.write(`bench: ${name} took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    }
  } finally {
    scratch.remove();
  }
  const cpu = cpus();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const meta = [
    `- Command: \`${command}\`${quick ? ' (quick: short windows, for CI smoke tests; not figures to quote)' : ''}`,
    `- Date: ${new Date().toISOString()}; the run took ${Math.round((Date.now() - started) / 1000)} s`,
    `- Machine: ${cpu.length} cores, ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GB RAM, ${process.platform} ${process.arch}; load average (1 / 5 / 15 min) ${load(loadAtStart)} at the start, ${load(loadavg())} at the end`,
    `- Node ${process.version}, SQLite ${sqliteVersion()}, better-sqlite3 ${versionOf(DRIVER_PACKAGE)}, @modelcontextprotocol/sdk ${versionOf('@modelcontextprotocol/sdk')}, pg ${versionOf('pg')}`,
    `- Every figure is the median of ${settings.repeats} repeats (PostgreSQL: ${settings.quick ? settings.repeats : POSTGRES_REPEATS}), except tables 1–2 and 2b, where the contestants take turns call by call and each figure is a mean over the run; the project and its baseline are measured alternately in the same run, and the ratio is project ÷ baseline`,
  ];
  const markdown = render(sections, meta);
  // Only a full run of every scenario replaces BENCHMARKS.md; --quick and --only print, or write to --out.
  const out = values.out ?? (quick || values.only ? undefined : join(ROOT, 'BENCHMARKS.md'));
  if (out) {
    writeFileSync(out, markdown);
    process.stderr.write(`bench: wrote ${out}\n`);
  }
  const goals = sections.flatMap((s) => s.goals);
  process.stdout.write(
    `\nGoals\n${table(
      ['goal', 'target', 'measured', ''],
      goals.map((g) => [g.name, g.target, g.measured, g.met === undefined ? '—' : g.met ? 'met' : 'MISSED']),
    )}\n`,
  );
}

await main();
