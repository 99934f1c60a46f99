// Vite builds the console (console/) into dist/console, which the server
// answers at / (src/rpc/console.ts). Run through `npm run build:console`
// (scripts/build-console.ts), which skips the build when nothing changed.

import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  // The page's TypeScript is plain JSX for Preact: no framework plugin needed.
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../dist/console",
    emptyOutDir: true,
    target: "es2022",
    // Every browser the console supports has modulepreload; the polyfill would only add code.
    modulePreload: { polyfill: false },
    // No data: URLs: the server's Content-Security-Policy allows only the page's own files.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  logLevel: "warn",
});
