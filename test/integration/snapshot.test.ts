// Fail static at start from the last snapshot: a gateway that cannot reach its store at start, and
// has no ISTHMUS_CONFIG, serves the routes it last knew (ISTHMUS_SNAPSHOT_FILE) until the store answers.
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterEach, expect, inject, it } from "vitest";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger } from "../../src/util/log.ts";
import { buildConfig } from "../helpers/gateway.ts";
import { freePort, uniquePrefix } from "../helpers/redis-server.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function until(what: string, cond: () => Promise<boolean> | boolean, deadlineMs: number): Promise<void> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > deadlineMs) throw new Error(`not within ${deadlineMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it("serves the last snapshot when the store is unreachable at start, and refuses writes meanwhile", async () => {
  const dir = await mkdtemp(join(tmpdir(), "isthmus-snapshot-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const snapshotPath = join(dir, "routing.json");
  const east: Upstream = await startUpstream("east");
  cleanups.push(() => east.close());
  const route = { hostnames: ["shop.test"], authorization: { unauthenticated: true as const }, rules: [{ backendRefs: [{ cluster: "east", service: "shop.svc" }] }] };

  // A gateway with a reachable store writes the snapshot.
  const first: RunningGateway = await startNodeGateway({ port: 0, hostname: "127.0.0.1", log: silentLogger, redisUrl: inject("redisUrl"), redisPrefix: uniquePrefix("snapshot"), snapshotPath, config: buildConfig({ east: east.url }, { shop: route }) });
  await until("the snapshot file is written", () => existsSync(snapshotPath), 5000);
  const saved = JSON.parse(await readFile(snapshotPath, "utf8")) as { routes: Array<{ name: string }> };
  expect(saved.routes.map((r) => r.name)).toEqual(["shop"]);
  await first.close();

  // A new gateway whose store is not there (nothing listens on the port), with no config file.
  const gw = await startNodeGateway({ port: 0, hostname: "127.0.0.1", log: silentLogger, adminToken: "t", redisUrl: `redis://127.0.0.1:${await freePort()}`, snapshotPath });
  cleanups.push(() => gw.close());
  const before = east.requests;
  for (let i = 0; i < 20; i++) {
    const res = await request(`${gw.url}/cart`, { headers: { host: "shop.test" } });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { cluster: string }).cluster).toBe("east");
  }
  expect(east.requests).toBe(before + 20);
  const ready = await request(`${gw.url}/_isthmus/readyz`);
  expect(ready.statusCode).toBe(503);
  expect(((await ready.body.json()) as { note?: string }).note).toMatch(/memory|last good/);
  const write = await request(`${gw.url}/_isthmus/v1/routes/shop`, { method: "PUT", headers: { authorization: "Bearer t", "content-type": "application/json" }, body: JSON.stringify(route) });
  expect(write.statusCode).toBe(503);
  await write.body.dump();
});

it("starts with an empty table (and says so) when the store is unreachable and the snapshot file is missing", async () => {
  const gw = await startNodeGateway({ port: 0, hostname: "127.0.0.1", log: silentLogger, redisUrl: `redis://127.0.0.1:${await freePort()}`, snapshotPath: join(tmpdir(), `isthmus-missing-${process.pid}.json`) });
  cleanups.push(() => gw.close());
  const res = await request(`${gw.url}/x`, { headers: { host: "shop.test" } });
  expect(res.statusCode).toBe(404);
  await res.body.dump();
  expect((await request(`${gw.url}/_isthmus/readyz`)).statusCode).toBe(503);
});
