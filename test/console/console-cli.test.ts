// The console as the built CLI serves it: `start` prints its address, `--no-console` leaves it out.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnCli, waitHealthy } from '../helpers/cli.js';
import { freePort, waitFor } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(args: string[], env: Record<string, string> = {}) {
  const tmp = tempDir('stocklock-console-cli-');
  cleanups.push(tmp.remove);
  const port = await freePort();
  const server = spawnCli([...args, '--port', String(port), '--db', join(tmp.dir, 'stocklock.db')], env);
  cleanups.push(server.kill);
  const base = `http://127.0.0.1:${port}`;
  await waitHealthy(`${base}/mcp`, server);
  return { server, base };
}

describe('the console from the command line', () => {
  it('`start` serves the console and prints its address', async () => {
    const { server, base } = await serve(['start']);
    await waitFor(() => server.stderr().includes('Merchant console:'));
    expect(server.stderr()).toContain(`Merchant console: ${base}/console/ (sign in with an admin token)`);
    const page = await fetch(`${base}/console/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<label for="token">Admin token</label>');
    const script = await fetch(`${base}/console/assets/console.js`);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
  });

  it('`serve --http --no-console` and STOCKLOCK_NO_CONSOLE=true leave it out', async () => {
    for (const [args, env] of [
      [['serve', '--http', '--no-console'], {}],
      [['serve', '--http'], { STOCKLOCK_NO_CONSOLE: 'true' }],
    ] as const) {
      const { base } = await serve([...args], env);
      expect((await fetch(`${base}/console/`)).status).toBe(404);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    }
  });
});
