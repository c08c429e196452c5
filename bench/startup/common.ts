// Shared helpers of bench/startup.ts: child processes, timing, sizes, memory, cleanup.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";

/** The repository root (this file is bench/startup/common.ts). */
export const REPO_ROOT = resolve(import.meta.dirname, "..", "..");

export type Log = (line: string) => void;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Median (upper median for even counts): robust to the odd slow round a shared 2-core box produces. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

/** Runs `fn` for every round after one discarded warm-up round (it fills the OS page cache, tsx's transform cache and V8's code cache). */
export async function rounds<T>(count: number, log: Log, what: string, fn: (round: number) => Promise<T>): Promise<T[]> {
  log(`${what}: warm-up round`);
  await fn(-1);
  const out: T[] = [];
  for (let i = 0; i < count; i++) {
    log(`${what}: round ${i + 1}/${count}`);
    out.push(await fn(i));
  }
  return out;
}

// ---------------------------------------------------------------- cleanup

/**
 * Everything to undo at the end, even after an error or Ctrl-C: children to stop, temp dirs to
 * remove, Miniflare instances to dispose. Tasks run in reverse order of registration. Registration
 * is synchronous, so nothing can be created between a run() and its own cleanup task; once run()
 * has started (Ctrl-C while measuring), creating more is refused.
 */
export class Cleanup {
  private readonly tasks: Array<() => unknown> = [];
  private closed = false;

  defer(task: () => unknown): void {
    if (this.closed) void Promise.resolve().then(task).catch(() => undefined);
    else this.tasks.push(task);
  }

  tempDir(prefix: string): string {
    this.refuseIfClosed();
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.defer(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  /** Spawns a child that is stopped at cleanup if it is still running then. */
  spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
    this.refuseIfClosed();
    const child = spawn(command, args, options);
    this.defer(() => stopChild(child));
    return child;
  }

  async run(): Promise<void> {
    this.closed = true;
    for (const task of this.tasks.splice(0).reverse()) {
      try {
        await task();
      } catch {
        /* best effort: the other tasks still run */
      }
    }
  }

  private refuseIfClosed(): void {
    if (this.closed) throw new Error("interrupted");
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 2_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- processes

/**
 * The environment of every measured child: this one's, minus what would change what is measured
 * (NODE_OPTIONS, the gateway's own ISTHMUS_* settings, the Lambda runtime's markers).
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "NODE_OPTIONS" || k.startsWith("ISTHMUS_") || k.startsWith("TSX_") || k.startsWith("AWS_LAMBDA_") || k === "AWS_EXECUTION_ENV") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Spawn to exit, milliseconds. */
  wallMs: number;
}

/** Runs `node <args>` (this very Node binary, never a PATH lookup) to completion. */
export function runNode(cleanup: Cleanup, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = cleanup.spawn(process.execPath, args, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? childEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let wallMs = Number.NaN;
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr?.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.once("error", reject);
    child.once("exit", () => (wallMs = performance.now() - t0));
    child.once("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, wallMs });
    });
  });
}

/** Wall time of `node -e 0`: the floor under every Node number here. */
export async function nodeEmptyMs(cleanup: Cleanup): Promise<number> {
  const r = await runNode(cleanup, ["-e", "0"]);
  if (r.code !== 0) throw new Error(`node -e 0 exited ${r.code}: ${r.stderr}`);
  return r.wallMs;
}

/** A port nobody listens on right now (the OS picks it; released before use, a tiny race we accept). */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePromise(address.port) : reject(new Error("no port"))));
    });
  });
}

// ---------------------------------------------------------------- sizes and memory

export interface FileSize {
  path: string;
  bytes: number;
  /** gzip at zlib's default level 6. */
  gzipBytes: number;
}

export async function fileSize(path: string): Promise<FileSize> {
  const data = await readFile(path);
  return { path, bytes: data.length, gzipBytes: gzipSync(data).length };
}

export interface Rss {
  /** VmRSS of the process itself, bytes. */
  rss: number;
  /** VmHWM: the process's peak RSS so far, bytes. */
  peak: number;
  /** VmRSS of the process and all its descendants (tsx's esbuild service, say), bytes. */
  tree: number;
}

function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  return m ? Number(m[1]) : 0;
}

/** Every descendant of `pid`, from the parent pid in /proc/<n>/stat (no CONFIG_PROC_CHILDREN needed). */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // The comm field may hold spaces and parentheses: the fields after the last ")" are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parentOf.set(Number(name), ppid);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

/** Memory of a running child, from /proc (Linux only). */
export function rssOf(pid: number): Rss {
  const rss = statusKiB(pid, "VmRSS");
  let tree = rss;
  for (const d of descendants(pid)) {
    try {
      tree += statusKiB(d, "VmRSS");
    } catch {
      /* exited meanwhile */
    }
  }
  return { rss: rss * 1024, peak: statusKiB(pid, "VmHWM") * 1024, tree: tree * 1024 };
}

// ---------------------------------------------------------------- formatting

export const ms = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : "n/a");
export const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
export const kib = (bytes: number) => (bytes / 1024).toFixed(1);
export const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "n/a");
export const thousands = (n: number) => n.toLocaleString("en-US");

/** The version in a package.json file ("?" when unreadable). */
export function versionAt(packageJson: string): string {
  try {
    return (JSON.parse(readFileSync(packageJson, "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

/** The version of a dependency installed at the repository's node_modules/<name>. */
export const installedVersion = (name: string) => versionAt(join(REPO_ROOT, "node_modules", name, "package.json"));

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
