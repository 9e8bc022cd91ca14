// The README's bot-backend example (examples/bot-backend.ts) run as its own process against a live server.
import { afterEach, describe, expect, it } from 'vitest';
import { type HttpFixture, startHttp } from '../helpers/http.js';
import { exampleRunner } from '../helpers/run-example.js';

/** `npx tsx examples/bot-backend.ts` without npx: node with tsx's loader, from the local devDependency. */
const runExample = exampleRunner('bot-backend.ts');

let fixture: HttpFixture | undefined;
afterEach(async () => {
  await fixture?.dispose();
  fixture = undefined;
});

describe('examples/bot-backend.ts', () => {
  it('searches, adds, survives a redelivered update and a retried checkout, and the books balance', async () => {
    fixture = await startHttp();
    const token = await fixture.token('telegram');

    const run = await runExample({ STOCKLOCK_URL: fixture.url, STOCKLOCK_TOKEN: token });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/^redelivered \d+ \/add MUG-WHT 2$/m);
    expect(run.stdout).toContain('OK: the redelivered update and the retried checkout were applied once.');
    const orders = [...run.stdout.matchAll(/Order (ord_\w+) placed/g)].map((match) => match[1]);
    expect(orders).toHaveLength(2);
    expect(orders[0]).toBe(orders[1]);

    // Sold once: 2 mugs and 1 T-shirt, nothing left reserved.
    expect(await fixture.store.stockLevels(['MUG-WHT', 'TEE-BLK-M'])).toMatchObject([
      { sku: 'MUG-WHT', on_hand: 58, reserved: 0 },
      { sku: 'TEE-BLK-M', on_hand: 499, reserved: 0 },
    ]);
    const audit = await fixture.store.audit();
    expect(audit.violations).toEqual([]);
    expect(audit.ok).toBe(true);
    expect(audit.checked).toMatchObject({ carts: 1, orders: 1 });
  });

  it('fails on a bad token with the 401, and with usage help without settings', async () => {
    fixture = await startHttp();
    const [refused, usage] = await Promise.all([
      runExample({ STOCKLOCK_URL: fixture.url, STOCKLOCK_TOKEN: 'slk_not-a-real-token' }),
      runExample({}),
    ]);
    expect(refused.code).toBe(1);
    // The v2 client negotiating the era ('auto') reports the probe's 401 by its status, not stocklock's body.
    expect(refused.stderr).toContain('the server requires authorization (HTTP 401)');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: STOCKLOCK_URL=');
  });
});
