// Temporary directories for tests: every test that needs files makes them here.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  dir: string;
  /** Removes the directory and everything in it; safe to call twice. */
  remove(): void;
}

/** A new, empty directory under the system's temporary directory. */
export function tempDir(prefix = 'stocklock-'): TempDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
