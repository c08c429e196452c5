// `npm run bench`: one run measuring, on loopback against the same fast upstream (nginx `return 200`):
// the upstream directly (the limit), nginx as a weighted proxy, @fastify/http-proxy, isthmus with a
// plain weighted route, and isthmus with everything on (JWT-SVID verification, an authorization
// policy, sticky choice, metrics flushed to Redis). Throughput and closed-loop latency with wrk,
// a fixed offered rate with a native open-loop client (bench/openloop.c) in interleaved rounds, latencies
// pooled per target; then the startup cost.
// `npm run bench -- --soak`: 10 minutes at a fixed rate through isthmus-full, RSS every 10 s.
// It installs nothing: when wrk, nginx, redis-server or a C compiler is missing it says what to install.
import { cpus, loadavg, totalmem } from "node:os";
import { request } from "undici";
import { buildOpenLoop, CLIENT_STALL_US, fixedRate, hasCompiler, pooled, unstalledRounds, type FixedRateResult } from "./fixed-rate.ts";
import { describePinning, move, pinning, pinSelf, unpinSelf } from "./pinning.ts";
import { cpuSeconds, rssKiB } from "./proc.ts";
import { roundOrder, saturationCycle } from "./run-order.ts";
import { sameTime, summarizeSameTime, type SameTimeRep } from "./same-time.ts";
import { measureWakeups } from "./wakeup.ts";
import { buildIsthmus, Fleet, missingTools, type Target } from "./targets.ts";
import { wrk, type LoadResult } from "./wrk.ts";

const num = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
// Many short saturation rounds rather than a few long ones: the machine's own drift lasts seconds
// to a minute, and a median over 7 rotated rounds shrugs off a slow stretch that 3 rounds could not.
const ROUNDS = num("BENCH_ROUNDS", 7);
const DURATION_S = num("BENCH_DURATION", 5);
const LATENCY_ROUNDS = num("BENCH_LATENCY_ROUNDS", 3);
const WARMUP_S = num("BENCH_WARMUP", 3);
const CONNECTIONS = num("BENCH_CONNECTIONS", 50);
const LOW_DURATION_S = num("BENCH_LOW_DURATION", 5);
const RATE = num("BENCH_RATE", 3000);
// The fixed rate in many short rounds, interleaved across targets, latencies pooled per target: the
// machine's stalls come and go over seconds, and fine interleaving spreads them over every target
// alike, where three 10 s runs per target left each p99 to whatever the machine did in its 10 s.
const RATE_ROUNDS = num("BENCH_RATE_ROUNDS", 10);
const RATE_DURATION_S = num("BENCH_RATE_DURATION", 2);
/** Same-time pairs (bench/same-time.ts): repetitions and seconds of each. */
const PAIR_REPS = num("BENCH_PAIR_REPS", 6);
const PAIR_DURATION_S = num("BENCH_PAIR_DURATION", 4);
const SOAK_S = num("BENCH_SOAK_DURATION", 600);
// About half of what isthmus-full serves at saturation here, as the research's soak goal asks.
const SOAK_RATE = num("BENCH_SOAK_RATE", 2000);
const SOAK_SAMPLE_S = num("BENCH_SOAK_SAMPLE", 10);
const SOAK_WARMUP_S = num("BENCH_SOAK_WARMUP", 60);

const args = new Set(process.argv.slice(2));
const soakMode = args.has("--soak");
const skipStartup = args.has("--no-startup");
const only = process.env.BENCH_TARGETS?.split(",");
/** The goal pairs measured again at the same time: the must, and what the features cost. */
const PAIR_NAMES: ReadonlyArray<readonly [string, string]> = [
  ["isthmus-full", "fastify-proxy"],
  ["isthmus-full", "isthmus-plain-samereq"],
];

const missing = missingTools();
if (!hasCompiler()) missing.push("cc, to build the open-loop client bench/openloop.c (Debian/Ubuntu: sudo apt-get install gcc)");
if (missing.length) {
  console.error(`npm run bench needs tools it does not install. Missing:\n${missing.map((m) => `  - ${m}`).join("\n")}`);
  process.exit(2);
}

buildIsthmus();
buildOpenLoop();
pinSelf();
const fleet = await Fleet.create();
const stop = () => void fleet.stop().finally(() => process.exit(130));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);

try {
  const all = await fleet.startTargets();
  const targets = only ? all.filter((t) => only.includes(t.name)) : all;
  await checkTargets(targets);
  console.log(header());
  if (soakMode) await soak(all.find((t) => t.name === "isthmus-full") as Target);
  else await compare(targets);
} finally {
  await fleet.stop();
}
if (!soakMode && !skipStartup) {
  unpinSelf();
  const { formatStartup, measureStartup } = await import("./startup.ts");
  console.log(`\n${formatStartup(await measureStartup({ log: (s) => console.error(s) }))}`);
}

function header(): string {
  const cpu = cpus();
  return `isthmus bench, ${new Date().toISOString()}: ${cpu.length} CPUs (${cpu[0]?.model ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`;
}

/** Every target answers 200 with the upstream's body before anything is measured. */
async function checkTargets(targets: Target[]): Promise<void> {
  for (const t of targets) {
    // undici.request, not fetch: fetch may not set Host.
    const res = await request(`${t.origin}/`, { headers: t.headers });
    const body = await res.body.text();
    if (res.statusCode !== 200 || !body.includes('"service":"bench"')) throw new Error(`${t.name} answered ${res.statusCode}: ${body.slice(0, 300)}`);
  }
}

async function compare(targets: Target[]): Promise<void> {
  // Variants of another target's request are measured at saturation only, for their throughput ratio.
  const latencyTargets = targets.filter((t) => !t.saturationOnly);
  console.log(
    `wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s (after ${WARMUP_S}s warm-up), ${ROUNDS} rounds; -c1 -d${LOW_DURATION_S}s, ${LATENCY_ROUNDS} rounds; open loop ${RATE} req/s for ${RATE_DURATION_S}s, ${RATE_ROUNDS} rounds; order rotated each round, isthmus-full run between isthmus-plain-samereq and fastify-proxy; ${describePinning()}`,
  );
  for (const t of targets) await wrk({ url: `${t.origin}/`, connections: CONNECTIONS, durationS: WARMUP_S, headers: t.headers });
  const sat = new Map<string, LoadResult[]>();
  const low = new Map<string, LoadResult[]>();
  const rate = new Map<string, FixedRateResult[]>();
  const push = <R>(m: Map<string, R[]>, k: string, r: R) => m.set(k, [...(m.get(k) ?? []), r]);
  const oneConnection = (t: Target) => wrk({ url: `${t.origin}/`, connections: 1, durationS: LOW_DURATION_S, headers: t.headers });
  // isthmus-full runs right between fastify-proxy and isthmus-plain-samereq (bench/run-order.ts):
  // the must's and the features' ratios then compare runs taken back to back.
  const cycle = saturationCycle(targets, "isthmus-full", ["isthmus-plain-samereq", "fastify-proxy"]);
  for (let round = 0; round < ROUNDS; round++) {
    const order = roundOrder(cycle, round);
    for (const t of order) {
      const cpu0 = await cpuSeconds(t.pid);
      const r = await wrk({ url: `${t.origin}/`, connections: CONNECTIONS, durationS: DURATION_S, headers: t.headers });
      r.cpuUsPerRequest = r.requests > 0 ? (((await cpuSeconds(t.pid)) - cpu0) * 1e6) / r.requests : NaN;
      push(sat, t.name, r);
      console.error(`  round ${round + 1} ${t.name}: ${Math.round(r.rps)} req/s, p99 ${fmtUs(r.p99us)}, ${r.cpuUsPerRequest.toFixed(0)} CPU µs per request`);
    }
    if (round >= LATENCY_ROUNDS) continue;
    for (const t of order.filter((x) => !x.saturationOnly)) push(low, t.name, await oneConnection(t));
  }
  // One connection again, each proxy moved onto the load core for its run (with two CPUs, the one
  // core of wrk and the upstream). At one connection nothing runs at once, so pinning buys no
  // fairness there; what it costs is four cross-core wake-ups per request, which on a VM are the
  // machine's price (bench/wakeup.c measures it), not the proxy's.
  const lowOneCore = new Map<string, LoadResult[]>();
  if (pinning) {
    for (let round = 0; round < LATENCY_ROUNDS; round++) {
      for (const t of roundOrder(latencyTargets, round)) {
        if (t.name === "direct") {
          push(lowOneCore, t.name, await oneConnection(t)); // the upstream is on the load core already
          continue;
        }
        await move(t.pid, "load");
        try {
          push(lowOneCore, t.name, await oneConnection(t));
        } finally {
          await move(t.pid, "proxy");
        }
      }
    }
  }
  const wakeups = measureWakeups();
  // The must's and the features' pairs again, this time saturated at the same moment on the shared core.
  const pairs = new Map<string, SameTimeRep[]>();
  const byName = (n: string) => targets.find((t) => t.name === n);
  for (const [an, bn] of PAIR_NAMES) {
    const a = byName(an);
    const b = byName(bn);
    if (!a || !b) continue;
    for (let rep = 0; rep < PAIR_REPS; rep++) {
      const r = await sameTime(a, b, { durationS: PAIR_DURATION_S, connections: CONNECTIONS });
      push(pairs, `${an}|${bn}`, r);
      console.error(`  same time ${rep + 1} ${an} ${r.a.requests} requests, ${r.a.cpuUsPerRequest?.toFixed(0)} CPU µs per request; ${bn} ${r.b.requests}, ${r.b.cpuUsPerRequest?.toFixed(0)}`);
    }
  }
  for (let round = 0; round < RATE_ROUNDS; round++) {
    const order = roundOrder(latencyTargets, round);
    for (const t of order) {
      // The first round warms each target at the rate (its connections, the JIT); later rounds only open their connections.
      const r = await fixedRate({ origin: t.origin, ratePerS: RATE, durationS: RATE_DURATION_S, warmupS: round === 0 ? 3 : 0.5, connections: 64, headers: t.headers });
      push(rate, t.name, r);
      console.error(`  rate round ${round + 1} ${t.name}: p50 ${fmtUs(r.p50us)}, p99 ${fmtUs(r.p99us)}, max ${fmtUs(r.maxUs)}, send lag p99 ${fmtUs(r.sendLagP99us)}`);
    }
  }
  const pool = (k: string) => pooled((rate.get(k) ?? []).map((r) => r.latenciesUs));
  // The tail goal compares rounds in which the load generator kept its schedule (see unstalledRounds).
  const poolKept = (k: string) => pooled(unstalledRounds(rate.get(k) ?? []).map((r) => r.latenciesUs));
  const stalledRounds = (k: string) => (rate.get(k) ?? []).filter((r) => r.sendLagP99us > CLIENT_STALL_US).length;
  const med = (m: Map<string, LoadResult[]>, k: string) => medianOf(m.get(k) ?? []);
  console.log(`
### Saturation: wrk -c${CONNECTIONS}, medians of ${ROUNDS} rounds
"CPU µs/req" is the proxy process's own CPU time (user + system, workers included) per request served: on two
shared cores it says what each proxy costs, where req/s also depends on what wrk and the upstream got of the CPU.
| target | req/s | p50 | p99 | max | errors | CPU µs/req | req/s by round |
|---|---:|---:|---:|---:|---:|---:|---|
${targets.map((t) => row(t.name, med(sat, t.name), sat.get(t.name) ?? [])).join("\n")}

### Low load: wrk -c1, medians of ${LATENCY_ROUNDS} rounds
| target | req/s | p50 | p99 | max | errors |
|---|---:|---:|---:|---:|---:|
${latencyTargets.map((t) => row(t.name, med(low, t.name))).join("\n")}
${
  lowOneCore.size > 0
    ? `
### Low load on one core: wrk -c1, each proxy moved onto the load core for its run, medians of ${LATENCY_ROUNDS} rounds
Pinned on a core of its own, a proxy at one connection is woken across cores four times per request (client, proxy, upstream,
proxy, client); direct only within the load core. bench/wakeup.c on this machine${wakeups ? `: a round trip across cores p50 ${Math.round(wakeups.crossCoreP50us)} µs, within one core ${Math.round(wakeups.sameCoreP50us)} µs` : ""}.
Here every process of a request shares one core, so the added latency is the proxy's own work and its context switches.
| target | req/s | p50 | p99 | max | errors |
|---|---:|---:|---:|---:|---:|
${latencyTargets.map((t) => row(t.name, med(lowOneCore, t.name))).join("\n")}`
    : ""
}

### Fixed offered rate: ${RATE} req/s open loop (bench/openloop.c, 64 connections), ${RATE_ROUNDS} rounds of ${RATE_DURATION_S}s interleaved, latencies pooled
Latency from each request's due time. "direct" is the floor: the load generator, the upstream and the machine's own stalls.
"> 500 µs" and "> 1 ms" are the shares of requests slower than that: they count the slow requests a p99 inside a cluster of stalls hides.
"client stalled" counts the rounds in which the load generator itself sent late (its send lag p99 over 1 ms): its own core stalled, and
those rounds' latencies carry that stall whichever target they measured. "p99, client kept time" pools only the other rounds: the tail goal uses it.
| target | requests | p50 | p90 | p99 | p99.9 | max | > 500 µs | > 1 ms | errors | client stalled | p99, client kept time | p99 by round |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
${latencyTargets
  .filter((t) => rate.has(t.name))
  .map((t) => {
    const p = pool(t.name);
    const rs = rate.get(t.name) ?? [];
    return `| ${t.name} | ${p.requests.toLocaleString("en")} | ${fmtUs(p.p50us)} | ${fmtUs(p.p90us)} | ${fmtUs(p.p99us)} | ${fmtUs(p.p999us)} | ${fmtUs(p.maxUs)} | ${pct(p.over500us)} | ${pct(p.over1ms)} | ${rs.reduce((s, r) => s + r.errors, 0)} | ${stalledRounds(t.name)} of ${rs.length} | ${fmtUs(poolKept(t.name).p99us)} | ${rs.map((r) => fmtUs(r.p99us)).join(", ")} |`;
  })
  .join("\n")}`);
  if (pairs.size > 0) {
    console.log(`
### Same time: each pair saturated at once, both proxies on their one shared core, ${PAIR_REPS} repetitions of ${PAIR_DURATION_S}s
Each repetition starts two wrk -c${CONNECTIONS} together, one per target; every stall of the machine falls on both. "CPU ratio" is the
second target's CPU per request over the first's, over the same seconds (above 1: the first costs less; it does not depend on how the
scheduler shared the core); "requests ratio" is the requests the first served over the second's (it does).
| pair | CPU ratio (median) | CPU ratio by repetition | requests ratio (median) | requests ratio by repetition | CPU µs/req, first / second (medians) | errors |
|---|---:|---|---:|---|---|---:|
${[...pairs.entries()]
  .map(([k, reps]) => {
    const [an, bn] = k.split("|");
    const sum = summarizeSameTime(reps);
    const cpu = (f: (r: SameTimeRep) => number | undefined) => Math.round(medianNumber(reps.map((r) => f(r) ?? NaN)));
    return `| ${an} / ${bn} | ${sum.cpuRatio.toFixed(3)} | ${sum.cpuRatios.map((x) => x.toFixed(2)).join(", ")} | ${sum.requestRatio.toFixed(3)} | ${sum.requestRatios.map((x) => x.toFixed(2)).join(", ")} | ${cpu((r) => r.a.cpuUsPerRequest)} / ${cpu((r) => r.b.cpuUsPerRequest)} | ${sum.errors} |`;
  })
  .join("\n")}`);
  }
  const has = (k: string) => sat.has(k);
  const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
  // Throughput ratios are the median of the per-round ratios: the two runs of a round are minutes
  // apart at most, so a slow drift of the shared machine cancels out better than in a ratio of medians.
  const roundRatios = (a: string, b: string) => {
    const xs = sat.get(a) ?? [];
    const ys = sat.get(b) ?? [];
    return xs.map((x, i) => ratio(x.rps, ys[i]?.rps ?? NaN));
  };
  const roundRatio = (a: string, b: string) => {
    const rs = roundRatios(a, b).sort((p, q) => p - q);
    return rs[Math.floor(rs.length / 2)] ?? NaN;
  };
  const spread = (a: string, b: string) => `rounds: ${roundRatios(a, b).map((r) => r.toFixed(2)).join(", ")}`;
  const lines: string[] = [];
  const goal = (what: string, value: number, pass: boolean | null, target: string) =>
    lines.push(`| ${what} | ${Number.isFinite(value) ? value.toFixed(value >= 10 ? 0 : 3) : "n/a"} | ${target} | ${pass === null ? "" : pass ? "met" : "**not met**"} |`);
  if (has("isthmus-full") && has("fastify-proxy")) {
    const v = roundRatio("isthmus-full", "fastify-proxy");
    goal("isthmus-full / fastify-proxy throughput", v, v >= 1.1, `>= 1.1 (must); ${spread("isthmus-full", "fastify-proxy")}`);
  }
  const pairGoal = (b: string, what: string, target: string) => {
    const reps = pairs.get(`isthmus-full|${b}`);
    if (reps) goal(what, summarizeSameTime(reps).cpuRatio, null, target);
  };
  pairGoal("fastify-proxy", "isthmus-full / fastify-proxy at the same time, CPU per request", "(the must's pair measured at once: fastify-proxy's CPU per request over isthmus-full's)");
  if (has("isthmus-full") && has("nginx")) {
    const v = roundRatio("isthmus-full", "nginx");
    goal("isthmus-full / nginx throughput", v, v >= 0.6, `>= 0.6 (aim); ${spread("isthmus-full", "nginx")}`);
  }
  // The goal is what identity, policy, stickiness and metrics cost: the plain route sent the same
  // request. Against the plain route's bare request the ratio also pays for receiving and sending
  // a bigger request (a 274-byte token), which any proxy pays; it is printed too.
  if (has("isthmus-full") && has("isthmus-plain-samereq")) {
    const v = roundRatio("isthmus-full", "isthmus-plain-samereq");
    goal("isthmus-full / isthmus-plain throughput, same request", v, v >= 0.9, `>= 0.9; ${spread("isthmus-full", "isthmus-plain-samereq")}`);
    pairGoal("isthmus-plain-samereq", "isthmus-full / isthmus-plain at the same time, same request, CPU per request", "(the features' pair measured at once: plain's CPU per request over full's)");
    goal("isthmus-plain / isthmus-full CPU per request, same request", ratio(med(sat, "isthmus-plain-samereq").cpuUsPerRequest ?? NaN, med(sat, "isthmus-full").cpuUsPerRequest ?? NaN), null, "(the same ratio, in the gateway's own CPU)");
  }
  if (has("isthmus-full") && has("isthmus-plain")) {
    goal("isthmus-full / isthmus-plain throughput, plain's bare request", roundRatio("isthmus-full", "isthmus-plain"), null, `(also the bigger request's cost); ${spread("isthmus-full", "isthmus-plain")}`);
    goal("isthmus-plain / isthmus-full CPU per request, plain's bare request", ratio(med(sat, "isthmus-plain").cpuUsPerRequest ?? NaN, med(sat, "isthmus-full").cpuUsPerRequest ?? NaN), null, "");
  }
  if (has("isthmus-plain") && has("nginx")) goal("isthmus-plain / nginx throughput", roundRatio("isthmus-plain", "nginx"), null, "");
  if (has("nginx") && has("direct")) goal("nginx / direct throughput", roundRatio("nginx", "direct"), null, "");
  if (has("fastify-proxy") && has("nginx")) goal("fastify-proxy / nginx throughput", roundRatio("fastify-proxy", "nginx"), null, "");
  if (has("node-floor") && has("nginx")) goal("node-floor / nginx throughput (a minimal Node forwarder)", roundRatio("node-floor", "nginx"), null, "");
  if (has("isthmus-full") && has("node-floor")) goal("isthmus-full / node-floor throughput", roundRatio("isthmus-full", "node-floor"), null, "");
  if (has("net-floor") && has("nginx")) goal("net-floor / nginx throughput (a minimal forwarder below node:http and undici)", roundRatio("net-floor", "nginx"), null, "");
  if (has("isthmus-full") && has("net-floor")) goal("isthmus-full / net-floor throughput", roundRatio("isthmus-full", "net-floor"), null, "");
  for (const other of ["nginx", "fastify-proxy", "node-floor", "net-floor"]) {
    if (has("isthmus-full") && has(other)) goal(`${other} / isthmus-full CPU per request`, ratio(med(sat, other).cpuUsPerRequest ?? NaN, med(sat, "isthmus-full").cpuUsPerRequest ?? NaN), null, "(throughput per CPU, isthmus-full against it)");
  }
  if (has("direct")) {
    for (const t of latencyTargets.filter((x) => x.name !== "direct")) {
      const added = med(low, t.name).p50us - med(low, "direct").p50us;
      goal(`added p50 over direct at 1 connection, ${t.name} (µs)`, added, t.name === "isthmus-full" ? added <= 150 : null, t.name === "isthmus-full" ? "<= 150 µs" : "");
    }
    if (lowOneCore.size > 0) {
      for (const t of latencyTargets.filter((x) => x.name !== "direct")) {
        const added = med(lowOneCore, t.name).p50us - med(lowOneCore, "direct").p50us;
        const full = t.name === "isthmus-full";
        goal(`added p50 over direct at 1 connection on one core, ${t.name} (µs)`, added, full ? added <= 150 : null, full ? "<= 150 µs, without the machine's cross-core wake-ups" : "");
      }
    }
  }
  if (rate.has("isthmus-full") && rate.has("nginx")) {
    const v = ratio(poolKept("isthmus-full").p99us, poolKept("nginx").p99us);
    const full = rate.get("isthmus-full") ?? [];
    const byRound = full.map((r, i) => ratio(r.p99us, rate.get("nginx")?.[i]?.p99us ?? NaN));
    goal(
      `isthmus-full p99 / nginx p99 at ${RATE} req/s (pooled over the rounds in which the load generator kept time)`,
      v,
      v <= 1.5,
      `<= 1.5; rounds left out for a client stall: isthmus-full ${stalledRounds("isthmus-full")}, nginx ${stalledRounds("nginx")}; by round: ${byRound.map((x) => x.toFixed(2)).join(", ")} (median ${medianNumber(byRound).toFixed(2)})`,
    );
    goal(`isthmus-full p99 / nginx p99 at ${RATE} req/s (pooled over every round)`, ratio(pool("isthmus-full").p99us, pool("nginx").p99us), null, "(stalled rounds included, as the bench reported it before)");
    for (const other of ["node-floor", "net-floor", "fastify-proxy", "isthmus-plain"]) {
      if (rate.has(other)) goal(`${other} p99 / nginx p99 at ${RATE} req/s (pooled, client kept time)`, ratio(poolKept(other).p99us, poolKept("nginx").p99us), null, "");
    }
  }
  console.log(`
### Ratios and goals (throughput ratios: median of the per-round ratios)
| measure | value | goal | |
|---|---:|---|---|
${lines.join("\n")}`);
}

async function soak(t: Target): Promise<void> {
  console.log(`soak: ${t.name} at ${SOAK_RATE} req/s open loop for ${SOAK_S}s, RSS every ${SOAK_SAMPLE_S}s (growth measured from the sample at ${SOAK_WARMUP_S}s)`);
  const samples: Array<{ s: number; rssMiB: number }> = [];
  const started = performance.now();
  const sample = async () => samples.push({ s: Math.round((performance.now() - started) / 1000), rssMiB: (await rssKiB(t.pid)) / 1024 });
  await sample();
  const timer = setInterval(() => void sample(), SOAK_SAMPLE_S * 1000);
  let load: FixedRateResult;
  try {
    load = await fixedRate({ origin: t.origin, ratePerS: SOAK_RATE, durationS: SOAK_S, warmupS: 3, connections: 64, headers: t.headers });
  } finally {
    clearInterval(timer);
  }
  await sample();
  const base = samples.find((x) => x.s >= SOAK_WARMUP_S) ?? samples[0];
  const last = samples[samples.length - 1];
  const peak = Math.max(...samples.filter((x) => x.s >= (base?.s ?? 0)).map((x) => x.rssMiB));
  const growth = base && last ? ((last.rssMiB - base.rssMiB) / base.rssMiB) * 100 : NaN;
  console.log(`
### Soak: ${t.name}, ${SOAK_RATE} req/s for ${SOAK_S}s
served ${load.requests} requests at ${Math.round(load.rps)} req/s, errors ${load.errors}, p50 ${fmtUs(load.p50us)}, p99 ${fmtUs(load.p99us)}, p99.9 ${fmtUs(load.p999us)}, max ${fmtUs(load.maxUs)} (bench/openloop.c, from each request's due time)

RSS (MiB) by second: ${samples.map((x) => `${x.s}s ${x.rssMiB.toFixed(1)}`).join(", ")}

RSS after warm-up (${base?.s}s): ${base?.rssMiB.toFixed(1)} MiB; at the end: ${last?.rssMiB.toFixed(1)} MiB; peak after warm-up ${peak.toFixed(1)} MiB
growth after warm-up: ${growth.toFixed(2)}% (goal <= 5%: ${growth <= 5 ? "met" : "**not met**"})`);
}

function medianNumber(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
}

function medianOf(rs: LoadResult[]): LoadResult {
  const m = medianNumber;
  return {
    rps: m(rs.map((r) => r.rps)),
    p50us: m(rs.map((r) => r.p50us)),
    p99us: m(rs.map((r) => r.p99us)),
    maxUs: m(rs.map((r) => r.maxUs)),
    errors: rs.reduce((s, r) => s + r.errors, 0),
    requests: rs.reduce((s, r) => s + r.requests, 0),
    cpuUsPerRequest: m(rs.map((r) => r.cpuUsPerRequest ?? NaN)),
  };
}

function pct(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(2)}%` : "n/a";
}

function fmtUs(us: number): string {
  return us >= 10_000 ? `${(us / 1000).toFixed(1)} ms` : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${Math.round(us)} µs`;
}

function row(name: string, r: LoadResult, rounds?: LoadResult[]): string {
  const cpu = rounds ? ` ${Number.isFinite(r.cpuUsPerRequest) ? Math.round(r.cpuUsPerRequest as number) : "n/a"} |` : "";
  return `| ${name} | ${Math.round(r.rps).toLocaleString("en")} | ${fmtUs(r.p50us)} | ${fmtUs(r.p99us)} | ${fmtUs(r.maxUs)} | ${r.errors} |${cpu}${rounds ? ` ${rounds.map((x) => Math.round(x.rps)).join(", ")} |` : ""}`;
}
