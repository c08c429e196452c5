// Starts a real, throwaway Prometheus server for tests (the Debian `prometheus` 2.42 binary): a
// free loopback port, a temp TSDB directory, the remote-write receiver on, and optionally a scrape
// job for the gateway's metrics endpoint. Readiness is a state polled on `/-/ready` with a
// deadline, never a sleep. Also: PromQL instant queries, `promtool check metrics`, and a small
// parser for the text exposition format.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "./redis-server.ts";

export interface ScrapeJob {
  /** The job label; default "isthmus". */
  jobName?: string;
  /** host:port of the gateway. */
  target: string;
  /** Sent as `Authorization: Bearer <token>`. */
  bearerToken?: string;
  /** Default `/_isthmus/v1/metrics`. */
  metricsPath?: string;
  /** Only this cluster's slice (`?cluster=NAME`). */
  cluster?: string;
  /** Default "1s". */
  scrapeInterval?: string;
}

export interface StartPrometheusOptions {
  scrape?: ScrapeJob;
  /** Default `$PROMETHEUS_BIN` or /usr/bin/prometheus. */
  binary?: string;
  /** Deadline for `/-/ready`; default 20 s. */
  readyTimeoutMs?: number;
}

export interface VectorSample {
  metric: Record<string, string>;
  value: number;
}

export interface PrometheusServer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** Where gateways push: `<url>/api/v1/write`. */
  readonly remoteWriteUrl: string;
  readonly dir: string;
  /** An instant query (`/api/v1/query`); throws unless the result is a vector. */
  query(promql: string): Promise<VectorSample[]>;
  /** Kills the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

export const DEFAULT_PROMETHEUS_BIN = "/usr/bin/prometheus";
export const DEFAULT_PROMTOOL_BIN = "/usr/bin/promtool";
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

export function prometheusConfig(scrape?: ScrapeJob): string {
  const scrapeConfigs = scrape
    ? [
        {
          job_name: scrape.jobName ?? "isthmus",
          scrape_interval: scrape.scrapeInterval ?? "1s",
          scrape_timeout: "1s",
          metrics_path: scrape.metricsPath ?? "/_isthmus/v1/metrics",
          ...(scrape.cluster !== undefined ? { params: { cluster: [scrape.cluster] } } : {}),
          ...(scrape.bearerToken !== undefined ? { authorization: { type: "Bearer", credentials: scrape.bearerToken } } : {}),
          static_configs: [{ targets: [scrape.target] }],
        },
      ]
    : [];
  // JSON is YAML: no YAML library needed to write the config.
  return JSON.stringify({ global: { scrape_interval: "1s", evaluation_interval: "1s" }, scrape_configs: scrapeConfigs }, null, 2);
}

export async function startPrometheus(opts: StartPrometheusOptions = {}): Promise<PrometheusServer> {
  const binary = opts.binary ?? process.env.PROMETHEUS_BIN ?? DEFAULT_PROMETHEUS_BIN;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const dir = await mkdtemp(path.join(tmpdir(), "isthmus-prometheus-"));
  installExitHook();
  const configFile = path.join(dir, "prometheus.yml");
  await writeFile(configFile, prometheusConfig(opts.scrape));

  // A fresh port can be taken between freePort() and Prometheus binding it: retry a few times.
  const launchOnFreePort = async (): Promise<{ proc: ChildProcess; port: number }> => {
    for (let attempt = 1; ; attempt++) {
      const candidate = await freePort();
      try {
        const args = [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${path.join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${candidate}`,
          "--web.enable-remote-write-receiver",
          "--log.level=warn",
        ];
        return { proc: await launch(binary, args, candidate, readyTimeoutMs), port: candidate };
      } catch (err) {
        if (!(err instanceof AddressInUseError) || attempt >= 5) throw err;
      }
    }
  };
  let proc: ChildProcess;
  let port: number;
  try {
    ({ proc, port } = await launchOnFreePort());
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const url = `http://127.0.0.1:${port}`;
  let stopping: Promise<void> | null = null;

  return {
    url,
    port,
    remoteWriteUrl: `${url}/api/v1/write`,
    dir,
    async query(promql) {
      const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (res.status !== 200 || body.status !== "success" || !body.data) throw new Error(`PromQL ${promql}: HTTP ${res.status} ${body.error ?? ""}`);
      if (body.data.resultType !== "vector") throw new Error(`PromQL ${promql}: expected a vector, got ${body.data.resultType}`);
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    stop() {
      stopping ??= (async () => {
        await terminate(proc);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

class AddressInUseError extends Error {}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function terminate(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await gone;
}

function launch(binary: string, args: string[], port: number, readyTimeoutMs: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { cwd: tmpdir(), stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    child.once("exit", () => live.delete(child));
    let output = "";
    let settled = false;
    const keep = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (output.length > 64_000) output = output.slice(-32_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const command = [binary, ...args].join(" ");
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      if (!exited(child)) child.kill("SIGKILL");
      reject(err);
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") fail(new Error(`prometheus not found at "${binary}": install it with apt-get install prometheus (or set PROMETHEUS_BIN)`));
      else fail(new Error(`could not start prometheus: ${err.message}`, { cause: err }));
    });
    child.once("exit", (code, signal) => {
      const why = `prometheus exited before it was ready (code ${code}, signal ${signal}); command: ${command}\n${output}`;
      fail(/address already in use/i.test(output) ? new AddressInUseError(why) : new Error(why));
    });
    // Readiness is a state: poll /-/ready until it answers 200 or the deadline passes.
    const deadline = performance.now() + readyTimeoutMs;
    const poll = async (): Promise<void> => {
      while (!settled) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/-/ready`, { signal: AbortSignal.timeout(1000) });
          await res.body?.cancel();
          // A 200 from a process that is not ours (it lost the port race) does not count.
          if (res.status === 200 && !exited(child) && !/address already in use/i.test(output)) {
            settled = true;
            resolve(child);
            return;
          }
        } catch {
          // not listening yet
        }
        if (performance.now() > deadline) {
          fail(new Error(`prometheus did not become ready (/-/ready) within ${readyTimeoutMs} ms; command: ${command}\n${output}`));
          return;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    void poll();
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

// ------------------------------------------------------------------ promtool

export interface PromtoolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Lint findings ("<metric> <problem>"): exit code 3, the text parsed. */
  lintProblems: string[];
  /** Set when the text did not parse (exit code 1). */
  parseError: string | null;
}

/**
 * `promtool check metrics` on an exposition. promtool 2.42 exits 0 when clean, 3 when the text
 * parsed but has lint findings (e.g. "metric names should not contain abbreviated units"), and 1
 * when it could not be parsed: only the last is a format error.
 */
export function promtoolCheckMetrics(text: string, binary = process.env.PROMTOOL_BIN ?? DEFAULT_PROMTOOL_BIN): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    child.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "ENOENT" ? new Error(`promtool not found at "${binary}": install it with apt-get install prometheus (or set PROMTOOL_BIN)`) : err),
    );
    child.once("close", (code) => {
      const exitCode = code ?? -1;
      // promtool 2.42 prints each finding as "<metric> <problem>" (on stderr).
      const lintProblems = exitCode === 3 ? `${stdout}\n${stderr}`.split("\n").map((l) => l.trim()).filter((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]* \S/.test(l)) : [];
      const parseError = exitCode === 0 || exitCode === 3 ? null : (stderr || stdout).trim() || `exit code ${exitCode}`;
      resolve({ exitCode, stdout, stderr, lintProblems, parseError });
    });
    child.stdin.end(text);
  });
}

// ------------------------------------------------------------------ text exposition parsing

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedExposition {
  samples: ParsedSample[];
  /** Family name -> TYPE. */
  types: Map<string, string>;
  help: Map<string, string>;
}

/** A small, strict parser of the Prometheus text format 0.0.4 (throws on a line it does not understand). */
export function parseExposition(text: string): ParsedExposition {
  const samples: ParsedSample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const lines = text.split("\n");
  for (const [i, line] of lines.entries()) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (m) (m[1] === "TYPE" ? types : help).set(m[2] as string, m[3] as string);
      continue;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nameMatch) throw new Error(`line ${i + 1}: no metric name: ${line}`);
    const name = nameMatch[0];
    let pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === "{") {
      pos++;
      while (line[pos] !== "}") {
        const ln = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(pos));
        if (!ln) throw new Error(`line ${i + 1}: bad label at ${pos}: ${line}`);
        pos += ln[0].length;
        let value = "";
        for (;;) {
          const ch = line[pos];
          if (ch === undefined) throw new Error(`line ${i + 1}: unterminated label value: ${line}`);
          pos++;
          if (ch === '"') break;
          if (ch === "\\") {
            const esc = line[pos++];
            if (esc === "n") value += "\n";
            else if (esc === "\\" || esc === '"') value += esc;
            else throw new Error(`line ${i + 1}: bad escape \\${esc}: ${line}`);
          } else value += ch;
        }
        labels[ln[1] as string] = value;
        if (line[pos] === ",") pos++;
      }
      pos++;
    }
    const rest = line.slice(pos).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2 || rest[0] === "") throw new Error(`line ${i + 1}: bad value: ${line}`);
    const raw = rest[0] as string;
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== "NaN") throw new Error(`line ${i + 1}: bad value ${raw}: ${line}`);
    samples.push({ name, labels, value });
  }
  return { samples, types, help };
}

/** Sum of the samples named `name` whose labels include all of `match`. */
export function sumOf(samples: readonly ParsedSample[], name: string, match: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}
