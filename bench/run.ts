// `npm run bench`: direct calls to an upstream vs the same calls through isthmus, in one run.
// Throughput with autocannon (50 connections, several rounds, medians) and low-load latency with
// one connection (sequential requests timed in microseconds). Prints a table and the ratios.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { Pool } from "undici";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION_S = Number(process.env.BENCH_DURATION ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const LATENCY_REQUESTS = Number(process.env.BENCH_LATENCY_REQUESTS ?? 3000);
const HOST = "bench.isthmus";

interface Child {
  proc: ChildProcess;
  port: number;
}

function startUpstream(): Promise<Child> {
  const proc = spawn(process.execPath, [join(import.meta.dirname, "upstream.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    proc.once("error", reject);
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once("line", (line) => resolve({ proc, port: (JSON.parse(line) as { port: number }).port }));
  });
}

async function startGateway(upstreamPort: number, port: number): Promise<Child> {
  const dir = await mkdtemp(join(tmpdir(), "isthmus-bench-"));
  const config = join(dir, "config.json");
  await writeFile(
    config,
    JSON.stringify({
      clusters: { east: { endpoint: `http://127.0.0.1:${upstreamPort}`, trustDomain: "east.example" } },
      routes: {
        bench: {
          hostnames: [HOST],
          authorization: { unauthenticated: true },
          rules: [{ name: "default", backendRefs: [{ cluster: "east", service: "bench.svc.cluster.local", port: 8080, weight: 90 }, { cluster: "east", service: "bench-canary.svc.cluster.local", port: 8080, weight: 10 }] }],
        },
      },
    }),
  );
  const proc = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "..", "src", "runtime", "node-main.ts")], {
    env: { ...process.env, PORT: String(port), ISTHMUS_CONFIG: config, ISTHMUS_LOG_LEVEL: "error", ISTHMUS_REDIS_URL: "" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  // Ready when readyz answers 200.
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/_isthmus/readyz`);
      if (res.ok) return { proc, port };
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("gateway did not become ready");
}

interface Throughput {
  rps: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
}

async function load(url: string, headers: Record<string, string>): Promise<Throughput> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, headers });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max, errors: r.errors + r.non2xx + r.timeouts };
}

async function lowLoadLatency(origin: string, headers: Record<string, string>): Promise<{ p50us: number; p99us: number }> {
  const pool = new Pool(origin, { connections: 1 });
  const times: number[] = [];
  for (let i = 0; i < LATENCY_REQUESTS + 200; i++) {
    const t0 = process.hrtime.bigint();
    const res = await pool.request({ path: "/", method: "GET", headers });
    await res.body.arrayBuffer();
    const dt = Number(process.hrtime.bigint() - t0) / 1000;
    if (i >= 200) times.push(dt); // the first 200 warm up
  }
  await pool.close();
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] as number;
  return { p50us: q(0.5), p99us: q(0.99) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
function medianOf(rs: Throughput[]): Throughput {
  return { rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), max: median(rs.map((r) => r.max)), errors: rs.reduce((s, r) => s + r.errors, 0) };
}

const upstream = await startUpstream();
const gateway = await startGateway(upstream.port, 18000 + Math.floor(Math.random() * 2000));
const direct = `http://127.0.0.1:${upstream.port}/`;
const through = `http://127.0.0.1:${gateway.port}/`;
try {
  console.log(`isthmus bench: ${ROUNDS} rounds x ${DURATION_S}s, ${CONNECTIONS} connections, autocannon; ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
  // Warm both paths (JIT, connection pools) before measuring.
  await autocannon({ url: direct, connections: 10, duration: 2 });
  await autocannon({ url: through, connections: 10, duration: 2, headers: { host: HOST } });
  const d: Throughput[] = [];
  const g: Throughput[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    d.push(await load(direct, {}));
    g.push(await load(through, { host: HOST }));
    console.log(`  round ${i + 1}: direct ${Math.round(d[i]!.rps)} req/s, isthmus ${Math.round(g[i]!.rps)} req/s`);
  }
  const dm = medianOf(d);
  const gm = medianOf(g);
  const dl = await lowLoadLatency(`http://127.0.0.1:${upstream.port}`, {});
  const gl = await lowLoadLatency(`http://127.0.0.1:${gateway.port}`, { host: HOST });
  const row = (name: string, t: Throughput, l: { p50us: number; p99us: number }) =>
    `| ${name} | ${Math.round(t.rps)} | ${t.p50} | ${t.p99} | ${t.max} | ${t.errors} | ${Math.round(l.p50us)} | ${Math.round(l.p99us)} |`;
  console.log(`
| path | req/s (median) | p50 ms | p99 ms | max ms | errors | 1-conn p50 µs | 1-conn p99 µs |
|---|---:|---:|---:|---:|---:|---:|---:|
${row("direct to upstream", dm, dl)}
${row("through isthmus (90/10 route)", gm, gl)}

ratio isthmus / direct throughput: ${(gm.rps / dm.rps).toFixed(3)}
added p50 at 1 connection: ${Math.round(gl.p50us - dl.p50us)} µs`);
} finally {
  gateway.proc.kill("SIGTERM");
  upstream.proc.kill("SIGTERM");
}
