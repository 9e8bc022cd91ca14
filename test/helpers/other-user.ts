// Runs the built CLI as another user (nobody) from an installed copy that user can reach, wherever the clone lives.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { type CliResult, ROOT } from './cli.js';

export const NOBODY = 65534;

/**
 * What a shop's install of the package holds: package.json, what its `files` lists (dist, drizzle, …) and the
 * production dependencies. The CLI resolves its migrations, demo catalog and version from import.meta.url,
 * and loads two native addons.
 */
function packageFiles(): string[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files?: string[] };
  return ['package.json', ...(manifest.files ?? [])].filter((entry) => existsSync(join(ROOT, entry)));
}

export interface OtherUserCli {
  /** A directory that user can enter; make the files under test here. */
  workDir(): string;
  run(args: string[]): CliResult;
  remove(): void;
}

/**
 * Installs a copy of the built package under the temp directory (a clone inside a directory only its owner
 * may enter is out of that user's reach), checks the user can run it, and returns it; or the reason it can't.
 */
export function cliForUser(uid: number, gid: number): OtherUserCli | { unavailable: string } {
  const base = mkdtempSync(join(tmpdir(), 'stocklock-as-user-'));
  const remove = () => rmSync(base, { recursive: true, force: true });
  try {
    // Others may pass through, not list: enough to reach the copy and the work directories.
    chmodSync(base, 0o711);
    const install = join(base, 'stocklock');
    mkdirSync(install);
    for (const entry of packageFiles()) mirror(join(ROOT, entry), join(install, entry));
    for (const dir of productionPackages()) mirror(dir, join(install, relative(ROOT, dir)), ['node_modules']);
    openDirectories(install);
    const cli = join(install, 'dist/cli.js');
    const run = (args: string[]): CliResult => {
      const result = spawnSync(process.execPath, [cli, ...args], {
        encoding: 'utf8',
        env: { ...process.env, STOCKLOCK_LOG_LEVEL: 'warn' },
        input: '',
        timeout: 30_000,
        uid,
        gid,
      });
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    };
    const probe = run(['--version']);
    if (probe.status !== 0) {
      remove();
      return {
        unavailable: `user ${uid} cannot run a copy of the CLI under ${tmpdir()}: ${probe.stderr.trim() || `exit ${probe.status}`}`,
      };
    }
    let dirs = 0;
    const workDir = () => {
      const dir = join(base, `work-${++dirs}`);
      mkdirSync(dir, { mode: 0o755 });
      return dir;
    };
    return { workDir, run, remove };
  } catch (error) {
    remove();
    return { unavailable: `cannot install a copy of the CLI under ${tmpdir()}: ${(error as Error).message}` };
  }
}

/** The directories of every installed production dependency, following dependencies, optional and peer ones. */
function productionPackages(): string[] {
  const found = new Set<string>();
  const visit = (from: string, names: string[]) => {
    for (const name of names) {
      const dir = resolvePackage(from, name);
      if (!dir || found.has(dir)) continue; // an optional or peer dependency that is not installed
      found.add(dir);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<
        string,
        Record<string, string> | undefined
      >;
      visit(dir, [
        ...Object.keys(manifest.dependencies ?? {}),
        ...Object.keys(manifest.optionalDependencies ?? {}),
        ...Object.keys(manifest.peerDependencies ?? {}),
      ]);
    }
  };
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  visit(ROOT, Object.keys(root.dependencies));
  return [...found];
}

/** Node's lookup: the nearest node_modules/NAME from `from` up to the project root. */
function resolvePackage(from: string, name: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (relative(ROOT, dir) === '' || dirname(dir) === dir) return undefined;
  }
}

/** Recreates a tree: hard links where the file system allows (no copying 80 MB), copies otherwise. */
function mirror(source: string, target: string, skip: string[] = []): void {
  const stat = lstatSync(source);
  if (stat.isSymbolicLink()) {
    symlinkSync(readlinkSync(source), target);
  } else if (stat.isDirectory()) {
    mkdirSync(target, { recursive: true });
    for (const entry of readdirSync(source)) {
      if (!skip.includes(entry)) mirror(join(source, entry), join(target, entry));
    }
  } else if ((stat.mode & 0o004) !== 0 && tryLink(source, target)) {
    // A hard link shares the original's mode, which already lets others read it.
  } else {
    copyFileSync(source, target);
    chmodSync(target, stat.mode | 0o444);
  }
}

function tryLink(source: string, target: string): boolean {
  try {
    linkSync(source, target);
    return true;
  } catch {
    return false; // another file system, or links not allowed
  }
}

/** Lets others enter every directory of the copy, whatever the umask made of them. */
function openDirectories(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) openDirectories(join(dir, entry.name));
  }
}
