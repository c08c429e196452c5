// `npm run build`: the Node entry as one ES module (dist/isthmus.mjs), what `npm start` runs.
// Measured (bench/RESULTS.md): a bundle starts in about a third of the time tsx takes and serves
// 1.1-1.3x the requests, since nothing is resolved file by file and no name-keeping wrappers run per call.
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
