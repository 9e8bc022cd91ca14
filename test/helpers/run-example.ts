// Runs a file under examples/ as its own Node process (tsx's loader) and collects its exit and output.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ExampleExit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Returns a runner for `examples/<file>`; children still running after a test are killed.
 * Settings the examples read come only from `env`, never from the caller's environment, so a developer's
 * own STOCKLOCK_TOKEN or OPENAI_API_KEY cannot change what a test sees.
 */
export function exampleRunner(file: string): (env: Record<string, string>) => Promise<ExampleExit> {
  const example = fileURLToPath(new URL(`../../examples/${file}`, import.meta.url));
  const running = new Set<ChildProcess>();
  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
    running.clear();
  });
  return (env) => {
    const base = { ...process.env };
    for (const name of ['STOCKLOCK_URL', 'STOCKLOCK_TOKEN', 'OPENAI_API_KEY', 'CHECK_SKU']) delete base[name];
    const child = spawn(process.execPath, ['--import', 'tsx', example], {
      cwd: ROOT,
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    // No timer of its own: tsx alone can take seconds to start on a loaded machine. A hang is bounded by
    // the test's timeout, and afterEach kills whatever is left.
    running.add(child);
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => {
        running.delete(child);
        resolve({ code, stdout, stderr });
      });
    });
  };
}
