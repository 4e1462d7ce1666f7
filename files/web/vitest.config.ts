import { defineConfig } from 'vitest/config';

// Unit tests of the data layers (shared/, edge/src/data, later fleet/): node environment, no browser.
export default defineConfig({
  test: {
    include: ['shared/test/**/*.test.ts', 'edge/test/**/*.test.ts'],
    environment: 'node',
  },
});
