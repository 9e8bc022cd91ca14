import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Race and end-to-end tests spawn processes; two cores cannot run many files at once.
    maxWorkers: 2,
  },
});
