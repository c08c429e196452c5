// The Node entry: time and memory from spawn to the first request served through the gateway.
import type { ChildProcess } from "node:child_process";
import { request, createServer, type Server } from "node:http";
import { symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { build, type BuildOptions } from "esbuild";
import { childEnv, fileSize, freePort, median, nodeEmptyMs, REPO_ROOT, rounds, rssOf, sleep, stopChild, type Cleanup, type FileSize, type Log, type Rss } from "./common.ts";
import { startFlags } from "../targets.ts";

const HOST = "bench.isthmus";
/** What only the upstream answers: a 200 with this body was proxied, not made up by the gateway. */
const MARKER = "isthmus-startup-upstream";
const ENTRY = join(REPO_ROOT, "src", "runtime", "node-main.ts");
/** Poll interval while waiting for the first answer. */
const POLL_MS = 5;
const START_TIMEOUT_MS = 30_000;

export interface NodeForm {
  label: string;
  command: string;
  /** Spawn to the first proxied 200, per round. */
  samplesMs: number[];
  ms: number;
  /** Memory at the first proxied 200 (median of the rounds, field by field). */
  memory: Rss;
}

export interface NodeEntryReport {
  nodeEmpty: { ms: number; samplesMs: number[] };
  forms: NodeForm[];
  /** The bundle, and how many files went into it: src/ files are what tsx transforms at start. */
  bundle: FileSize & { srcFiles: number; depFiles: number };
}

/** A plain node:http upstream in this process, answering 200 with MARKER. */
async function startUpstream(cleanup: Cleanup): Promise<number> {
  const server: Server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "content-length": MARKER.length });
    res.end(MARKER);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanup.defer(() => new Promise((r) => server.close(r)));
  server.unref();
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("upstream has no port");
  return address.port;
}

/** The config bench/run.ts uses, with one backend: cluster `east` is the upstream. */
async function writeConfig(dir: string, upstreamPort: number): Promise<string> {
  const path = join(dir, "config.json");
  const config = {
    clusters: { east: { endpoint: `http://127.0.0.1:${upstreamPort}`, trustDomain: "east.example" } },
    routes: {
      bench: {
        hostnames: [HOST],
        authorization: { unauthenticated: true },
        rules: [{ name: "default", backendRefs: [{ cluster: "east", service: "bench.svc.cluster.local", port: 8080, weight: 100 }] }],
      },
    },
  };
  await writeFile(path, JSON.stringify(config));
  return path;
}

/** node-main.ts as one ESM file, built as scripts/build-node.mjs builds dist/isthmus.mjs for `npm start`. */
async function buildBundle(outDir: string): Promise<NodeEntryReport["bundle"]> {
  const outfile = join(outDir, "node-main.mjs");
  const result = await build({ ...BUNDLE_OPTIONS, outfile, metafile: true });
  const inputs = Object.keys(result.metafile.inputs);
  return {
    ...(await fileSize(outfile)),
    srcFiles: inputs.filter((p) => p.startsWith("src/")).length,
    depFiles: inputs.filter((p) => p.includes("node_modules/")).length,
  };
}

/**
 * A diagnostic form: src/ bundled, every package left to Node's own loader (`packages:
 * "external"`), found through a node_modules symlink next to the file. Between the full bundle
 * and tsx, it tells the cost of loading the dependencies file by file from the cost of tsx.
 */
async function buildSrcOnlyBundle(outDir: string): Promise<string> {
  const outfile = join(outDir, "node-main-src-only.mjs");
  await build({ ...BUNDLE_OPTIONS, outfile, packages: "external" });
  await symlink(join(REPO_ROOT, "node_modules"), join(outDir, "node_modules"), "dir");
  return outfile;
}

const BUNDLE_OPTIONS = {
  absWorkingDir: REPO_ROOT,
  entryPoints: [ENTRY],
  platform: "node",
  format: "esm",
  target: "node22",
  bundle: true,
  sourcemap: true,
  banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
  logLevel: "error",
} satisfies BuildOptions;

/** One GET through the gateway; resolves with the status and body, rejects when nothing listens yet. */
function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    // agent: false: a fresh connection each time, so a refused one is never reused.
    const req = request({ host: "127.0.0.1", port, path: "/", headers: { host: HOST }, agent: false, timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (s: string) => (body += s));
      res.once("end", () => resolvePromise({ status: res.statusCode ?? 0, body }));
      res.once("error", reject);
    });
    req.once("timeout", () => req.destroy(new Error("timeout")));
    req.once("error", reject);
    req.end();
  });
}

/** Spawns the gateway, polls until the first proxied 200, reads its memory, stops it. */
async function startOnce(cleanup: Cleanup, args: readonly string[], env: Record<string, string>): Promise<{ ms: number; memory: Rss }> {
  const port = await freePort();
  const t0 = performance.now();
  // process.execPath is the node binary itself (not a PATH shim): with `--import tsx` the loader
  // runs in this same process (tsx 4.23 on Node >= 22.22.3 uses in-thread module.registerHooks),
  // so child.pid is the process that serves and /proc/<pid> is its memory.
  const child: ChildProcess = cleanup.spawn(process.execPath, args, { cwd: REPO_ROOT, env: childEnv({ ...env, PORT: String(port) }), stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (s: string) => (output = (output + s).slice(-4_000));
  child.stdout?.setEncoding("utf8").on("data", keep);
  child.stderr?.setEncoding("utf8").on("data", keep);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`gateway exited (${child.exitCode ?? child.signalCode}) before serving a request: ${output.trim()}`);
      if (performance.now() - t0 > START_TIMEOUT_MS) throw new Error(`no proxied 200 within ${START_TIMEOUT_MS} ms: ${output.trim()}`);
      const res = await get(port).catch(() => undefined);
      if (res?.status === 200 && res.body === MARKER) {
        const ms = performance.now() - t0;
        return { ms, memory: rssOf(child.pid as number) };
      }
      await sleep(POLL_MS);
    }
  } finally {
    await stopChild(child);
  }
}

export async function measureNodeEntry(cleanup: Cleanup, count: number, log: Log): Promise<NodeEntryReport> {
  const dir = cleanup.tempDir("isthmus-startup-node-");
  const upstreamPort = await startUpstream(cleanup);
  const config = await writeConfig(dir, upstreamPort);
  log("node entry: building the esbuild bundle");
  const bundle = await buildBundle(dir);
  const srcOnly = await buildSrcOnlyBundle(dir);
  const gatewayEnv = { ISTHMUS_CONFIG: config, ISTHMUS_LOG_LEVEL: "error", ISTHMUS_REDIS_URL: "" };

  const flags = startFlags();
  const forms = [
    // The two forms that ship: `npm run start:dev` (tsx) and `npm start` (the bundle).
    { label: "tsx, as `npm run start:dev` (transform cache warm)", command: "node --import tsx src/runtime/node-main.ts", args: ["--import", "tsx", ENTRY], env: gatewayEnv },
    { label: "esbuild bundle, as `npm start`", command: `node ${flags.join(" ")} dist/isthmus.mjs`, args: [...flags, bundle.path], env: gatewayEnv },
    // Diagnostics that split tsx's cost. tsx keeps transformed files in $TMPDIR/tsx-<uid>; without
    // that cache every .ts file goes through esbuild at start.
    { label: "diagnostic: tsx, transform cache off", command: "TSX_DISABLE_CACHE=1 node --import tsx src/runtime/node-main.ts", args: ["--import", "tsx", ENTRY], env: { ...gatewayEnv, TSX_DISABLE_CACHE: "1" } },
    { label: "diagnostic: src/ bundled, packages loaded by Node", command: "node node-main-src-only.mjs", args: [srcOnly], env: gatewayEnv },
  ];

  // Forms interleaved within each round, so drift in machine load hits them alike.
  const empty: number[] = [];
  const results = forms.map(() => [] as Array<{ ms: number; memory: Rss }>);
  await rounds(count, log, "node entry", async (round) => {
    const e = await nodeEmptyMs(cleanup);
    if (round >= 0) empty.push(e);
    for (const [i, form] of forms.entries()) {
      const r = await startOnce(cleanup, form.args, form.env);
      if (round >= 0) results[i]?.push(r);
    }
  });

  return {
    nodeEmpty: { ms: median(empty), samplesMs: empty },
    forms: forms.map((form, i) => {
      const rs = results[i] ?? [];
      return {
        label: form.label,
        command: form.command,
        samplesMs: rs.map((r) => r.ms),
        ms: median(rs.map((r) => r.ms)),
        memory: { rss: median(rs.map((r) => r.memory.rss)), peak: median(rs.map((r) => r.memory.peak)), tree: median(rs.map((r) => r.memory.tree)) },
      };
    }),
    bundle,
  };
}
