// The import rules of docs/architecture.md, checked on every file under src/: which part may import which.
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

type Part =
  | 'domain'
  | 'storage/interface'
  | 'storage'
  | 'storage/workflow'
  | 'storage/sqlite'
  | 'storage/postgres'
  | 'mcp'
  | 'auth'
  | 'console'
  | 'transports'
  | 'cli'
  | 'config'
  | 'catalog'
  | 'logger'
  | 'sweeper'
  | 'payments';

/** Which part a file under src/ belongs to; a new file outside these is refused until it is placed here. */
function partOf(file: string): Part | undefined {
  if (file.startsWith('src/domain/')) return 'domain';
  if (
    file === 'src/storage/store.ts' ||
    file === 'src/storage/shared.ts' ||
    file === 'src/storage/oauth.ts' ||
    file === 'src/storage/mcp-sessions.ts' ||
    file === 'src/storage/console-queries.ts'
  )
    return 'storage/interface';
  if (file.startsWith('src/storage/workflow/')) return 'storage/workflow';
  if (file.startsWith('src/storage/sqlite/')) return 'storage/sqlite';
  if (file.startsWith('src/storage/postgres/')) return 'storage/postgres';
  if (file.startsWith('src/storage/')) return 'storage';
  if (file.startsWith('src/mcp/')) return 'mcp';
  if (file.startsWith('src/auth/')) return 'auth';
  if (file.startsWith('src/console/')) return 'console';
  if (file.startsWith('src/payments/')) return 'payments';
  if (file.startsWith('src/transports/')) return 'transports';
  if (file === 'src/cli.ts' || file.startsWith('src/cli/')) return 'cli';
  const single: Record<string, Part> = {
    'src/config.ts': 'config',
    'src/catalog.ts': 'catalog',
    'src/logger.ts': 'logger',
    'src/sweeper.ts': 'sweeper',
  };
  return single[file];
}

const ALL_PARTS: Part[] = [
  'domain',
  'storage/interface',
  'storage',
  'storage/workflow',
  'storage/sqlite',
  'storage/postgres',
  'mcp',
  'auth',
  'console',
  'transports',
  'cli',
  'config',
  'catalog',
  'logger',
  'sweeper',
  'payments',
];
// rate-limiter-flexible keeps its counters in the store's own database (storage/limits.ts). better-sqlite3-13 is
// better-sqlite3 13 under an npm alias, which storage/sqlite/driver.ts loads from Node 22 on.
const DATABASE = [
  'drizzle-orm',
  'better-sqlite3',
  'better-sqlite3-13',
  'pg',
  'fs-native-extensions',
  'rate-limiter-flexible',
];

/** What each part may import: parts of src/ and npm packages (node: builtins are open to all). */
const RULES: Record<Part, { parts: Part[]; packages: string[] }> = {
  // Pure rules: no SDK, no database, no framework.
  domain: { parts: ['domain'], packages: [] },
  // The InventoryStore interface and the helpers both dialects share.
  'storage/interface': { parts: ['domain', 'storage/interface'], packages: [] },
  // open.ts picks a dialect; audit.ts holds the queries both share.
  storage: {
    parts: ['domain', 'storage/interface', 'storage', 'storage/sqlite', 'storage/postgres'],
    packages: DATABASE,
  },
  // Each stock operation written once, over the Engine a dialect implements: no SQL, no driver, no dialect.
  'storage/workflow': { parts: ['domain', 'storage/interface', 'storage/workflow'], packages: [] },
  'storage/sqlite': {
    parts: ['domain', 'storage/interface', 'storage', 'storage/workflow', 'storage/sqlite'],
    packages: DATABASE,
  },
  'storage/postgres': {
    parts: ['domain', 'storage/interface', 'storage', 'storage/workflow', 'storage/postgres'],
    packages: DATABASE,
  },
  // The only part that imports the MCP SDK (src/mcp/sdk.ts lends its transports to src/transports); ext-apps'
  // server helpers register the MCP App (src/mcp/app.ts).
  mcp: {
    parts: ['domain', 'storage/interface', 'mcp', 'logger', 'payments'],
    packages: ['@modelcontextprotocol/server', '@modelcontextprotocol/ext-apps', 'zod'],
  },
  // OAuth: grants live in the store, behind its interface (src/storage/oauth.ts).
  auth: {
    parts: ['domain', 'storage/interface', 'auth', 'logger'],
    packages: ['express', 'zod', 'ipaddr.js'],
  },
  // The merchant console: its reads through ConsoleQueries, its changes through the InventoryStore; the
  // OAuth host map through auth's own functions, the ones `stocklock oauth allow|deny` uses.
  console: {
    parts: ['domain', 'storage/interface', 'auth', 'catalog', 'config', 'logger', 'console'],
    packages: ['express', 'zod'],
  },
  transports: {
    parts: ['domain', 'storage/interface', 'mcp', 'auth', 'transports', 'logger'],
    packages: ['express'],
  },
  // The composition root: it alone picks a store and a transport.
  cli: { parts: ALL_PARTS, packages: ['commander'] },
  config: { parts: ['domain', 'storage/interface'], packages: ['commander'] },
  catalog: { parts: ['domain'], packages: ['csv-parse'] },
  logger: { parts: [], packages: ['pino'] },
  sweeper: { parts: ['domain', 'storage/interface', 'logger'], packages: [] },
  // Payment providers and their webhooks: the store through its interface, calls out only after a commit.
  payments: {
    parts: ['domain', 'storage/interface', 'logger', 'payments'],
    packages: ['stripe', 'standardwebhooks', 'express'],
  },
};

/** Every module specifier a file names: static imports and re-exports, bare imports, import(). */
function specifiersOf(source: string): string[] {
  const found = [
    ...source.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ];
  return found.map((match) => match[1] as string);
}

function packageOf(specifier: string): string {
  const segments = specifier.split('/');
  return (specifier.startsWith('@') ? segments.slice(0, 2) : segments.slice(0, 1)).join('/');
}

/** The rule an import from `file` (a path under src/) to `specifier` breaks, or undefined. */
function violation(file: string, specifier: string): string | undefined {
  const part = partOf(file);
  if (!part)
    return `${file} belongs to no part: place it in test/architecture.test.ts and docs/architecture.md`;
  const rule = RULES[part];
  if (specifier.startsWith('node:')) return undefined;
  if (specifier.startsWith('.')) {
    const target = posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
    const targetPart = partOf(target);
    if (targetPart && rule.parts.includes(targetPart)) return undefined;
    return `${file} (${part}) imports ${target} (${targetPart ?? 'outside src'}); ${part} may import ${rule.parts.length > 0 ? `only ${rule.parts.join(', ')}` : 'nothing in src/'}`;
  }
  if (rule.packages.includes(packageOf(specifier))) return undefined;
  return `${file} (${part}) imports the package ${specifier}; ${part} may import ${rule.packages.join(', ') || 'no package'} besides node: builtins`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [relative(ROOT, path).split('\\').join('/')] : [];
  });
}

/** The files under src/ that `file` imports (relative specifiers only). */
function localImportsOf(file: string): string[] {
  return specifiersOf(readFileSync(join(ROOT, file), 'utf8'))
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.js$/, '.ts'));
}

/** One import cycle among `files` (a path that returns to its start), or undefined. */
function importCycle(files: string[], importsOf: (file: string) => string[]): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): string[] | undefined => {
    if (state.get(file) === 'done') return undefined;
    if (state.get(file) === 'open') return [...path.slice(path.indexOf(file)), file];
    state.set(file, 'open');
    path.push(file);
    for (const next of importsOf(file)) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(file, 'done');
    return undefined;
  };
  for (const file of files) {
    const cycle = visit(file);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('architecture: what each part of src/ may import', () => {
  it('holds for every file under src/', () => {
    const files = sourceFiles(join(ROOT, 'src'));
    expect(files.length).toBeGreaterThan(30);
    const broken = files.flatMap((file) =>
      specifiersOf(readFileSync(join(ROOT, file), 'utf8'))
        .map((specifier) => violation(file, specifier))
        .filter((message) => message !== undefined),
    );
    expect(broken).toEqual([]);
  });

  it('loads better-sqlite3 only in storage/sqlite/driver.ts, which picks the build for the running Node', () => {
    const DRIVER = 'src/storage/sqlite/driver.ts';
    // A value import, a require or require.resolve of either build, or the alias named at all; types may come from
    // @types/better-sqlite3 anywhere in storage.
    const loads = [
      /^\s*import\s+(?!type\b)[^;]*?\bfrom\s*['"]better-sqlite3(?:-13)?['"]/m,
      /\bimport\(\s*['"]better-sqlite3(?:-13)?['"]/,
      /\brequire(?:\.resolve)?\(\s*['"]better-sqlite3(?:-13)?['"]/,
      /['"]better-sqlite3-13['"]/,
    ];
    const files = sourceFiles(join(ROOT, 'src'));
    expect(files).toContain(DRIVER);
    const offenders = files.filter(
      (file) =>
        file !== DRIVER && loads.some((pattern) => pattern.test(readFileSync(join(ROOT, file), 'utf8'))),
    );
    expect(offenders).toEqual([]);
    expect(loads[0]?.test("import Database from 'better-sqlite3';")).toBe(true);
    expect(loads[0]?.test("import type Database from 'better-sqlite3';")).toBe(false);
  });

  it('has no import cycle under src/ (dynamic imports included)', () => {
    const files = sourceFiles(join(ROOT, 'src'));
    const known = new Set(files);
    const cycle = importCycle(files, (file) => localImportsOf(file).filter((target) => known.has(target)));
    expect(cycle, cycle?.join(' → ')).toBeUndefined();
  });

  it('keeps the MCP App page (app/) to its own files and ext-apps: it runs in a host, never on the server', () => {
    const files = readdirSync(join(ROOT, 'app')).filter((name) => name.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(0);
    const broken = files.flatMap((name) =>
      specifiersOf(readFileSync(join(ROOT, 'app', name), 'utf8'))
        .filter((specifier) =>
          specifier.startsWith('.')
            ? !/^\.\/[\w-]+\.js$/.test(specifier)
            : packageOf(specifier) !== '@modelcontextprotocol/ext-apps',
        )
        .map((specifier) => `app/${name} imports ${specifier}; the page may import ./*.js and ext-apps only`),
    );
    expect(broken).toEqual([]);
  });

  it('keeps every file under src/ and public/ at 400 lines or fewer (one responsibility a file)', () => {
    const everyFile = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? everyFile(join(dir, entry.name)) : [join(dir, entry.name)],
      );
    const long = [
      ...everyFile(join(ROOT, 'src')),
      ...everyFile(join(ROOT, 'public')),
      ...everyFile(join(ROOT, 'app')),
    ]
      .map((path) => ({
        file: relative(ROOT, path),
        lines: readFileSync(path, 'utf8').split('\n').length - 1,
      }))
      .filter(({ lines }) => lines > 400);
    expect(long).toEqual([]);
  });

  it('finds an import cycle when there is one', () => {
    const graph: Record<string, string[]> = { a: ['b'], b: ['c'], c: ['a'], d: ['a'] };
    expect(importCycle(['d'], (file) => graph[file] ?? [])).toEqual(['a', 'b', 'c', 'a']);
    expect(importCycle(['c'], (file) => (file === 'c' ? ['d'] : []))).toBeUndefined();
  });

  it('sees the imports it checks, multi-line and dynamic ones too', () => {
    const source = readFileSync(join(ROOT, 'src/cli/serve.ts'), 'utf8');
    expect(specifiersOf(source)).toEqual(
      expect.arrayContaining([
        'commander',
        '../config.js',
        '../transports/http.js',
        '../transports/stdio.js',
      ]),
    );
    expect(specifiersOf('import {\n  a,\n  b,\n} from \'./x.js\';\nexport * from "../y.js";')).toEqual([
      './x.js',
      '../y.js',
    ]);
  });

  it.each([
    ['src/domain/rules.ts', '@modelcontextprotocol/server', 'the SDK in the domain'],
    ['src/domain/rules.ts', 'pg', 'a database driver in the domain'],
    ['src/domain/rules.ts', '../storage/store.js', 'storage from the domain'],
    ['src/mcp/server.ts', 'drizzle-orm', 'drizzle in mcp'],
    ['src/mcp/server.ts', '../storage/sqlite/store.js', 'a store implementation in mcp'],
    ['src/mcp/server.ts', '../transports/http.js', 'a transport in mcp'],
    ['src/transports/http/sessions.ts', '@modelcontextprotocol/server', 'the SDK beside src/mcp'],
    ['src/transports/http/app.ts', '../../storage/open.js', 'choosing a store in a transport'],
    ['src/storage/sqlite/store.ts', '../postgres/store.js', 'one dialect from the other'],
    ['src/storage/workflow/operations.ts', '../sqlite/engine.js', 'a dialect in the workflow'],
    ['src/storage/workflow/operations.ts', 'pg', 'a driver in the workflow'],
    ['src/storage/store.ts', '../mcp/server.js', 'mcp from storage'],
    ['src/auth/grants.ts', '../storage/postgres/store.js', 'a dialect from auth'],
    ['src/reports/page.ts', './x.js', 'a file in no part'],
    ['src/console/console.ts', '../storage/sqlite/console-queries.js', 'a dialect in the console'],
    ['src/console/console.ts', '../mcp/server.js', 'mcp in the console'],
    ['src/payments/stripe.ts', '../storage/sqlite/store.js', 'a dialect in payments'],
    ['src/payments/webhooks.ts', '../mcp/server.js', 'mcp in payments'],
    ['src/domain/rules.ts', 'stripe', 'stripe in the domain'],
  ])('refuses %s importing %s (%s)', (file, specifier) => {
    expect(violation(file, specifier)).toBeDefined();
  });

  it.each([
    ['src/transports/http/sessions.ts', '../../mcp/sdk.js'],
    ['src/transports/http/credentials.ts', '../../storage/shared.js'],
    ['src/cli/serve.ts', '../storage/open.js'],
    ['src/storage/open.ts', './sqlite/store.js'],
    ['src/domain/rules.ts', 'node:crypto'],
    ['src/payments/stripe.ts', 'stripe'],
    ['src/mcp/tools/checkout.ts', '../../payments/checkout.js'],
  ])('allows %s importing %s', (file, specifier) => {
    expect(violation(file, specifier)).toBeUndefined();
  });
});
