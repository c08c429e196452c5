// Starts a real, throwaway `redis-server` for tests: a free loopback port (never 6379), no
// persistence unless asked for, readiness taken from the server's own "Ready to accept connections"
// log line rather than from a sleep.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export interface StartRedisOptions {
  /** Keep data across kill -9 and restart: `--appendonly yes --appendfsync always` in a temp dir. */
  persistent?: boolean;
  /** How long to wait for "Ready to accept connections"; default 10 s. */
  readyTimeoutMs?: number;
  /** The binary to run; default `$REDIS_SERVER_BIN` or `redis-server` on PATH. */
  binary?: string;
  /** Extra arguments appended to the command line, e.g. ["--maxmemory", "10mb"]. */
  extraArgs?: string[];
}

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** Pid of the current process (changes on restart). */
  readonly pid: number;
  /** The data directory when persistent, else undefined. */
  readonly dir: string | undefined;
  /**
   * Sends a signal (default SIGKILL). For a terminating signal, resolves once the process has exited;
   * SIGSTOP/SIGCONT resolve right away (the process is frozen/resumed, not gone).
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port (and the same data directory when persistent). */
  restart(): Promise<void>;
  /** Stops the server (if running) and removes its data directory. Idempotent. */
  stop(): Promise<void>;
}

const READY_LINE = "Ready to accept connections";
const FORBIDDEN_PORT = 6379;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A port that was free a moment ago on 127.0.0.1 (the caller must still cope with losing a race for it). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const addr = srv.address();
        srv.close(() => (addr && typeof addr === "object" ? resolve(addr.port) : reject(new Error("no port assigned"))));
      });
    });
    if (port !== FORBIDDEN_PORT) return port;
  }
}

/** A key prefix no other test (or test run) shares. Only [a-z0-9-], so it never contains a hash tag. */
export function uniquePrefix(label: string): string {
  const clean =
    label
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40) || "test";
  return `isthmus-test:${clean}:${process.pid}-${randomBytes(6).toString("hex")}`;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const binary = opts.binary ?? process.env.REDIS_SERVER_BIN ?? "redis-server";
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const dir = opts.persistent ? await mkdtemp(path.join(tmpdir(), "isthmus-redis-")) : undefined;
  installExitHook();

  const argsFor = (port: number): string[] => [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--save", "",
    ...(dir ? ["--appendonly", "yes", "--appendfsync", "always", "--dir", dir] : ["--appendonly", "no"]),
    ...(opts.extraArgs ?? []),
  ];

  let child: ChildProcess;
  let port: number;
  let stopped = false;

  // A fresh port can be taken by someone else between freePort() and redis binding it: retry.
  const first = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const candidate = await freePort();
      try {
        child = await launch(binary, argsFor(candidate), readyTimeoutMs);
        port = candidate;
        return;
      } catch (err) {
        if (!(err instanceof AddressInUseError) || attempt >= 5) {
          if (dir) await rm(dir, { recursive: true, force: true });
          throw err;
        }
      }
    }
  };
  await first();

  const server: RedisServer = {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get pid() {
      return child.pid ?? -1;
    },
    dir,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (signal === "SIGSTOP" || signal === "SIGCONT") {
        child.kill(signal);
        return;
      }
      await terminate(child, signal);
    },
    async restart() {
      if (stopped) throw new Error("redis-server was stopped; start a new one");
      // A frozen process would keep the port: wake it so a terminating signal is acted on.
      child.kill("SIGCONT");
      await terminate(child, "SIGTERM");
      // Same port: it was ours a moment ago, but retry briefly in case the kernel has not released it.
      for (let attempt = 1; ; attempt++) {
        try {
          child = await launch(binary, argsFor(port), readyTimeoutMs);
          return;
        } catch (err) {
          if (!(err instanceof AddressInUseError) || attempt >= 5) throw err;
        }
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      child.kill("SIGCONT");
      await terminate(child, "SIGTERM");
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

class AddressInUseError extends Error {}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  // A SIGTERM that is not acted on within 5 s (it should take milliseconds) is escalated.
  const escalate = setTimeout(() => child.kill("SIGKILL"), 5000);
  try {
    await gone;
  } finally {
    clearTimeout(escalate);
  }
}

function describeCommand(binary: string, args: string[]): string {
  return [binary, ...args.map((a) => (a === "" || /\s/.test(a) ? `'${a}'` : a))].join(" ");
}

function launch(binary: string, args: string[], readyTimeoutMs: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // cwd in the temp dir: whatever redis might write never lands in the repository.
    const child = spawn(binary, args, { cwd: tmpdir(), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let settled = false;
    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      if (err) {
        if (!exited(child)) child.kill("SIGKILL");
        reject(err);
      } else {
        // Keep draining the pipes so a chatty server never blocks on a full pipe.
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(child);
      }
    };
    const onData = (chunk: Buffer): void => {
      output += chunk.toString("utf8");
      if (output.length > 64_000) output = output.slice(-32_000);
      if (output.includes(READY_LINE)) finish(null);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      const why = `redis-server exited before it was ready (code ${code}, signal ${signal})`;
      if (/address already in use/i.test(output)) finish(new AddressInUseError(`${why}: address already in use\n${output}`));
      else finish(new Error(`${why}; command: ${describeCommand(binary, args)}\n${output}`));
    };
    const timer = setTimeout(() => {
      finish(new Error(`redis-server did not log "${READY_LINE}" within ${readyTimeoutMs} ms; command: ${describeCommand(binary, args)}\n${output}`));
    }, readyTimeoutMs);

    child.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") finish(new Error(`redis-server not found: install it with apt-get install redis-server (looked for "${binary}")`));
      else finish(new Error(`could not start redis-server: ${err.message}`, { cause: err }));
    });
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", onExit);
    live.add(child);
    child.once("exit", () => live.delete(child));
  });
}

/** If the test process goes away without stopping its servers, take them along. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}
