import { defineConfig } from 'vitest/config';

/** The container tier (scripts/containers/run.sh): kept out of `npm test` by its file suffix. */
export default defineConfig({
  test: {
    include: ['containers/**/*.containers.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});
