// Soak (research/perf-reliability.md §4.2 A2, shortened to fit `npm test`): the gateway as it ships
// (`node --import tsx src/runtime/node-main.ts`, configured by PORT and ISTHMUS_CONFIG) in a child
// process, so the RSS read from /proc/<pid>/status is the gateway's own, under a steady 200 req/s
// for 60 s. Pass: no failed request, heap in use at the end at most 10% above its value after a 10 s
// warm-up, and RSS at most 20% above. RSS gets the wider bound because it still steps up in the first
// minute as the allocator and JIT code settle (seen: +11.4% while the post-GC heap grew 4%, flat for the
// last 20 s); a leak of 1 KiB per request would add 12% more on top, and the timer leak this test
// was written after held about 20 MiB, +70% of the heap. The 10-minute `npm run bench -- --soak` is
// where RSS growth is measured against its 5% goal.
// Both readings follow a full GC, asked of the child by SIGUSR2 through a test-only preload
// (`--expose-gc --import gc-hook.mjs`): without it V8 may go 40 s without a major GC and let RSS
// climb with garbage (seen here: +25% with a flat post-GC heap), which says nothing about a leak.
// Growth is what fails, not shrinkage: about 20 s in, V8 hands back memory from start-up (RSS fell
// 13-18% at that point on a 2-core machine, the same before and after the hot-path work), and a
// leak shows as growth of both RSS and the post-GC heap, which is checked too.
// Its own file so vitest runs it next to the other files instead of after them.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Agent, request } from "undici";
import { afterAll, expect, it } from "vitest";
import { freePort } from "../helpers/redis-server.ts";
import { startUpstream } from "../helpers/upstream.ts";

const RATE = 200; // requests per second
const WARMUP_MS = 10_000;
const SOAK_MS = 60_000;
/** For RSS and for the heap in use, both after a full GC. */
const MAX_RSS_GROWTH = 0.2;
const MAX_HEAP_GROWTH = 0.1;
const REPO = path.resolve(import.meta.dirname, "../..");

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Preloaded into the child: on SIGUSR2, a full GC, then one line on stderr with process.memoryUsage(). */
const GC_HOOK = `process.on("SIGUSR2", () => {
  globalThis.gc();
  process.stderr.write("GC-DONE " + JSON.stringify(process.memoryUsage()) + "\\n");
});
`;

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const escalate = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(escalate);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

it(
  `soak: ${SOAK_MS / 1000} s at ${RATE} req/s through a child-process gateway: no errors, heap within ${MAX_HEAP_GROWTH * 100}% and RSS within ${MAX_RSS_GROWTH * 100}% of their values after ${WARMUP_MS / 1000} s`,
  async () => {
    const upstream = await startUpstream("east");
    cleanups.push(() => upstream.close());
    const dir = await mkdtemp(path.join(tmpdir(), "isthmus-soak-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const configPath = path.join(dir, "isthmus.yaml");
    const hookPath = path.join(dir, "gc-hook.mjs");
    await writeFile(hookPath, GC_HOOK);
    await writeFile(
      configPath,
      [
        "clusters:",
        "  east:",
        `    endpoint: ${upstream.url}`,
        "    trustDomain: east.example",
        "routes:",
        "  soak:",
        "    hostnames: [soak.test]",
        "    authorization: {unauthenticated: true}",
        "    rules:",
        "      - backendRefs:",
        "          - {cluster: east, service: checkout.shop.svc.cluster.local, port: 8080}",
        "",
      ].join("\n"),
    );

    // The child gets only what this test sets: no ISTHMUS_* (or PORT/HOST) from the environment.
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ISTHMUS_") && k !== "PORT" && k !== "HOST"));
    const port = await freePort();
    const child = spawn(process.execPath, ["--expose-gc", "--import", pathToFileURL(hookPath).href, "--import", "tsx", "src/runtime/node-main.ts"], {
      cwd: REPO,
      env: { ...env, PORT: String(port), HOST: "127.0.0.1", ISTHMUS_CONFIG: configPath, ISTHMUS_LOG_LEVEL: "warn", AWS_EC2_METADATA_DISABLED: "true" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => stop(child));
    let output = "";
    const keep = (d: Buffer) => (output = (output + d.toString("utf8")).slice(-8000));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const pid = child.pid ?? -1;
    /** A full GC in the child, then its RSS (KiB) and heap in use (bytes). */
    const afterGc = async (): Promise<{ rssKiB: number; heapUsed: number }> => {
      const line = new Promise<string>((resolve, reject) => {
        let buf = "";
        const timer = setTimeout(() => reject(new Error(`no GC-DONE from the gateway within 5 s:\n${output}`)), 5000);
        const on = (d: Buffer) => {
          buf += d.toString("utf8");
          const m = /GC-DONE (\{.*\})\n/.exec(buf);
          if (!m) return;
          clearTimeout(timer);
          child.stderr?.off("data", on);
          resolve(m[1] as string);
        };
        child.stderr?.on("data", on);
      });
      child.kill("SIGUSR2");
      const mem = JSON.parse(await line) as { heapUsed: number };
      return { rssKiB: await rssKiB(pid), heapUsed: mem.heapUsed };
    };
    const url = `http://127.0.0.1:${port}`;

    const client = new Agent({ connections: 32, keepAliveTimeout: 10_000 });
    cleanups.push(() => client.destroy().catch(() => undefined));
    // Ready when healthz answers (bounded; a crashed child fails at once with its output).
    const readyBy = performance.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}:\n${output}`);
      const ok = await request(`${url}/_isthmus/healthz`, { dispatcher: client })
        .then(async (r) => (await r.body.dump(), r.statusCode === 200))
        .catch(() => false);
      if (ok) break;
      if (performance.now() > readyBy) throw new Error(`gateway not up within 30 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    // Open-loop load: every tick sends what the schedule says is due, whatever the latency.
    let sent = 0;
    let ok = 0;
    const failures: string[] = [];
    const latencies: number[] = [];
    const inflight = new Set<Promise<void>>();
    const one = async () => {
      const t = performance.now();
      try {
        const res = await request(`${url}/orders?n=${sent}`, { dispatcher: client, headers: { host: "soak.test" } });
        await res.body.dump();
        if (res.statusCode === 200) ok++;
        else failures.push(`HTTP ${res.statusCode}`);
      } catch (err) {
        failures.push(String(err));
      }
      latencies.push(performance.now() - t);
    };
    const samples: Array<{ atS: number; rssMiB: number }> = [];
    const started = performance.now();
    let warm: Promise<{ rssKiB: number; heapUsed: number }> | null = null;
    await new Promise<void>((resolve, reject) => {
      let sampling = false;
      const timer = setInterval(() => {
        const elapsed = performance.now() - started;
        const due = Math.min(Math.floor((elapsed / 1000) * RATE), (SOAK_MS / 1000) * RATE);
        while (sent < due) {
          sent++;
          const p = one().finally(() => inflight.delete(p));
          inflight.add(p);
        }
        if (!sampling && Math.floor(elapsed / 1000) > samples.length) {
          sampling = true;
          void rssKiB(pid)
            .then((kib) => void samples.push({ atS: Math.round(elapsed / 1000), rssMiB: kib / 1024 }))
            .catch((err: unknown) => {
              clearInterval(timer);
              reject(err instanceof Error ? err : new Error(String(err)));
            })
            .finally(() => (sampling = false));
        }
        if (!warm && elapsed >= WARMUP_MS) {
          warm = afterGc();
          warm.catch((err: unknown) => {
            clearInterval(timer);
            reject(err instanceof Error ? err : new Error(String(err)));
          });
        }
        if (elapsed >= SOAK_MS) {
          clearInterval(timer);
          resolve();
        }
      }, 20);
    });
    await Promise.all(inflight);
    const seconds = (performance.now() - started) / 1000;
    const atWarm = await (warm as Promise<{ rssKiB: number; heapUsed: number }> | null);
    if (!atWarm) throw new Error("no warm-up reading");
    const atEnd = await afterGc();
    const warmRss = atWarm.rssKiB;
    const endRss = atEnd.rssKiB;

    const sorted = [...latencies].sort((a, b) => a - b);
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
    const growth = (endRss - warmRss) / warmRss;
    console.log(
      `[soak] ${sent} requests in ${seconds.toFixed(1)} s (${(sent / seconds).toFixed(0)} req/s), ${ok} ok, ${failures.length} failed; ` +
        `latency p50 ${p(0.5).toFixed(1)} ms, p99 ${p(0.99).toFixed(1)} ms; ` +
        `gateway RSS after a GC, after the ${WARMUP_MS / 1000} s warm-up ${(warmRss / 1024).toFixed(1)} MiB, at the end ${(endRss / 1024).toFixed(1)} MiB (${(growth * 100).toFixed(1)}%); ` +
        `heap used ${(atWarm.heapUsed / 2 ** 20).toFixed(1)} -> ${(atEnd.heapUsed / 2 ** 20).toFixed(1)} MiB; ` +
        `per-second RSS without forced GC (MiB): ${samples.map((s) => s.rssMiB.toFixed(0)).join(" ")}`,
    );
    expect(child.exitCode).toBeNull();
    expect(failures.slice(0, 5)).toEqual([]);
    expect(ok).toBe((SOAK_MS / 1000) * RATE);
    expect(growth).toBeLessThanOrEqual(MAX_RSS_GROWTH);
    expect((atEnd.heapUsed - atWarm.heapUsed) / atWarm.heapUsed).toBeLessThanOrEqual(MAX_HEAP_GROWTH);
  },
  90_000,
);
