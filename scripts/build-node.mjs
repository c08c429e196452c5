// `npm run build`: the Node entry as one ES module (dist/isthmus.mjs), what `npm start` runs.
// Measured (bench/RESULTS.md): a bundle starts in about a third of the time tsx takes and serves
// 1.1-1.3x the requests, since nothing is resolved file by file and no name-keeping wrappers run per call.
// The source map is written beside it but not enabled by default: --enable-source-maps cost about 10%
// of the throughput in the bench (set NODE_OPTIONS=--enable-source-maps to map stack traces; the bundle
// is not minified, so its own traces are readable).
import { build } from "esbuild";

await build({
  entryPoints: ["src/runtime/node-main.ts"],
  outfile: "dist/isthmus.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  sourcemap: true,
  // CommonJS dependencies (ioredis, undici's internals) call require().
  banner: { js: "import { createRequire as __isthmusRequire } from 'node:module'; const require = __isthmusRequire(import.meta.url);" },
  logLevel: "warning",
});
