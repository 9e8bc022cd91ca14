#!/usr/bin/env node
// The `stocklock` bin (dist/cli.js): runs the program that src/cli/ defines.
import { main } from './cli/index.js';

await main();
