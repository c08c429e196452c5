// `npx tsx bench/hold.ts`: starts the bench's fleet (upstream, Redis, the proxies, both isthmus
// targets) and keeps it running, printing each target's address and the headers to send, so a
// profile or a single load run can be taken by hand. BENCH_NODE_OPTIONS is passed to the isthmus
// processes (for example "--cpu-prof --cpu-prof-dir=/tmp/prof"); Ctrl-C stops everything.
import { buildIsthmus, callerIdentity, Fleet, FULL_HOST, freePort, isthmusConfig, PLAIN_HOST } from "./targets.ts";

buildIsthmus();
const fleet = await Fleet.create();
const [up, ngx, fst, floor, plain, full, redisPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
const id = await callerIdentity();
const config = isthmusConfig(up, id.bundle);
const nodeOptions: Record<string, string> = process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {};
await fleet.upstream(up);
const redis = await fleet.redis(redisPort);
const procs = await Promise.all([
  fleet.nginxProxy(ngx, up),
  fleet.fastifyProxy(fst, up),
  fleet.nodeFloor(floor, up),
  fleet.isthmus("plain", plain, config, { ...nodeOptions }),
  fleet.isthmus("full", full, config, { ...nodeOptions, ISTHMUS_REDIS_URL: `redis://127.0.0.1:${redis.port}` }),
]);
const o = (port: number) => `http://127.0.0.1:${port}/`;
console.log(
  JSON.stringify(
    {
      direct: o(up),
      nginx: o(ngx),
      fastify: o(fst),
      nodeFloor: o(floor),
      plain: { url: o(plain), host: PLAIN_HOST, pid: procs[3].proc.pid },
      full: { url: o(full), host: FULL_HOST, authorization: `Bearer ${id.token}`, "x-session": "user-4711", pid: procs[4].proc.pid },
    },
    null,
    2,
  ),
);
const stop = () => void fleet.stop().finally(() => process.exit(0));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
setInterval(() => {}, 1 << 30);
