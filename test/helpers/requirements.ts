// What `npm test` needs beyond Node and npm. A suite that needs one declares it here: outside CI a
// missing one skips the suite with one printed line saying how to get it; under CI=true it fails.
import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';
import { postgresUnavailable } from './postgres.js';

export interface Requirement {
  /** What the tests need, as the skip line and the CI failure name it. */
  name: string;
  /** How to get it. */
  install: string;
  /** Why it cannot be used, or undefined when it can. */
  missing(): Promise<string | undefined> | string | undefined;
}

/** Debian's chromium, driven by playwright-core (nothing is downloaded). */
export const CHROMIUM = process.env.STOCKLOCK_CHROMIUM ?? '/usr/bin/chromium';
export const NGINX = '/usr/sbin/nginx';
const EXAMPLE_PACKAGES = new URL('../../examples/node_modules/@openai/agents-realtime', import.meta.url);

export const postgres: Requirement = {
  name: 'PostgreSQL',
  install:
    'run PostgreSQL at 127.0.0.1:5432 with trust auth for postgres (apt-get install postgresql), or set STOCKLOCK_TEST_POSTGRES_URL',
  missing: postgresUnavailable,
};

export const chromium: Requirement = {
  name: "Debian's chromium",
  install: 'apt-get install chromium (or set STOCKLOCK_CHROMIUM to a Chromium binary)',
  missing: () => (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing`),
};

export const nginx: Requirement = {
  name: 'nginx',
  install: 'apt-get install nginx-light',
  missing: () => (existsSync(NGINX) ? undefined : `${NGINX} is missing`),
};

/** The voice examples' packages live in examples/package.json, so the server's own install needs no Node 22. */
export const examplePackages: Requirement = {
  name: "the examples' packages",
  install: 'npm install --prefix examples',
  missing: () => (existsSync(EXAMPLE_PACKAGES) ? undefined : 'examples/node_modules is not installed'),
};

const answers = new Map<Requirement, Promise<string | undefined>>();
const announced = new Set<Requirement>();

/** Why `requirement` is unmet in this test file, or undefined when it is met; asked once per file. */
export function unmet(requirement: Requirement): Promise<string | undefined> {
  let answer = answers.get(requirement);
  if (!answer) {
    answer = Promise.resolve(requirement.missing());
    answers.set(requirement, answer);
  }
  return answer;
}

/**
 * A describe block that runs only where every requirement is met. Outside CI an unmet one skips it,
 * printing one line per requirement and file; under CI=true it fails with a test naming why.
 */
export function describeWith(
  requirements: Requirement | Requirement[],
  name: string,
  fn: () => void | Promise<void>,
): void {
  describe(name, async () => {
    const needed = Array.isArray(requirements) ? requirements : [requirements];
    for (const requirement of needed) {
      const reason = await unmet(requirement);
      if (reason === undefined) continue;
      if (process.env.CI === 'true') {
        it(`needs ${requirement.name}, which CI must provide`, () => {
          throw new Error(`${reason}; ${requirement.install}`);
        });
        return;
      }
      if (!announced.has(requirement)) {
        announced.add(requirement);
        console.warn(`Skipping the tests that need ${requirement.name} (${reason}): ${requirement.install}`);
      }
      it.skip(`needs ${requirement.name}`, () => undefined);
      return;
    }
    return fn();
  });
}

type Body = () => void | Promise<void>;
export const describePostgres = (name: string, fn: Body) => describeWith(postgres, name, fn);
export const describeBrowser = (name: string, fn: Body) => describeWith(chromium, name, fn);
export const describeNginx = (name: string, fn: Body) => describeWith(nginx, name, fn);
export const describeExamples = (name: string, fn: Body) => describeWith(examplePackages, name, fn);
