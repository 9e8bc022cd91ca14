// A merchant's first hour with the built CLI: no silent new database, the database named, the
// catalog read truthfully, one-line errors, and `start` printing lines that work as printed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  type CliResult,
  ROOT,
  type RunningCli,
  runCli,
  spawnCli,
  stdioClient,
  waitHealthy,
} from '../helpers/cli.js';
import { connectClient, firstText, freePort, waitFor } from '../helpers/http.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const DEMO_JSON = join(ROOT, 'examples/demo-catalog.json');
/** Tests that run a dozen CLI processes: each is a Node start-up, seconds apiece on a loaded machine. */
const MANY_PROCESSES = { timeout: 300_000 };
const DEMO_CSV = join(ROOT, 'examples/demo-catalog.csv');

/** The built CLI run from `cwd`, as a merchant runs it in their shop's directory. */
function runIn(cwd: string, args: string[], env: Record<string, string> = {}): CliResult {
  const inherited = { ...process.env };
  delete inherited.STOCKLOCK_DB;
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...inherited, STOCKLOCK_LOG_LEVEL: 'warn', ...env },
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function lines(text: string): string[] {
  return text.trimEnd().split('\n');
}

function shop(): { dir: string; db: string } {
  const dir = tempDir().dir;
  const db = join(dir, 'shop.db');
  expect(runCli(['import', DEMO_JSON, '--db', db]).status).toBe(0);
  return { dir, db };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Every command that needs an existing database, with arguments that would otherwise succeed or change it. */
const NEEDS_A_DATABASE: string[][] = [
  ['stock'],
  ['stock', '--json'],
  ['audit'],
  ['audit', '--json'],
  ['sweep'],
  ['token', 'list'],
  ['token', 'create', '--channel', 'web'],
  ['token', 'revoke', 'tok_0000000000'],
  ['restock', 'JACKET-LTD', '1'],
  ['set-stock', 'JACKET-LTD', '1'],
  ['backup', 'copy.db'],
];

describe('no silent new database (SQLite)', () => {
  it.each(NEEDS_A_DATABASE)(
    '`%s` refuses a missing file in one line naming the path and --db, and creates nothing',
    (...args) => {
      const dir = tempDir().dir;
      const db = join(dir, 'typo.db');
      const result = runIn(dir, [...args, '--db', db]);
      expect(result.status).toBe(1);
      expect(lines(result.stderr)).toEqual([
        `stocklock: no database at ${db} yet; point --db (or STOCKLOCK_DB) at yours, or create one with \`stocklock import FILE\` or \`stocklock migrate\``,
      ]);
      expect(result.stdout).toBe('');
      expect(readdirSync(dir)).toEqual([]);
    },
  );

  it('names the default ./stocklock.db by its absolute path when no --db is given', () => {
    const dir = tempDir().dir;
    const result = runIn(dir, ['audit']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`no database at ${join(dir, 'stocklock.db')} yet`);
    expect(result.stdout).not.toContain('OK');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('only import and migrate create one', MANY_PROCESSES, () => {
    const dir = tempDir().dir;
    const migrated = runIn(dir, ['migrate', '--db', 'a.db']);
    expect(migrated.stdout).toBe(`Database ${join(dir, 'a.db')} is up to date.\n`);
    expect(runIn(dir, ['stock', '--db', 'a.db']).status).toBe(0);
    const imported = runIn(dir, ['import', DEMO_CSV, '--db', 'b.db']);
    expect(imported.status).toBe(0);
    expect(runIn(dir, ['audit', '--db', 'b.db']).status).toBe(0);
  });
});

describe('every command names its database', () => {
  it('on stdout beside human output, on stderr where stdout is data', MANY_PROCESSES, () => {
    const { dir, db } = shop();
    const human: [string[], string][] = [
      [['stock'], `Stock in ${db}:`],
      [['audit'], `ledger movements in ${db}.`],
      [['sweep'], `expired carts in ${db}.`],
      [['restock', 'MUG-WHT', '1'], `Restocked MUG-WHT in ${db}:`],
      [['set-stock', 'MUG-WHT', '61'], `Set on-hand of MUG-WHT in ${db}:`],
      [['token', 'list'], `No tokens in ${db}.`],
      [['backup', join(dir, 'copy.db')], `Backed up ${db} to`],
      [['migrate'], `Database ${db} is up to date.`],
      [['import', DEMO_CSV], `into ${db} (0 new, 3 updated)`],
    ];
    for (const [args, expected] of human) {
      const result = runCli([...args, '--db', db]);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toContain(expected);
    }
    for (const args of [
      ['stock', '--json'],
      ['audit', '--json'],
      ['token', 'list', '--json'],
    ]) {
      const result = runCli([...args, '--db', db]);
      expect(result.stderr).toBe(`Database: ${db}\n`);
      expect(() => JSON.parse(result.stdout)).not.toThrow();
    }
    const created = runCli(['token', 'create', '--channel', 'web', '--db', db]);
    expect(created.stdout).toMatch(/^slk_[\w-]+\n$/);
    expect(created.stderr).toContain(`for channel "web" in ${db}.`);
    const id = JSON.parse(runCli(['token', 'list', '--json', '--db', db]).stdout)[0].id;
    expect(runCli(['token', 'revoke', id, '--db', db]).stdout).toBe(`Revoked ${id} in ${db}.\n`);
  });
});

describePostgres('no silent new database (PostgreSQL)', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('stocklock_firsthour');
  });
  afterAll(async () => {
    await database?.drop();
  });

  it(
    'refuses an empty database until migrate, then names it without the password',
    MANY_PROCESSES,
    async () => {
      const url = new URL(database.url);
      url.password = 'hunter2-secret';
      const withPassword = url.toString();
      const shown = `postgres://${url.username}@${url.host}/${database.name}`;
      const refused = runCli(['stock', '--db', withPassword]);
      expect(refused.status).toBe(1);
      expect(lines(refused.stderr)).toEqual([
        expect.stringContaining(`no database at ${shown} yet; point --db`),
      ]);
      expect(await database.query("SELECT to_regclass('products') AS t")).toEqual([{ t: null }]);

      const migrated = runCli(['migrate', '--db', withPassword]);
      expect(migrated.stdout).toBe(`Database ${shown} is up to date.\n`);
      const audit = runCli(['audit', '--db', withPassword]);
      expect(audit.status).toBe(0);
      expect(audit.stdout).toContain(`in ${shown}.`);
      expect(audit.stdout + audit.stderr).not.toContain('hunter2');

      // The re-import rule through the CLI on PostgreSQL: kept by default, set and printed with --set-stock.
      expect(runCli(['import', DEMO_CSV, '--db', withPassword]).status).toBe(0);
      expect(runCli(['restock', 'JACKET-LTD', '2', '--db', withPassword]).status).toBe(0);
      const kept = runCli(['import', DEMO_CSV, '--db', withPassword]);
      expect(kept.stdout).toContain('  JACKET-LTD: 3 on hand kept; the file says 1');
      const set = runCli(['import', DEMO_CSV, '--set-stock', '--db', withPassword]);
      expect(set.stdout).toContain('  JACKET-LTD: on hand 3 → 1');
      expect(runCli(['audit', '--db', withPassword]).status).toBe(0);
    },
  );
});

describe('re-importing a catalog never throws away stock changes silently', () => {
  it(
    'keeps existing on-hand and names every figure it kept; --set-stock prints each change and refuses below carts',
    MANY_PROCESSES,
    async () => {
      const { dir, db } = shop();
      expect(runCli(['restock', 'JACKET-LTD', '4', '--db', db]).status).toBe(0);
      const kept = runCli(['import', DEMO_CSV, '--db', db]);
      expect(kept.status, kept.stderr).toBe(0);
      expect(lines(kept.stdout).slice(1)).toEqual([
        'Kept the on-hand of 1 existing product where the file differs (--set-stock sets it from the file):',
        '  JACKET-LTD: 5 on hand kept; the file says 1',
      ]);
      expect(JSON.parse(runCli(['stock', 'JACKET-LTD', '--json', '--db', db]).stdout)[0].on_hand).toBe(5);

      const client = await stdioClient(['--db', db, '--channel', 'web']);
      try {
        const cart = await client.callTool({
          name: 'add_to_cart',
          arguments: { sku: 'JACKET-LTD', quantity: 3 },
        });
        expect(cart.isError).toBeFalsy();
      } finally {
        await client.close();
      }
      const refused = runCli(['import', DEMO_CSV, '--set-stock', '--db', db]);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toBe(
        'stocklock: BELOW_RESERVED: line 3: Cannot set on-hand of "JACKET-LTD" to 1: carts hold 3. Set at least 3, or wait for carts to close.\n',
      );
      expect(JSON.parse(runCli(['stock', 'JACKET-LTD', '--json', '--db', db]).stdout)[0]).toMatchObject({
        on_hand: 5,
        reserved: 3,
      });

      const recount = join(dir, 'recount.csv');
      writeFileSync(
        recount,
        'sku,name,price,currency,stock\nJACKET-LTD,Limited edition rain jacket,149.00,EUR,4\nMUG-WHT,Enamel mug,14.50,EUR,\n',
      );
      const set = runCli(['import', recount, '--set-stock', '--db', db]);
      expect(set.status, set.stderr).toBe(0);
      expect(lines(set.stdout).slice(1)).toEqual([
        'On-hand set from the file:',
        '  JACKET-LTD: on hand 5 → 4',
      ]);
      expect(JSON.parse(runCli(['stock', 'MUG-WHT', '--json', '--db', db]).stdout)[0].on_hand).toBe(60);
      expect(runCli(['audit', '--db', db]).status).toBe(0);
    },
  );
});

describe('import tells the truth about the file', () => {
  function importText(text: string, name = 'catalog.csv'): CliResult & { db: string } {
    const { dir, db } = shop();
    const file = join(dir, name);
    writeFileSync(file, text);
    return { ...runCli(['import', file, '--db', db]), db };
  }

  it.each([
    [
      'product,title,cost,currency\nA-1,Apple,1.00,EUR\n',
      'line 1: unknown columns "product", "title", "cost"; the header line names the columns: sku, name, price (12.50) or price_minor (1250), currency, stock',
    ],
    [
      'sku,name,currency,stock\nA-1,Apple,EUR,5\n',
      'line 1: missing column price or price_minor; expected sku, name',
    ],
    ['A-1,Apple,1.00,EUR,5\n', 'line 1: unknown columns "a-1", "apple", "1.00", "eur", "5"'],
    ['sku,name,price,price,currency\nA-1,Apple,1,1,EUR\n', 'line 1: column "price" appears twice'],
    [
      'sku,name,price,price_minor,currency,stock\nA-1,Apple,1.00,100,EUR,5\nB-2,Pear,1.00,120,EUR,5\n',
      'line 3: price 1.00 and price_minor 120 disagree (1.00 EUR is 100 minor units); give one of them, or make them agree',
    ],
    [
      'sku;name;price;currency;stock\nA-1;Apple;1,50;EUR;5\n',
      'line 2: price "1,50" is not a decimal amount in EUR',
    ],
  ])(
    'refuses a file whose header or prices are wrong, in one line, importing nothing (%#)',
    (text, message) => {
      const result = importText(text);
      expect(result.status).toBe(1);
      expect(lines(result.stderr)).toEqual([expect.stringContaining(`stocklock: ${message}`)]);
      expect(JSON.parse(runCli(['stock', '--json', '--db', result.db]).stdout)).toHaveLength(13);
    },
  );

  it('accepts headers in any case, and a semicolon-separated file, saying how it read it', () => {
    const upper = importText('SKU, Name ,PRICE,Currency,Stock\nA-1,Apple,1.00,EUR,5\n');
    expect(upper.status, upper.stderr).toBe(0);
    expect(upper.stdout).toContain('(CSV)');
    const semicolons = importText('sku;name;price;price_minor;currency;stock\nA-1;Apple;1.50;150;EUR;5\n');
    expect(semicolons.status, semicolons.stderr).toBe(0);
    expect(semicolons.stdout).toContain('(semicolon-separated CSV)');
    expect(JSON.parse(runCli(['stock', 'A-1', '--json', '--db', semicolons.db]).stdout)).toMatchObject([
      { sku: 'A-1', on_hand: 5 },
    ]);
  });

  it(
    'refuses an empty file, a header without products and a missing file, each in one line',
    MANY_PROCESSES,
    () => {
      const empty = importText('');
      expect(lines(empty.stderr)).toEqual([
        expect.stringMatching(/catalog\.csv is empty; a catalog is a header line/),
      ]);
      const blank = importText('\n  \n');
      expect(blank.stderr).toContain('is empty');
      const headerOnly = importText('sku,name,price,currency,stock\n');
      expect(lines(headerOnly.stderr)).toEqual([expect.stringMatching(/catalog\.csv lists no products$/)]);
      const emptyJson = importText('[]', 'catalog.json');
      expect(emptyJson.stderr).toMatch(/catalog\.json lists no products/);
      for (const result of [empty, blank, headerOnly, emptyJson]) expect(result.status).toBe(1);

      const dir = tempDir().dir;
      const missing = runCli(['import', join(dir, 'nope.csv'), '--db', join(dir, 'shop.db')]);
      expect(missing.status).toBe(1);
      expect(missing.stderr).toBe(`stocklock: cannot read ${join(dir, 'nope.csv')}: no such file\n`);
      expect(readdirSync(dir)).toEqual([]);
    },
  );
});

describe('CLI errors are one line and a pointer to --help', () => {
  it('a typo’d flag, a missing argument and an unknown command', MANY_PROCESSES, () => {
    const { db } = shop();
    const cases: [string[], string[]][] = [
      [
        ['stock', '--dbb', db],
        ["stocklock: unknown option '--dbb' (Did you mean --db?)", 'Run `stocklock stock --help` for usage.'],
      ],
      [
        ['import', '--db', db],
        ["stocklock: missing required argument 'file'", 'Run `stocklock import --help` for usage.'],
      ],
      [
        ['stok'],
        ["stocklock: unknown command 'stok' (Did you mean stock?)", 'Run `stocklock --help` for usage.'],
      ],
      [
        ['token', 'create', '--db', db],
        [
          "stocklock: required option '--channel <name>' not specified",
          'Run `stocklock token create --help` for usage.',
        ],
      ],
    ];
    for (const [args, expected] of cases) {
      const result = runCli(args);
      expect(result.status).toBe(1);
      expect(lines(result.stderr)).toEqual(expected);
    }
  });

  it('a bad port names --port or STOCKLOCK_PORT, and opens no database', () => {
    const dir = tempDir().dir;
    const db = join(dir, 'shop.db');
    const flag = runCli(['serve', '--http', '--port', 'abc', '--db', db]);
    expect(lines(flag.stderr)).toEqual([
      'stocklock: port "abc" from --port is not a port number (0-65535; 0 picks a free one)',
      'Run `stocklock serve --help` for usage.',
    ]);
    const env = runCli(['start', '--db', db], { STOCKLOCK_PORT: '70000' });
    expect(lines(env.stderr)[0]).toBe(
      'stocklock: port "70000" from STOCKLOCK_PORT (environment) is not a port number (0-65535; 0 picks a free one)',
    );
    expect([flag.status, env.status]).toEqual([1, 1]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a busy port names the port, --port and STOCKLOCK_PORT', async () => {
    const { db } = shop();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as AddressInfo).port;
    const server = spawnCli(['serve', '--http', '--port', String(port), '--db', db], {
      STOCKLOCK_LOG_LEVEL: 'warn',
    });
    cleanups.push(server.kill);
    expect(await server.exited).toBe(1);
    expect(lines(server.stderr())).toEqual([
      `stocklock: port ${port} on 127.0.0.1 is already in use (another stocklock, or another program); choose another with --port or STOCKLOCK_PORT (it came from --port)`,
      'Run `stocklock serve --help` for usage.',
    ]);
  });

  it('`stock` names unknown SKUs and exits 1 after showing the known ones; hints name CLI commands', () => {
    const { db } = shop();
    const result = runCli(['stock', 'JACKET-LTD', 'NOPE', 'ALSO-NOPE', '--db', db]);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/JACKET-LTD\s+Limited edition rain jacket\s+1\s+0\s+1/);
    expect(lines(result.stderr)).toEqual([
      'stocklock: UNKNOWN_SKU: no product with SKU NOPE, ALSO-NOPE; `stocklock stock` lists every SKU',
    ]);
    const restock = runCli(['restock', 'NOPE', '1', '--db', db]);
    expect(restock.status).toBe(1);
    expect(restock.stderr).toBe(
      'stocklock: UNKNOWN_SKU: No active product has SKU "NOPE"; `stocklock stock` lists every SKU.\n',
    );
    expect(restock.stderr).not.toContain('search_products');
  });

  it('each command’s --help lists only the options it uses', MANY_PROCESSES, () => {
    const options = (args: string[]) =>
      [...runCli([...args, '--help']).stdout.matchAll(/^\s+(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]);
    expect(options(['stock'])).toEqual(['--json', '--db', '--help']);
    expect(options(['audit'])).toEqual(['--json', '--full', '--db', '--help']);
    expect(options(['token', 'list'])).toEqual(['--json', '--db', '--help']);
    expect(options(['backup'])).toEqual(['--force', '--db', '--help']);
    expect(options(['migrate'])).toEqual(['--db', '--help']);
    expect(options(['restock'])).toEqual(['--note', '--db', '--lock-timeout', '--synchronous', '--help']);
    expect(options(['sweep'])).toEqual(['--db', '--lock-timeout', '--synchronous', '--help']);
    expect(options(['serve'])).toEqual(
      expect.arrayContaining(['--reservation-ttl', '--max-line-quantity', '--pool-size', '--port']),
    );
  });
});

describe('`start` prints lines that work as printed', () => {
  function spawnTracked(args: string[]): RunningCli {
    const running = spawnCli(args);
    cleanups.push(running.kill);
    return running;
  }

  /** Runs printed lines in a POSIX shell in the project directory, as a merchant pastes them. */
  function shell(script: string): CliResult {
    const result = spawnSync('sh', ['-c', script], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it(
    'with the --db and port it was started with, and an export STOCKLOCK_TOKEN line',
    MANY_PROCESSES,
    async () => {
      const dir = tempDir().dir;
      const db = join(dir, 'my shop.db');
      const port = await freePort();
      const url = `http://127.0.0.1:${port}/mcp`;
      const first = spawnTracked(['start', '--port', String(port), '--db', db]);
      await waitHealthy(url, first);
      await waitFor(() => first.stderr().includes('npx stocklock audit'));
      const printed = lines(first.stderr()).map((line) => line.trim());
      const exportLine = printed.find((line) => line.startsWith('export STOCKLOCK_TOKEN=slk_'));
      const dbWord = `'${db}'`;
      expect(printed).toContain(`npx stocklock stock --db ${dbWord}`);
      expect(printed).toContain(`curl -s http://127.0.0.1:${port}/healthz`);
      expect(printed.some((line) => line.includes(`inspector@0.16.6 --cli ${url} `))).toBe(true);

      const session = shell(
        [
          exportLine,
          `curl -s http://127.0.0.1:${port}/healthz`,
          `npx stocklock stock --db ${dbWord}`,
          `npx stocklock audit --db ${dbWord}`,
        ].join(' && '),
      );
      expect(session.status, session.stderr).toBe(0);
      expect(session.stdout).toContain('"ok"');
      expect(session.stdout).toMatch(/JACKET-LTD\s+Limited edition rain jacket\s+1\s+0\s+1/);
      expect(session.stdout).toContain('OK: every invariant holds');
      const token = exportLine?.slice('export STOCKLOCK_TOKEN='.length);
      const client = await connectClient(url, token);
      cleanups.push(() => client.close().catch(() => undefined));
      const found = await client.callTool({ name: 'check_stock', arguments: { skus: ['JACKET-LTD'] } });
      expect(found.isError, firstText(found as never)).toBeFalsy();

      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);

      // A second start on the same database makes no token itself; its export line makes one that works.
      const second = spawnTracked(['start', '--port', String(port), '--db', db]);
      await waitHealthy(url, second);
      await waitFor(() => second.stderr().includes('npx stocklock audit'));
      const again = lines(second.stderr()).map((line) => line.trim());
      expect(again.some((line) => line.startsWith('export STOCKLOCK_TOKEN=slk_'))).toBe(false);
      const makeToken = again.find((line) => line.startsWith('export STOCKLOCK_TOKEN=$('));
      expect(makeToken).toBe(
        `export STOCKLOCK_TOKEN=$(npx stocklock token create --channel web --admin --db ${dbWord})`,
      );
      const made = shell(`${makeToken} && printf %s "$STOCKLOCK_TOKEN"`);
      expect(made.status, made.stderr).toBe(0);
      const adminClient = await connectClient(url, made.stdout);
      cleanups.push(() => adminClient.close().catch(() => undefined));
      expect((await adminClient.listTools()).tools.map((tool) => tool.name)).toContain('restock');
    },
  );
});

describe('side files', () => {
  it('.gitignore covers the writers queue and a backup’s side files', () => {
    const ignored = [
      'stocklock.db-writers',
      'shop.db-wal',
      'backup.db.partial-0a1b2c3d4e5f',
      'backup.db.partial-0a1b2c3d4e5f-journal',
    ];
    for (const file of ignored) {
      const check = spawnSync('git', ['check-ignore', '--no-index', '-q', file], { cwd: ROOT });
      expect(check.status, file).toBe(0);
    }
  });

  it('auditing or reading a backup leaves nothing beside it', MANY_PROCESSES, () => {
    const { dir, db } = shop();
    const copy = join(dir, 'backup.db');
    expect(runCli(['backup', copy, '--db', db]).status).toBe(0);
    const before = readdirSync(dir).sort();
    expect(runCli(['audit', '--db', copy]).stdout).toContain('OK: every invariant holds');
    expect(runCli(['stock', '--db', copy]).status).toBe(0);
    expect(runCli(['token', 'list', '--db', copy]).status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(existsSync(`${copy}-writers`)).toBe(false);
  });
});
