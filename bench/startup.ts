// Startup cost (`npx tsx bench/startup.ts`): time and memory to the first served request of the
// Node entry, and the size and module-initialisation time of the Lambda and Workers bundles.
// Prints a Markdown section on stdout (progress goes to stderr). Medians of `rounds` rounds, each
// after one discarded warm-up round; the variants of each part are interleaved within a round.
// Linux only (memory is read from /proc). A measurement script: no assertions, no thresholds.
import { realpathSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { Cleanup, errorText, kib, mib, ms, ratio, thousands, type FileSize, type Log } from "./startup/common.ts";
import { measureLambda, type LambdaReport } from "./startup/lambda.ts";
import { measureNodeEntry, type NodeEntryReport } from "./startup/node-entry.ts";
import { measureWorkers, type WorkersReport } from "./startup/workers.ts";

/** A part that could not be measured says why instead of showing a number. */
export type Part<T> = { ok: true; value: T } | { ok: false; error: string };

export interface StartupReport {
  machine: string;
  rounds: number;
  /** Wall time of the whole measurement. */
  tookMs: number;
  nodeEntry: Part<NodeEntryReport>;
  lambda: Part<LambdaReport>;
  workers: Part<WorkersReport>;
}

async function part<T>(name: string, log: Log, fn: () => Promise<T>, skip: () => boolean): Promise<Part<T>> {
  if (skip()) return { ok: false, error: "interrupted" };
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    log(`${name}: failed: ${errorText(err)}`);
    return { ok: false, error: errorText(err) };
  }
}

export async function measureStartup(opts: { rounds?: number; log?: (s: string) => void } = {}): Promise<StartupReport> {
  const count = opts.rounds ?? 5;
  if (!Number.isInteger(count) || count < 1) throw new Error(`rounds must be a positive integer (got ${count})`);
  const log = opts.log ?? (() => undefined);
  const t0 = performance.now();
  const loadStart = loadavg()[0]?.toFixed(2);
  const cleanup = new Cleanup();
  // Ctrl-C or a kill mid-run still stops the children and removes the temp dirs, then exits.
  let interrupted: NodeJS.Signals | undefined;
  // `on`, not `once`: with `npx tsx` the signal arrives twice (from the terminal, and relayed by
  // tsx's parent process), and a second one with no listener would kill this process mid-cleanup.
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = signal;
    log(`${signal}: stopping children, removing temp dirs`);
    void cleanup.run().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    // One part after the other: they would compete for the same two cores otherwise.
    const nodeEntry = await part("node entry", log, () => measureNodeEntry(cleanup, count, log), () => interrupted !== undefined);
    const lambda = await part("lambda", log, () => measureLambda(cleanup, count, log), () => interrupted !== undefined);
    const workers = await part("workers", log, () => measureWorkers(cleanup, count, log), () => interrupted !== undefined);
    // Parts cut short by the signal are no measurement: no report.
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);
    const cpu = cpus();
    return {
      // The load average is there to tell a run disturbed by other work on the machine.
      machine: `Node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} CPUs (${cpu[0]?.model.trim() ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, load average ${loadStart} at start and ${loadavg()[0]?.toFixed(2)} at end`,
      rounds: count,
      tookMs: performance.now() - t0,
      nodeEntry,
      lambda,
      workers,
    };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await cleanup.run();
  }
}

// ---------------------------------------------------------------- Markdown

const sizeRow = (name: string, f: FileSize) => `| ${name} | ${thousands(f.bytes)} | ${kib(f.bytes)} | ${kib(f.gzipBytes)} |`;
const SIZE_HEAD = "| file | bytes | KiB | gzip KiB |\n|---|---:|---:|---:|";

function formatNodeEntry(r: NodeEntryReport): string[] {
  const base = r.nodeEmpty.ms;
  return [
    "### Node entry: spawn to first proxied request",
    "",
    "From `spawn()` to the first `GET /` (host `bench.isthmus`) answered 200 by the upstream through the gateway (polled every 5 ms); memory of the gateway process at that moment (`/proc/<pid>/status`). In-memory store (`ISTHMUS_REDIS_URL=\"\"`), config file with one cluster and one route, `ISTHMUS_LOG_LEVEL=error`.",
    "",
    "| form | command | first request ms | × `node -e 0` | RSS MiB | peak RSS MiB | RSS with child processes MiB |",
    "|---|---|---:|---:|---:|---:|---:|",
    `| baseline | \`node -e 0\` (to exit) | ${ms(base)} | 1.00× | | | |`,
    ...r.forms.map((f) => `| ${f.label} | \`${f.command}\` | ${ms(f.ms)} | ${ratio(f.ms, base)} | ${mib(f.memory.rss)} | ${mib(f.memory.peak)} | ${mib(f.memory.tree)} |`),
    "",
    `Bundle (as scripts/build-node.mjs builds dist/isthmus.mjs: esbuild, platform node, esm, node22, not minified, source map beside it, createRequire banner): ${thousands(r.bundle.bytes)} bytes, ${kib(r.bundle.bytes)} KiB, ${kib(r.bundle.gzipBytes)} KiB gzipped; built from ${r.bundle.srcFiles} files of src/ (what tsx transforms at start) and ${r.bundle.depFiles} of node_modules.`,
    "",
    "Reading the diagnostics: *tsx cache off* minus *tsx* is the cost of transforming TypeScript; *src/ bundled, packages loaded by Node* minus *esbuild bundle* is the cost of loading the dependencies file by file; *tsx* minus *src/ bundled* is what tsx's resolve/load hooks and loading src/ file by file add. RSS with child processes differs from RSS when tsx runs its esbuild service (cache off).",
    "",
    `Rounds, first request ms: ${r.forms.map((f) => `${f.label}: ${f.samplesMs.map(ms).join(", ")}`).join("; ")}; \`node -e 0\`: ${r.nodeEmpty.samplesMs.map(ms).join(", ")}.`,
  ];
}

function formatLambda(r: LambdaReport): string[] {
  const empty = r.rows[0]?.importMs ?? Number.NaN;
  return [
    "### AWS Lambda bundle",
    "",
    "Built as `cdk/lib/isthmus-gateway.ts` has `NodejsFunction` build it: esbuild `--bundle --platform=node --format=esm --target=node22 --minify --sourcemap --sources-content=false --main-fields=module,main`, no externals (the AWS SDK is bundled), the stack's `createRequire` banner, output `index.mjs`.",
    r.cdkDrift.length > 0 ? `\n**The CDK file no longer contains ${r.cdkDrift.map((d) => `\`${d}\``).join(", ")}: this bundle may differ from the deployed one.**\n` : "",
    SIZE_HEAD,
    sizeRow("index.mjs", r.bundle),
    sizeRow("index.mjs.map (not loaded unless --enable-source-maps)", r.sourceMap),
    "",
    "Module initialisation: in a fresh `node`, `const t = performance.now(); await import(url); performance.now() - t`; the child's RSS after it; the child's wall time, spawn to exit.",
    "",
    "| module | import ms | × empty module | child wall ms | RSS after import MiB |",
    "|---|---:|---:|---:|---:|",
    ...r.rows.map((x) => `| ${x.label} | ${ms(x.importMs)} | ${ratio(x.importMs, empty)} | ${ms(x.wallMs)} | ${mib(x.rss)} |`),
    `| \`node -e 0\` | | | ${ms(r.nodeEmptyMs)} | |`,
    "",
    "Environment: the import needs no variable. `AWS_LAMBDA_FUNCTION_NAME` and `AWS_EXECUTION_ENV` are left unset on purpose (with both set, `lambda.ts` starts the gateway at import, as in Lambda's init phase); no `ISTHMUS_*` is set. A stand-in `awslambda` global (`streamifyResponse: h => h`) is installed first, as the Lambda runtime provides one, so `streamingHandler` (the stack's default handler) is built as on Lambda.",
    "",
    `Rounds, import ms: ${r.rows.map((x) => `${x.label}: ${x.samplesMs.map(ms).join(", ")}`).join("; ")}.`,
  ];
}

function formatWorkers(r: WorkersReport): string[] {
  const [hello, isthmus] = r.rows;
  const row = (x: WorkersReport["rows"][number]) => `| ${x.label} | ${ms(x.readyMs)} | ${ms(x.firstFetchMs)} | ${ms(x.totalMs)} |`;
  return [
    "### Cloudflare Workers bundle",
    "",
    `Built by \`wrangler deploy --dry-run --outdir <tmp>\` (wrangler ${r.wranglerVersion}, \`minify = true\` from wrangler.toml); wrangler printed: \`${r.wranglerSummary}\`.`,
    "",
    SIZE_HEAD,
    sizeRow("worker.js", r.bundle),
    ...(r.sourceMap ? [sizeRow("worker.js.map (uploaded: upload_source_maps = true)", r.sourceMap)] : []),
    "",
    `Module initialisation in workerd: Miniflare ${r.miniflareVersion} (workerd ${r.workerdVersion}), compatibility date ${r.compatibilityDate}, flags ${r.compatibilityFlags.join(", ") || "none"}, bindings from wrangler.toml: ${r.bindings.join(", ")}; no secrets (ISTHMUS_REDIS_URL unset: in-memory store). Timed: \`new Miniflare()\` + \`await mf.ready\` (workerd started, module compiled and evaluated), then the first \`dispatchFetch\` of \`/_isthmus/healthz\` (for isthmus this also builds the gateway in the isolate). Each instance disposed before the next.`,
    "",
    "| worker | new + ready ms | first fetch ms | total ms |",
    "|---|---:|---:|---:|",
    ...(hello ? [row(hello)] : []),
    ...(isthmus ? [row(isthmus)] : []),
    `| **difference** (median of per-round differences): the bundle's compile + init, then gateway build | ${ms(r.diff.readyMs)} | ${ms(r.diff.firstFetchMs)} | ${ms(r.diff.totalMs)} |`,
  ];
}

function formatPart<T>(title: string, p: Part<T>, render: (v: T) => string[]): string[] {
  return p.ok ? render(p.value) : [`### ${title}`, "", `**Not measured:** ${p.error}`];
}

export function formatStartup(report: StartupReport): string {
  return [
    "## Startup cost",
    "",
    `${report.machine}. Median of ${report.rounds} rounds, each after one discarded warm-up round. Measured in ${(report.tookMs / 1000).toFixed(0)} s by \`npx tsx bench/startup.ts\`.`,
    "",
    ...formatPart("Node entry: spawn to first proxied request", report.nodeEntry, formatNodeEntry),
    "",
    ...formatPart("AWS Lambda bundle", report.lambda, formatLambda),
    "",
    ...formatPart("Cloudflare Workers bundle", report.workers, formatWorkers),
    "",
  ].join("\n");
}

// ---------------------------------------------------------------- direct run

/** True when this file is the program (`npx tsx bench/startup.ts`), not an import. */
function isMain(): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const rounds = process.env.BENCH_ROUNDS ? Number(process.env.BENCH_ROUNDS) : undefined;
  const start = performance.now();
  const log = (s: string) => process.stderr.write(`[${((performance.now() - start) / 1000).toFixed(1)} s] ${s}\n`);
  try {
    process.stdout.write(formatStartup(await measureStartup({ rounds, log })));
  } catch (err) {
    log(errorText(err));
    process.exitCode = 1;
  }
}
