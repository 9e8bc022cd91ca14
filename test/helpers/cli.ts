// Runs the built CLI (dist/cli.js) the way a user would.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}): CliResult {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn', ...env },
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Like runCli, without blocking the event loop: for commands that run while this process drives a server. */
export function runCliAsync(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A real MCP client over stdio to `stocklock serve --stdio`, listing tools first as hosts do. */
export async function stdioClient(args: string[], env: Record<string, string> = {}): Promise<Client> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'serve', '--stdio', ...args],
    env: { ...(process.env as Record<string, string>), STOCKLOCK_LOG_LEVEL: 'warn', ...env },
    stderr: 'pipe',
  });
  const client = new Client({ name: 'stocklock-e2e', version: '1.0.0' });
  await client.connect(transport);
  await client.listTools();
  return client;
}

export interface RunningCli {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
  /** SIGKILLs the process if it is still running; for afterEach. */
  kill: () => Promise<void>;
}

/** Starts a long-running CLI command (`serve --http`, `start`) and collects its stderr. */
export function spawnCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  return { child, stderr: () => stderr, exited, kill };
}

/** Waits until the server at `url` answers /healthz, failing fast if the process exits. */
export async function waitHealthy(url: string, running: RunningCli, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const health = url.replace(/\/mcp$/, '/healthz');
  for (;;) {
    if (running.child.exitCode !== null) throw new Error(`the CLI exited early:\n${running.stderr()}`);
    const ok = await fetch(health)
      .then((response) => response.status === 200)
      .catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${health} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
