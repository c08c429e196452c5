// `npx tsx bench/ab.ts OTHER_BUNDLE`: isthmus-full built from this checkout (A) against another build
// of it (B: say an earlier commit's dist/isthmus.mjs), same configuration, same upstream and Redis,
// both on the proxy core. On a shared VM whose speed moves more between runs than one change does,
// two separate bench runs cannot tell what the change did; here the two builds meet the same machine:
// - saturated at the same time (bench/same-time.ts): the CPU each spends per request over the same
//   seconds, B's over A's (above 1: A costs less);
// - at a fixed rate, rounds interleaved A, B, B, A, ...: p99 and the share of requests over 1 ms.
// Knobs: AB_REPS (10 same-time repetitions of AB_DURATION 4 s), AB_RATE (3,000 req/s),
// AB_RATE_ROUNDS (10 per build, 2 s each). Build B with, for example:
//   git worktree add /tmp/b <commit> && ln -s "$PWD/node_modules" /tmp/b/node_modules && (cd /tmp/b && node scripts/build-node.mjs)
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { buildOpenLoop, fixedRate, hasCompiler, pooled } from "./fixed-rate.ts";
import { sameTime, summarizeSameTime, type SameTimeRep } from "./same-time.ts";
import { buildIsthmus, callerIdentity, Fleet, freePort, FULL_HOST, isthmusConfig, missingTools, type Target } from "./targets.ts";
import { wrk } from "./wrk.ts";

const num = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const REPS = num("AB_REPS", 10);
const DURATION_S = num("AB_DURATION", 4);
const RATE = num("AB_RATE", 3000);
const RATE_ROUNDS = num("AB_RATE_ROUNDS", 10);

const other = process.argv[2];
if (!other || !existsSync(other)) {
  console.error("usage: npx tsx bench/ab.ts OTHER_BUNDLE (another build's dist/isthmus.mjs)");
  process.exit(2);
}
const missing = missingTools();
if (missing.length > 0 || !hasCompiler()) {
  console.error(`missing: ${[...missing, ...(hasCompiler() ? [] : ["a C compiler (cc) for bench/openloop.c"])].join("; ")}`);
  process.exit(2);
}

buildIsthmus();
buildOpenLoop();
const fleet = await Fleet.create();
try {
  const [up, redisPort, portA, portB] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const id = await callerIdentity();
  const config = isthmusConfig(up, id.bundle);
  await fleet.upstream(up);
  await fleet.redis(redisPort);
  const env = { ISTHMUS_REDIS_URL: `redis://127.0.0.1:${redisPort}` };
  const [a, b] = await Promise.all([fleet.isthmus("a", portA, config, env), fleet.isthmus("b", portB, config, env, resolve(other))]);
  const headers = { host: FULL_HOST, authorization: `Bearer ${id.token}`, "x-session": "user-4711" };
  const A: Target = { name: "A (this checkout)", origin: `http://127.0.0.1:${portA}`, headers, pid: a.proc.pid ?? 0 };
  const B: Target = { name: `B (${other})`, origin: `http://127.0.0.1:${portB}`, headers, pid: b.proc.pid ?? 0 };
  console.log(`isthmus-full A/B, ${new Date().toISOString()}: A = this checkout, B = ${other}`);
  for (const t of [A, B]) await wrk({ url: `${t.origin}/`, connections: 50, durationS: 3, headers: t.headers });

  const reps: SameTimeRep[] = [];
  for (let i = 0; i < REPS; i++) {
    // Alternate which one is started first.
    const r = i % 2 === 0 ? await sameTime(A, B, { durationS: DURATION_S, connections: 50 }) : flip(await sameTime(B, A, { durationS: DURATION_S, connections: 50 }));
    reps.push(r);
    console.error(`  same time ${i + 1}: A ${r.a.requests} requests, ${r.a.cpuUsPerRequest?.toFixed(1)} CPU µs each; B ${r.b.requests}, ${r.b.cpuUsPerRequest?.toFixed(1)}`);
  }
  const s = summarizeSameTime(reps);
  console.log(`\nsaturated at the same time, ${REPS} x ${DURATION_S}s: B's CPU per request over A's, median ${s.cpuRatio.toFixed(3)} (${s.cpuRatios.map((x) => x.toFixed(2)).join(", ")}); A's requests over B's, median ${s.requestRatio.toFixed(3)}; errors ${s.errors}`);

  const lat = { a: [] as Float64Array[], b: [] as Float64Array[] };
  for (let round = 0; round < RATE_ROUNDS; round++) {
    for (const [k, t] of round % 2 === 0 ? ([["a", A], ["b", B]] as const) : ([["b", B], ["a", A]] as const)) {
      const r = await fixedRate({ origin: t.origin, ratePerS: RATE, durationS: 2, warmupS: round < 2 ? 2 : 0.5, connections: 64, headers: t.headers });
      lat[k].push(r.latenciesUs);
      console.error(`  rate round ${round + 1} ${k.toUpperCase()}: p99 ${(r.p99us / 1000).toFixed(2)} ms`);
    }
  }
  for (const k of ["a", "b"] as const) {
    const p = pooled(lat[k]);
    console.log(`${RATE} req/s, ${k.toUpperCase()}: p50 ${p.p50us.toFixed(0)} µs, p99 ${(p.p99us / 1000).toFixed(2)} ms, p99.9 ${(p.p999us / 1000).toFixed(2)} ms, over 1 ms ${(p.over1ms * 100).toFixed(2)}%, over 500 µs ${(p.over500us * 100).toFixed(2)}%`);
  }
} finally {
  await fleet.stop();
}

function flip(r: SameTimeRep): SameTimeRep {
  return { a: r.b, b: r.a };
}
