import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The compliance console, built into dist/console and served by the vault at /console.
 * Everything is bundled: no CDN, no web font, no inline script or style (the page's CSP
 * allows this origin's files only), no asset inlined as a data: URL.
 */
export default defineConfig({
  root: here,
  base: '/console/',
  publicDir: path.join(here, 'public'),
  // Outside console/, whose modification time decides whether `npm start` rebuilds.
  cacheDir: path.join(here, '../node_modules/.vite-console'),
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: path.join(here, '../dist/console'),
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    // One entry chunk: nothing to preload, so no preload helper in the bundle.
    modulePreload: false,
    reportCompressedSize: false,
  },
  // `npx vite --config console/vite.config.mts` with a vault on :8080, for development.
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
});
