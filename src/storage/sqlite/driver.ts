// The one place that picks the better-sqlite3 build. 12 is the last line that runs on Node 20 (13 needs Node 22
// and crashes on 20); 12 aborts the process on Node 24 (its native cleanup hook runs without an environment)
// while 13, Node-API with prebuilt binaries in its npm package, runs there. Both have the same JavaScript API,
// so the types come from @types/better-sqlite3 either way.
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const major = Number(process.versions.node.split('.')[0]);

/** The package this Node loads: 13 (installed under an alias) from Node 22 on, 12 on Node 20. */
export const DRIVER_PACKAGE = major >= 22 ? 'better-sqlite3-13' : 'better-sqlite3';

const require = createRequire(import.meta.url);

/** Its entry file, for the audit worker thread, which must load the same build. */
export const DRIVER_PATH = require.resolve(DRIVER_PACKAGE);

/** better-sqlite3's `Database` constructor from that package. */
export const Database = require(DRIVER_PACKAGE) as typeof BetterSqlite3;
