// Measures how long a change takes to reach an open console page: from an add_to_cart answer to the stock row showing it.
// `npm run build && node --import tsx scripts/console-latency.ts [samples]`; Debian's Chromium, a throwaway SQLite file.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from '../test/helpers/browser.js';
import { call, connectClient, freePort } from '../test/helpers/http.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli.js');
const SAMPLES = Number(process.argv[2] ?? 15);
const dir = mkdtempSync(join(tmpdir(), 'stocklock-latency-'));
const db = join(dir, 'stocklock.db');
const cli = (...args: string[]) =>
  execFileSync(process.execPath, [CLI, ...args, '--db', db], { encoding: 'utf8' }).trim();

cli('import', join(ROOT, 'examples', 'demo-catalog.json'));
const admin = cli('token', 'create', '--channel', 'ops', '--admin');
const customer = cli('token', 'create', '--channel', 'web');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, [CLI, 'serve', '--http', '--port', String(port), '--db', db], {
  stdio: 'ignore',
});
const browser = await launchBrowser();
try {
  for (let i = 0; !(await fetch(`${base}/healthz`).then((r) => r.ok, () => false)); i++) {
    if (i > 200) throw new Error('the server did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const page = await browser.context.newPage();
  await page.goto(`${base}/console/`);
  await page.getByLabel('Admin token').fill(admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#live.on').waitFor();
  const client = await connectClient(`${base}/mcp`, customer);
  const reserved = '#stock-table tr[data-sku="STICKER-PACK"] td[data-label="Reserved"]';
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    await page.waitForFunction(([sel, n]) => document.querySelector(sel)?.textContent === n, [reserved, String(i)]);
    await call(client, 'add_to_cart', { sku: 'STICKER-PACK', quantity: 1 });
    const answered = Date.now();
    await page.waitForFunction(([sel, n]) => document.querySelector(sel)?.textContent === n, [reserved, String(i + 1)], {
      polling: 'raf',
    });
    samples.push(Date.now() - answered);
    // Apart by more than the feed's 250 ms merge window, so each sample is a change of its own.
    await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 300));
  }
  await client.close();
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)];
  process.stdout.write(
    `ms from the add_to_cart answer to the page showing it (${SAMPLES} samples): median ${median}, max ${samples.at(-1)}\n` +
      `all: ${samples.join(' ')}\n`,
  );
} finally {
  await browser.close();
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
