// Runs wrk (closed loop, one thread) and parses its report, latencies in microseconds.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { pinned } from "./pinning.ts";

const run = promisify(execFile);

export interface LoadResult {
  rps: number;
  p50us: number;
  p99us: number;
  maxUs: number;
  /** Non-2xx answers plus socket errors. */
  errors: number;
  requests: number;
  /** The target process's CPU time per request, when measured. */
  cpuUsPerRequest?: number;
}

export interface WrkOptions {
  url: string;
  connections: number;
  durationS: number;
  headers?: Record<string, string>;
}

export async function wrk(o: WrkOptions): Promise<LoadResult> {
  const args = ["-t1", `-c${o.connections}`, `-d${o.durationS}s`, "--latency", "--timeout", "5s"];
  // wrk adds its own Host unless given one spelled exactly "Host"; two Host headers would be a 404.
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k.toLowerCase() === "host" ? "Host" : k}: ${v}`);
  args.push(o.url);
  const { stdout } = await run(...pinned("load", "wrk", args), { timeout: (o.durationS + 30) * 1000 });
  return parseWrk(stdout);
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000, m: 60_000_000 };

function toUs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`wrk: cannot read the duration "${text}"`);
  return Number(m[1]) * (UNIT_US[m[2] as string] as number);
}

export function parseWrk(out: string): LoadResult {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk: no ${what} in its report:\n${out}`);
    return m;
  };
  const latency = need(/^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m, "latency line");
  const p50 = need(/^\s*50%\s+(\S+)/m, "50th percentile");
  const p99 = need(/^\s*99%\s+(\S+)/m, "99th percentile");
  const rps = need(/^Requests\/sec:\s+([\d.]+)/m, "Requests/sec");
  const total = need(/^\s*(\d+) requests in/m, "request count");
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  return {
    rps: Number(rps[1]),
    p50us: toUs(p50[1] as string),
    p99us: toUs(p99[1] as string),
    maxUs: toUs(latency[3] as string),
    errors: Number(non2xx?.[1] ?? 0) + sockErrors,
    requests: Number(total[1]),
  };
}
