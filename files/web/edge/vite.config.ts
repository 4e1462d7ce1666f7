import { defineConfig } from 'vite';

// JSX through esbuild (no React plugin: fewer moving parts, and it installs with npm 10 too).
// Output to the project's build/ folder (git-ignored); the edge role ships it from there.
export default defineConfig({
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: '../../../build/web/edge',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    proxy: { '/api': process.env.OVR_EVENTS_URL ?? 'http://127.0.0.1:8088' },
  },
});
