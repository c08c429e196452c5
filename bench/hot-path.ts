// `npx tsx bench/hot-path.ts`: the gateway's own per-request work on Node, without sockets. The real
// gateway core (createGateway: routing, identity, policy, sticky choice, retries, breaker, limits,
// metrics) handles fake node:http requests against an upstream client that answers at once, so
// what is timed is isthmus's code alone: what it adds over any Node proxy's fixed costs (the
// HTTP parser, the sockets, undici). Plain and full requests are interleaved in batches; medians.
import type { Socket } from "node:net";
import { parseConfigText } from "../src/config/declarative.ts";
import { createGateway } from "../src/gateway.ts";
import { handleDataPlane } from "../src/proxy/forward.ts";
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from "../src/proxy/upstream.ts";
import { Http1Request, type Http1Response } from "../src/runtime/http1-server.ts";
import { incomingOf } from "../src/runtime/node-data-plane.ts";
import { CachedSecrets, StaticSecrets } from "../src/secrets/secrets.ts";
import { MemoryStore } from "../src/store/memory.ts";
import { createLogger } from "../src/util/log.ts";
import { callerIdentity, FULL_HOST, isthmusConfig, PLAIN_HOST } from "./targets.ts";

const BATCH = Number(process.env.HOT_BATCH ?? 20_000);
const ROUNDS = Number(process.env.HOT_ROUNDS ?? 7);

const answered: UpstreamResponse = { status: 200, headers: ["content-type", "application/json", "content-length", "29"], connection: null, body: null };
const upstream: UpstreamClient = {
  send(req: UpstreamRequest) {
    req.events?.settled();
    return Promise.resolve({ ...answered, headers: [...answered.headers] });
  },
  async close() {},
};

const id = await callerIdentity();
const log = createLogger("error");
const gw = await createGateway(
  { store: new MemoryStore(), upstream, fetch: () => Promise.reject(new Error("no network in this bench")), secrets: new CachedSecrets(new StaticSecrets({}), { refreshMs: 3_600_000, log }), log, connection: () => ({ clientAddress: "", proto: "http", body: null }) },
  { config: parseConfigText(JSON.stringify(isthmusConfig(9, id.bundle))), checkIntervalMs: 0 },
);
await gw.tasks.applyConfig();
await gw.routing.reload();
if (gw.routing.current.routes.size === 0) throw new Error(`no routes: ${JSON.stringify(gw.routing.current.warnings)}`);

/** A request as the HTTP/1.1 server's parser leaves it, and an answer nothing is written to. */
function fake(host: string, extra: string[]): { req: Http1Request; res: Http1Response } {
  const rawHeaders = ["Host", host, "User-Agent", "wrk", ...extra];
  const req = new Http1Request("GET", "/orders/42?expand=items", rawHeaders, 1, { remoteAddress: "127.0.0.1" } as Socket, false, null as never);
  const res = {} as Http1Response;
  return { req, res };
}

const kinds = {
  plain: () => fake(PLAIN_HOST, []),
  full: () => fake(FULL_HOST, ["Authorization", `Bearer ${id.token}`, "X-Session", "user-4711"]),
};

async function batch(kind: keyof typeof kinds): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < BATCH; i++) {
    const { req, res } = kinds[kind]();
    const a = await handleDataPlane(gw.dataPlane, incomingOf(req, res));
    if (a instanceof Response) throw new Error(`${kind}: ${a.status} ${await a.text()}`);
  }
  return Number(process.hrtime.bigint() - t0) / 1000 / BATCH;
}

const times: Record<keyof typeof kinds, number[]> = { plain: [], full: [] };
for (let r = 0; r < ROUNDS + 1; r++) {
  for (const k of r % 2 ? (["full", "plain"] as const) : (["plain", "full"] as const)) {
    const us = await batch(k);
    if (r > 0) times[k].push(us); // the first round warms up (JIT, the verification cache)
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(`isthmus's own work per request (no sockets), median of ${ROUNDS} batches of ${BATCH}:`);
console.log(`| request | µs per request | batches |\n|---|---:|---|`);
for (const k of ["plain", "full"] as const) console.log(`| ${k} | ${med(times[k]).toFixed(2)} | ${times[k].map((x) => x.toFixed(2)).join(", ")} |`);
await gw.close();
process.exit(0);
