import { defineConfig } from 'vitest/config';

/** `npm run soak`: the long randomised consistency run (not part of `npm test`). */
export default defineConfig({
  test: {
    include: ['**/*.soak.ts'],
    exclude: ['**/node_modules/**'],
    testTimeout: 3_600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
