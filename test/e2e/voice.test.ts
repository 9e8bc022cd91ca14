// The JavaScript voice examples (examples/voice-*.ts) run as their own processes against a live server.
import { afterEach, expect, it } from 'vitest';
import { CUSTOMER_TOOLS, call, type HttpFixture, startHttp } from '../helpers/http.js';
import { describeExamples } from '../helpers/requirements.js';
import { exampleRunner } from '../helpers/run-example.js';

let fixture: HttpFixture | undefined;
afterEach(async () => {
  await fixture?.dispose();
  fixture = undefined;
});

describeExamples('examples/voice-realtime.ts (OpenAI RealtimeAgent + MCPServerStreamableHttp)', () => {
  const runRealtime = exampleRunner('voice-realtime.ts');

  it('lists the voice token’s tools and reads live stock through the server object and the agent’s tool', async () => {
    fixture = await startHttp();
    const token = await fixture.token('voice');
    // Another caller on the same channel holds 2 of the 5: the example must see 3, not the catalog's 5.
    const caller = await fixture.connect(token);
    const held = await call(caller, 'add_to_cart', { sku: 'LAST-FIVE', quantity: 2 });
    expect(held.isError).toBeFalsy();
    await caller.close();

    const run = await runRealtime({
      STOCKLOCK_URL: fixture.url,
      STOCKLOCK_TOKEN: token,
      CHECK_SKU: 'LAST-FIVE',
    });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const listed = run.stdout
      .match(/^tools: (.*)$/m)?.[1]
      ?.split(', ')
      .sort();
    expect(listed).toEqual(CUSTOMER_TOOLS);
    expect(run.stdout).toMatch(/^check_stock via the MCP server: .*\(LAST-FIVE\).*3 available/m);
    expect(run.stdout).toMatch(/^check_stock via the agent's tool: .*\(LAST-FIVE\).*3 available/m);
    expect(run.stdout).toContain('OK: no OPENAI_API_KEY, so the realtime session was not started.');

    // Reading changed nothing: still 2 reserved, and the books balance.
    expect(await fixture.store.stockLevels(['LAST-FIVE'])).toMatchObject([
      { sku: 'LAST-FIVE', on_hand: 5, reserved: 2 },
    ]);
    const audit = await fixture.store.audit();
    expect(audit.violations).toEqual([]);
  });

  it('fails on a bad token with the 401, and with usage help without settings', async () => {
    fixture = await startHttp();
    const [refused, usage] = await Promise.all([
      runRealtime({ STOCKLOCK_URL: fixture.url, STOCKLOCK_TOKEN: 'slk_not-a-real-token' }),
      runRealtime({}),
    ]);
    expect(refused.code, `${refused.stdout}\n${refused.stderr}`).toBe(1);
    // agents-core's MCP client (@modelcontextprotocol/client 2.x) reports the status, not stocklock's body.
    expect(refused.stderr).toContain('voice-realtime: ');
    expect(refused.stderr).toContain('HTTP 401');
    expect(refused.stdout).not.toContain('tools:');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: STOCKLOCK_URL=');
  });
});

describeExamples('examples/voice-livekit.ts (LiveKit Agents toolset around the MCP SDK client)', () => {
  const runLivekit = exampleRunner('voice-livekit.ts');

  it('sets the toolset up as an agent activation would, lists the tools and reads live stock', async () => {
    fixture = await startHttp();
    const token = await fixture.token('voice');
    const caller = await fixture.connect(token);
    const held = await call(caller, 'add_to_cart', { sku: 'LAST-FIVE', quantity: 4 });
    expect(held.isError).toBeFalsy();
    await caller.close();

    const run = await runLivekit({
      STOCKLOCK_URL: fixture.url,
      STOCKLOCK_TOKEN: token,
      CHECK_SKU: 'LAST-FIVE',
    });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/^agent toolsets: stocklock$/m);
    const listed = run.stdout
      .match(/^tools: (.*)$/m)?.[1]
      ?.split(', ')
      .sort();
    expect(listed).toEqual(CUSTOMER_TOOLS);
    expect(run.stdout).toMatch(/^check_stock via the toolset: .*\(LAST-FIVE\).*1 available/m);
    expect(run.stdout).toContain('OK: the toolset listed and called stocklock');
    expect(await fixture.store.stockLevels(['LAST-FIVE'])).toMatchObject([
      { sku: 'LAST-FIVE', on_hand: 5, reserved: 4 },
    ]);
    expect((await fixture.store.audit()).violations).toEqual([]);
  });

  it('fails with the server’s own message on a bad token, and with usage help without settings', async () => {
    fixture = await startHttp();
    const [refused, usage] = await Promise.all([
      runLivekit({ STOCKLOCK_URL: fixture.url, STOCKLOCK_TOKEN: 'slk_not-a-real-token' }),
      runLivekit({}),
    ]);
    expect(refused.code, `${refused.stdout}\n${refused.stderr}`).toBe(1);
    expect(refused.stderr).toContain('voice-livekit: ');
    expect(refused.stderr).toContain('Unauthorized: the token is unknown or revoked');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: STOCKLOCK_URL=');
  });
});
