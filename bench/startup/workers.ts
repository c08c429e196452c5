// The Cloudflare Workers bundle: built by `wrangler deploy --dry-run`, then started in workerd
// through Miniflare, next to a hello-world worker with the same configuration.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type * as MiniflareApi from "miniflare";
import { childEnv, errorText, fileSize, installedVersion, median, versionAt, REPO_ROOT, rounds, runNode, type Cleanup, type FileSize, type Log } from "./common.ts";

const WRANGLER_TOML = join(REPO_ROOT, "wrangler.toml");
/** A cheap path every isthmus worker answers (src/admin/health.ts); the first request also builds the gateway. */
const HEALTH_URL = "http://localhost/_isthmus/healthz";

/** The part of wrangler's resolved config this needs. */
interface WranglerConfig {
  compatibility_date: string;
  compatibility_flags: string[];
  vars: Record<string, unknown>;
  durable_objects: { bindings: Array<{ name: string; class_name: string }> };
  migrations: Array<{ new_sqlite_classes?: string[] }>;
}

export interface MiniflareRow {
  label: string;
  /** `new Miniflare()` to `await mf.ready`: workerd started, the module compiled and evaluated. */
  readyMs: number;
  /** The first dispatchFetch, body read. */
  firstFetchMs: number;
  totalMs: number;
}

export interface WorkersReport {
  wranglerVersion: string;
  /** wrangler's own "Total Upload" line, as a cross-check of the sizes computed here. */
  wranglerSummary: string;
  bundle: FileSize;
  sourceMap?: FileSize;
  miniflareVersion: string;
  workerdVersion: string;
  compatibilityDate: string;
  compatibilityFlags: string[];
  bindings: string[];
  rows: MiniflareRow[];
  /** isthmus minus hello world, the median of the per-round differences. */
  diff: { readyMs: number; firstFetchMs: number; totalMs: number };
}

/** `npx wrangler deploy --dry-run --outdir <dir>`, run as node <wrangler's bin> (what npx resolves to), offline. */
async function buildBundle(cleanup: Cleanup, outDir: string): Promise<{ bundle: FileSize; sourceMap?: FileSize; summary: string }> {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, "node_modules", "wrangler", "package.json"), "utf8")) as { bin: Record<string, string> };
  const bin = join(REPO_ROOT, "node_modules", "wrangler", pkg.bin.wrangler ?? "bin/wrangler.js");
  const r = await runNode(cleanup, [bin, "deploy", "--dry-run", "--outdir", outDir], { env: childEnv({ WRANGLER_SEND_METRICS: "false" }), timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`wrangler deploy --dry-run failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-2_000)}`);
  const scripts = (await readdir(outDir)).filter((f) => /\.m?js$/.test(f));
  if (scripts.length !== 1) throw new Error(`expected one script in wrangler's outdir, found: ${scripts.join(", ") || "none"}`);
  const main = join(outDir, scripts[0] as string);
  const map = (await readdir(outDir)).includes(`${scripts[0]}.map`) ? await fileSize(`${main}.map`) : undefined;
  return { bundle: await fileSize(main), sourceMap: map, summary: /Total Upload:[^\n]*/.exec(r.stdout)?.[0].trim() ?? "(not printed)" };
}

/** wrangler.toml as wrangler itself resolves it (unstable_readConfig), in a child so wrangler's module state stays out of this process. */
async function readWranglerConfig(cleanup: Cleanup): Promise<WranglerConfig> {
  const script = `const { unstable_readConfig } = await import("wrangler");
const c = unstable_readConfig({ config: process.env.BENCH_WRANGLER_CONFIG });
console.log("\\n" + JSON.stringify({ compatibility_date: c.compatibility_date, compatibility_flags: c.compatibility_flags, vars: c.vars, durable_objects: c.durable_objects, migrations: c.migrations }));`;
  const r = await runNode(cleanup, ["--input-type=module", "-e", script], { env: childEnv({ BENCH_WRANGLER_CONFIG: WRANGLER_TOML, WRANGLER_SEND_METRICS: "false" }) });
  if (r.code !== 0) throw new Error(`reading wrangler.toml with wrangler failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as WranglerConfig;
}

type MiniflareModule = typeof MiniflareApi;

/** The `miniflare` that `import "miniflare"` finds from this repository, and the workerd it runs. */
async function loadMiniflare(): Promise<{ mf: MiniflareModule; version: string; workerd: string }> {
  let mf: MiniflareModule;
  try {
    mf = await import("miniflare");
  } catch (err) {
    throw new Error(`miniflare is not importable from ${REPO_ROOT}/node_modules (${errorText(err)})`, { cause: err });
  }
  // <root>/dist/src/index.js; workerd is resolved from there, as miniflare resolves it.
  const entry = fileURLToPath(import.meta.resolve("miniflare"));
  const root = entry.slice(0, entry.lastIndexOf("/dist/"));
  return { mf, version: versionAt(join(root, "package.json")), workerd: versionAt(createRequire(entry).resolve("workerd/package.json")) };
}

/** wrangler.toml's Durable Object bindings; a class in a `new_sqlite_classes` migration is SQLite-backed. */
function durableObjects(config: WranglerConfig): Record<string, { className: string; useSQLite: boolean }> {
  const sqlite = new Set(config.migrations.flatMap((m) => m.new_sqlite_classes ?? []));
  return Object.fromEntries(config.durable_objects.bindings.map((b) => [b.name, { className: b.class_name, useSQLite: sqlite.has(b.class_name) }]));
}

/**
 * Miniflare options for one module with wrangler.toml's compatibility settings and bindings.
 * Miniflare 5 takes a new config shape; convertV4MiniflareOptions maps the documented one to it
 * (what @cloudflare/vitest-plugin does too).
 */
function options(mf: MiniflareModule, config: WranglerConfig, dir: string, modulePath: string, contents: string, logs: unknown[]) {
  return mf.convertV4MiniflareOptions({
    workers: [
      {
        name: "startup",
        modulesRoot: dir,
        modules: [{ type: "ESModule", path: modulePath, contents }],
        compatibilityDate: config.compatibility_date,
        compatibilityFlags: config.compatibility_flags,
        bindings: config.vars as Record<string, string>,
        durableObjects: durableObjects(config),
      },
    ],
    // The worker logs at info (wrangler.toml's ISTHMUS_LOG_LEVEL): kept out of the report.
    handleStructuredLogs: (log) => logs.push(log),
  });
}

/** new Miniflare -> ready -> first dispatchFetch, timed; always disposed. */
async function startOnce(cleanup: Cleanup, mf: MiniflareModule, config: WranglerConfig, dir: string, modulePath: string, contents: string): Promise<Omit<MiniflareRow, "label">> {
  const logs: unknown[] = [];
  const t0 = performance.now();
  const instance = new mf.Miniflare(options(mf, config, dir, modulePath, contents, logs));
  let disposed = false;
  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    await instance.dispose();
  };
  cleanup.defer(dispose);
  try {
    await instance.ready;
    const t1 = performance.now();
    const res = await instance.dispatchFetch(HEALTH_URL);
    const body = await res.text();
    const t2 = performance.now();
    if (res.status !== 200) throw new Error(`${modulePath}: ${HEALTH_URL} answered ${res.status} ${body.slice(0, 300)}`);
    return { readyMs: t1 - t0, firstFetchMs: t2 - t1, totalMs: t2 - t0 };
  } catch (err) {
    throw new Error(`${errorText(err)}\nworker logs: ${JSON.stringify(logs).slice(0, 2_000)}`, { cause: err });
  } finally {
    await dispose();
  }
}

/** A worker with the same exports and bindings as isthmus and no code to speak of. */
function helloWorld(config: WranglerConfig): string {
  const classes = [...new Set(config.durable_objects.bindings.map((b) => b.class_name))];
  return `import { DurableObject } from "cloudflare:workers";
${classes.map((c) => `export class ${c} extends DurableObject {}`).join("\n")}
export default { fetch() { return new Response("ok"); } };
`;
}

export async function measureWorkers(cleanup: Cleanup, count: number, log: Log): Promise<WorkersReport> {
  const dir = cleanup.tempDir("isthmus-startup-workers-");
  log("workers: wrangler deploy --dry-run");
  const { bundle, sourceMap, summary } = await buildBundle(cleanup, dir);
  const config = await readWranglerConfig(cleanup);
  const { mf, version, workerd } = await loadMiniflare();
  // Written next to the bundle: Miniflare names modules relative to modulesRoot (the temp dir).
  const helloPath = join(dir, "hello.mjs");
  const helloSource = helloWorld(config);
  await writeFile(helloPath, helloSource);
  const workers = [
    { label: "hello world (same bindings, empty Durable Object class)", path: helloPath, contents: helloSource },
    { label: "isthmus (wrangler's bundle)", path: bundle.path, contents: await readFile(bundle.path, "utf8") },
  ];

  const results = workers.map(() => [] as Array<Omit<MiniflareRow, "label">>);
  await rounds(count, log, "workers", async (round) => {
    for (const [i, w] of workers.entries()) {
      const r = await startOnce(cleanup, mf, config, dir, w.path, w.contents);
      if (round >= 0) results[i]?.push(r);
    }
  });

  const [hello = [], isthmus = []] = results;
  const diff = (k: keyof Omit<MiniflareRow, "label">) => median(isthmus.map((r, i) => r[k] - (hello[i]?.[k] ?? Number.NaN)));
  return {
    wranglerVersion: installedVersion("wrangler"),
    wranglerSummary: summary,
    bundle,
    sourceMap,
    miniflareVersion: version,
    workerdVersion: workerd,
    compatibilityDate: config.compatibility_date,
    compatibilityFlags: config.compatibility_flags,
    bindings: [...Object.keys(config.vars), ...Object.entries(durableObjects(config)).map(([name, d]) => `${name} (Durable Object ${d.className}${d.useSQLite ? ", SQLite" : ""})`)],
    rows: workers.map((w, i) => {
      const rs = results[i] ?? [];
      return { label: w.label, readyMs: median(rs.map((r) => r.readyMs)), firstFetchMs: median(rs.map((r) => r.firstFetchMs)), totalMs: median(rs.map((r) => r.totalMs)) };
    }),
    diff: { readyMs: diff("readyMs"), firstFetchMs: diff("firstFetchMs"), totalMs: diff("totalMs") },
  };
}
