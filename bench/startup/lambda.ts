// The AWS Lambda bundle: built as the CDK stack builds it, then its size and its import time.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { childEnv, fileSize, median, nodeEmptyMs, REPO_ROOT, rounds, runNode, type Cleanup, type FileSize, type Log } from "./common.ts";

const CDK_FILE = join(REPO_ROOT, "cdk", "lib", "isthmus-gateway.ts");
const ENTRY = join(REPO_ROOT, "src", "runtime", "lambda.ts");

/**
 * The NodejsFunction `bundling` options of cdk/lib/isthmus-gateway.ts, as the text that sets each
 * one there. The bundle below is built with exactly these; if the CDK file stops containing one of
 * them, the report says so (the numbers may then no longer describe the deployed bundle).
 */
const CDK_OPTIONS = ["format: OutputFormat.ESM", 'target: "node22"', 'mainFields: ["module", "main"]', "minify: true", "sourceMap: true", "sourcesContent: false", "externalModules: []", 'NODE_OPTIONS: "--enable-source-maps"'];

/**
 * The Lambda Node.js runtime defines `awslambda` before loading the handler; lambda.ts builds
 * `streamingHandler` (the default handler of the stack) from it at module scope. A stand-in with
 * the same shape, so the import runs that code path as on Lambda.
 */
const AWSLAMBDA_STANDIN = "globalThis.awslambda = { streamifyResponse: (h) => h, HttpResponseStream: { from: (s) => s } };";

export interface ImportRow {
  label: string;
  /** `await import()` inside the child, milliseconds, per round. */
  samplesMs: number[];
  importMs: number;
  /** Spawn to exit of that child. */
  wallMs: number;
  /** process.memoryUsage().rss right after the import. */
  rss: number;
}

export interface LambdaReport {
  bundle: FileSize;
  sourceMap: FileSize;
  /** CDK options this script expected and did not find in cdk/lib/isthmus-gateway.ts (empty: in step). */
  cdkDrift: string[];
  nodeEmptyMs: number;
  rows: ImportRow[];
}

/** The banner of the CDK bundling options, read from the CDK file so both stay the same text. */
async function cdkBundling(): Promise<{ banner: string; drift: string[] }> {
  const text = await readFile(CDK_FILE, "utf8");
  const drift = CDK_OPTIONS.filter((o) => !text.includes(o));
  const banner = /\bbanner:\s*"([^"]+)"/.exec(text)?.[1];
  if (!banner) throw new Error(`no bundling banner found in ${CDK_FILE}`);
  return { banner, drift };
}

/**
 * What `NodejsFunction` runs (aws-cdk-lib/aws-lambda-nodejs/lib/bundling.js): esbuild --bundle
 * --platform=node --outfile=index.mjs (ESM) plus the stack's options: --target=node22
 * --format=esm --minify --sourcemap --sources-content=false --banner:js=… --main-fields=module,main,
 * and no --external (externalModules: [], the AWS SDK is bundled).
 */
async function buildBundle(outDir: string, banner: string): Promise<{ bundle: FileSize; sourceMap: FileSize }> {
  const outfile = join(outDir, "index.mjs");
  await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: [ENTRY],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    external: [],
    banner: { js: banner },
    mainFields: ["module", "main"],
    logLevel: "error",
  });
  return { bundle: await fileSize(outfile), sourceMap: await fileSize(`${outfile}.map`) };
}

/** In a fresh node: time `await import(url)` and read the RSS after it. */
async function importOnce(cleanup: Cleanup, url: string, nodeArgs: readonly string[]): Promise<{ importMs: number; wallMs: number; rss: number }> {
  const script = `${AWSLAMBDA_STANDIN}
const t = performance.now();
await import(process.env.BENCH_IMPORT_URL);
const ms = performance.now() - t;
console.log(JSON.stringify({ ms, rss: process.memoryUsage().rss }));`;
  // No ISTHMUS_* and no AWS_LAMBDA_FUNCTION_NAME / AWS_EXECUTION_ENV (childEnv drops them): with
  // those two set, lambda.ts starts the gateway at import, as it does during Lambda's init phase.
  const r = await runNode(cleanup, [...nodeArgs, "--input-type=module", "-e", script], { env: childEnv({ BENCH_IMPORT_URL: url }) });
  if (r.code !== 0) throw new Error(`importing ${url} failed (exit ${r.code}): ${r.stderr.trim()}`);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as { ms: number; rss: number };
  return { importMs: out.ms, wallMs: r.wallMs, rss: out.rss };
}

export async function measureLambda(cleanup: Cleanup, count: number, log: Log): Promise<LambdaReport> {
  const dir = cleanup.tempDir("isthmus-startup-lambda-");
  const { banner, drift } = await cdkBundling();
  log("lambda: building the bundle as the CDK stack does");
  const { bundle, sourceMap } = await buildBundle(dir, banner);
  const empty = join(dir, "empty.mjs");
  await writeFile(empty, "export {};\n");

  const modules = [
    { label: "empty module", url: pathToFileURL(empty).href, args: [] as string[] },
    { label: "index.mjs", url: pathToFileURL(bundle.path).href, args: [] as string[] },
    // The stack sets NODE_OPTIONS=--enable-source-maps: Node then reads and parses index.mjs.map at load.
    { label: "index.mjs, --enable-source-maps (as deployed)", url: pathToFileURL(bundle.path).href, args: ["--enable-source-maps"] },
  ];
  const empties: number[] = [];
  const results = modules.map(() => [] as Array<{ importMs: number; wallMs: number; rss: number }>);
  await rounds(count, log, "lambda", async (round) => {
    const e = await nodeEmptyMs(cleanup);
    if (round >= 0) empties.push(e);
    for (const [i, m] of modules.entries()) {
      const r = await importOnce(cleanup, m.url, m.args);
      if (round >= 0) results[i]?.push(r);
    }
  });
  return {
    bundle,
    sourceMap,
    cdkDrift: drift,
    nodeEmptyMs: median(empties),
    rows: modules.map((m, i) => {
      const rs = results[i] ?? [];
      return { label: m.label, samplesMs: rs.map((r) => r.importMs), importMs: median(rs.map((r) => r.importMs)), wallMs: median(rs.map((r) => r.wallMs)), rss: median(rs.map((r) => r.rss)) };
    }),
  };
}
