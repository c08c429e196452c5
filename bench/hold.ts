// `npx tsx bench/hold.ts`: starts the bench's targets (bench/targets.ts: the upstream, Redis, the
// proxies, both isthmus processes) and keeps them running, printing each target's origin, pid and
// the headers to send, so a profile or a single load run can be taken by hand. BENCH_NODE_OPTIONS is
// passed to the isthmus processes (for example "--cpu-prof --cpu-prof-dir=/tmp/prof"), and
// BENCH_NODE_ARGS goes on their command line after npm start's flags (V8 flags such as --trace-gc,
// which NODE_OPTIONS refuses); Ctrl-C stops everything (and lets --cpu-prof write its files).
import { buildIsthmus, Fleet } from "./targets.ts";

buildIsthmus();
const fleet = await Fleet.create();
const targets = await fleet.startTargets(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {});
console.log(JSON.stringify(targets, null, 2));
const stop = () => void fleet.stop().finally(() => process.exit(0));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
setInterval(() => {}, 1 << 30);
