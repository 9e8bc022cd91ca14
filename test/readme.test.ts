// README.md runs as written: every shell block is run in order in one sandbox, or its first line says why not here.
//
// The sandbox is an empty directory with the project's package.json, dist, drizzle, examples and node_modules
// linked in, so `npm start`, `npx stocklock` and `npx tsx` resolve as in a fresh clone and no database is left
// in the checkout. Two rewrites: the README's ports (3000, the default; 3100, the one "First five minutes"
// picks; 3001) become free ports, because other test files on the machine hold ports of their own; and
// `npx stocklock` becomes `node <checkout>/dist/cli.js`, the bin it resolves to, because npx links the
// project into its cache per directory and cannot from a directory whose node_modules is a link (the
// first test below runs `npx stocklock` itself, from the checkout). A line
// whose comment says `leave it running` is started in the background, and the block goes on once its port
// answers /healthz. Exported variables carry over from block to block, as in one terminal.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { freePort } from './helpers/http.js';

/** A block that cannot run here says so in its first line, with the reason a reader sees too. */
const NOT_RUN = /^# not run here: (.+)$/;
const LEAVE_RUNNING = /^(.*?)\s+#\s*leave it running\b.*$/;

interface Block {
  lang: string;
  line: number;
  text: string;
}

function blocks(markdown: string): Block[] {
  const found: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    // Fences indented inside a list item count too; their indentation is not part of the commands.
    const open = /^( *)```(\w*)\s*$/.exec(lines[i] ?? '');
    if (!open) continue;
    const indent = open[1] ?? '';
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^ *```\s*$/.test(lines[i] ?? ''); i++)
      body.push(
        (lines[i] ?? '').startsWith(indent) ? (lines[i] ?? '').slice(indent.length) : (lines[i] ?? ''),
      );
    found.push({ lang: open[2] ?? '', line: start + 1, text: body.join('\n') });
  }
  return found;
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const ALL = blocks(README);
const SHELL = ALL.filter((block) => ['sh', 'bash', 'shell'].includes(block.lang));

const running: ChildProcess[] = [];
const sandboxes: string[] = [];
afterAll(() => {
  // Each block ran in its own process group; servers it left running are in it.
  for (const child of running) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const dir of sandboxes) rmSync(dir, { recursive: true, force: true });
});

function sandbox(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stocklock-readme-'));
  sandboxes.push(dir);
  for (const entry of ['package.json', 'dist', 'drizzle', 'examples', 'node_modules', 'mcp.json'])
    symlinkSync(join(ROOT, entry), join(dir, entry));
  return dir;
}

/** Runs one block in bash in `dir`, carrying exported variables in env.sh; resolves with its exit and output. */
function runBlock(
  dir: string,
  script: string,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  const wrapped = [
    'set -eo pipefail',
    `cd ${JSON.stringify(dir)}`,
    '[ -f env.sh ] && . ./env.sh',
    // Saved on every exit, so what a block exported reaches the next one.
    'trap "export -p > env.sh" EXIT',
    script,
  ].join('\n');
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('STOCKLOCK_')),
  );
  const child = spawn('bash', ['-c', wrapped], {
    cwd: dir,
    env: { ...inherited, npm_config_yes: 'true', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      output += `\n[readme.test: block timed out after ${timeoutMs} ms]`;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The block as the test runs it: ports mapped, and `leave it running` lines started in the background. */
function prepare(text: string, ports: Map<string, number>): string {
  const mapped = text
    .replace(/\b(3000|3001|3100)\b/g, (port) => String(ports.get(port)))
    .replaceAll('npx stocklock', `node ${JSON.stringify(join(ROOT, 'dist/cli.js'))}`);
  return mapped
    .split('\n')
    .map((line, index) => {
      const match = LEAVE_RUNNING.exec(line);
      if (!match) return line;
      const port = /--port (\d+)/.exec(line)?.[1] ?? String(ports.get('3100'));
      const log = `server-${index}-${port}.log`;
      return [
        `${match[1]} > ${log} 2>&1 &`,
        // Bounded by the condition it waits for: the port answering, or the server having exited.
        `server=$!; for i in $(seq 600); do curl -sf http://127.0.0.1:${port}/healthz > /dev/null && break; kill -0 $server 2> /dev/null || { cat ${log}; exit 1; }; sleep 0.1; done`,
        `curl -sf http://127.0.0.1:${port}/healthz > /dev/null || { cat ${log}; exit 1; }`,
      ].join('\n');
    })
    .join('\n');
}

describe('README.md', () => {
  it('opens with the two commands for a fresh machine: set up and serve, then the tests', () => {
    const first = ALL[0];
    expect(first?.lang).toBe('sh');
    const commands = first?.text.split('\n').map((line) => line.replace(/#.*$/, '').trim());
    // Not run by this test: `npm install` is how the checkout got here, and `npm test` is what runs this test.
    expect(commands).toEqual(['npm install && npm start', 'npm test']);
    expect(README.indexOf(first?.text ?? '')).toBeLessThan(README.indexOf('\n## '));
  });

  it('`npx stocklock` resolves to this checkout’s CLI from its directory, as the README says', async () => {
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('npx', ['stocklock', '--version'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
      });
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
      });
      child.once('close', (code) => resolve({ code, output }));
    });
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
      .version;
    expect(result.output.trim()).toBe(version);
  }, 180_000);

  it('points at the demo CSV as the catalog format’s example, and says what npm test needs and takes', () => {
    expect(README).toContain('examples/demo-catalog.csv');
    expect(README).toMatch(/`npm test`\s+takes about [\d–-]+ minutes/);
  });

  it('has JSON blocks that parse', () => {
    for (const block of ALL.filter((b) => b.lang === 'json')) {
      expect(() => JSON.parse(block.text), `README.md line ${block.line}`).not.toThrow();
    }
  });

  it('runs every shell block as written, in order, or names why it cannot run here', {
    timeout: 900_000,
  }, async () => {
    const ports = new Map<string, number>();
    const shared = await freePort();
    ports.set('3000', shared);
    ports.set('3100', shared);
    ports.set('3001', await freePort());
    const dir = sandbox();
    const skipped: string[] = [];
    let ran = 0;
    for (const block of SHELL.slice(1)) {
      const reason = NOT_RUN.exec(block.text.split('\n')[0] ?? '')?.[1];
      if (reason) {
        expect(reason.trim().length, `README.md line ${block.line}: say why`).toBeGreaterThan(10);
        skipped.push(`line ${block.line}: ${reason}`);
        continue;
      }
      const result = await runBlock(dir, prepare(block.text, ports), 300_000);
      expect(
        result.code,
        `README.md line ${block.line}:\n${block.text}\n--- output ---\n${result.output}`,
      ).toBe(0);
      ran++;
    }
    expect(ran).toBeGreaterThanOrEqual(5);
    // The walk ends where the issue says a newcomer must: a sale made, the books balanced.
    expect(existsSync(join(dir, 'shop.db'))).toBe(true);
    const audit = await runBlock(dir, prepare('npx stocklock audit --db ./shop.db', ports), 60_000);
    expect(audit.output).toContain('OK: every invariant holds');
    expect(audit.output).toMatch(/[1-9]\d* orders/);
    // The demo CSV re-imported after the sale left the sold-out jacket sold out.
    const jacket = await runBlock(
      dir,
      prepare('npx stocklock stock JACKET-LTD --json --db ./shop.db 2> /dev/null', ports),
      60_000,
    );
    expect(JSON.parse(jacket.output)).toMatchObject([{ sku: 'JACKET-LTD', on_hand: 0, reserved: 0 }]);
    console.info(`README blocks run: ${ran}; not run here:\n  ${skipped.join('\n  ')}`);
  });
});
