// Admin API (/_isthmus/v1) end to end: real gateways (startNodeGateway) on a free port, real HTTP
// requests, the embedded store for most of it and the shared test Redis for concurrency and
// declarative config. Every "nothing was written" claim is checked against the store version.
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseConfigText } from "../../src/config/declarative.ts";
import { bucketOf } from "../../src/routing/choose.ts";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger } from "../../src/util/log.ts";
import { AdminClient, type AdminResponse, type ProblemBody } from "../helpers/admin-client.ts";
import { uniquePrefix } from "../helpers/redis-server.ts";

const TOKEN = "admin-token-0123456789abcdef";
const MIB = 1_048_576;

// ------------------------------------------------------------------ documents

const EAST = { endpoint: "https://gw.east.example:4143", trustDomain: "east.example" };
const WEST = { endpoint: "https://gw.west.example:4143", trustDomain: "west.example" };
const SERVICE = "checkout.shop.svc.cluster.local";

interface RouteDoc {
  hostnames?: string[];
  rules: Array<Record<string, unknown>>;
  [k: string]: unknown;
}

/** A valid route over clusters east and west; the weights tell revisions apart. */
function routeDoc(eastWeight = 90, westWeight = 10, hostname = "checkout.shop"): RouteDoc {
  return {
    hostnames: [hostname],
    rules: [
      {
        name: "default",
        matches: [{ path: { type: "PathPrefix", value: "/" } }],
        backendRefs: [
          { cluster: "east", service: SERVICE, port: 8080, weight: eastWeight },
          { cluster: "west", service: SERVICE, port: 8080, weight: westWeight },
        ],
        timeouts: { request: "2s", backendRequest: "800ms" },
      },
    ],
  };
}

/** The route document with one field of rules[0] (or of rules[0].backendRefs[0]) replaced. */
function withRule(patch: Record<string, unknown>): RouteDoc {
  const doc = routeDoc();
  doc.rules[0] = { ...doc.rules[0], ...patch };
  return doc;
}
function withBackend(patch: Record<string, unknown>): RouteDoc {
  const doc = routeDoc();
  const refs = doc.rules[0]?.backendRefs as Array<Record<string, unknown>>;
  refs[0] = { ...refs[0], ...patch };
  return doc;
}
function withMatch(match: Record<string, unknown>): RouteDoc {
  return withRule({ matches: [match] });
}

/** Strips the read-only fields of a route/cluster representation, leaving the spec. */
function specOf(body: unknown): Record<string, unknown> {
  const copy = { ...(body as Record<string, unknown>) };
  delete copy.name;
  delete copy.revision;
  delete copy.updatedAt;
  return copy;
}

// ------------------------------------------------------------------ assertions

function expectProblem(res: AdminResponse, status: number): ProblemBody {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type") ?? "").toMatch(/^application\/problem\+json/);
  const body = res.body as ProblemBody;
  expect(body).toBeTypeOf("object");
  expect(body.status).toBe(status);
  expect(body.title).toBeTypeOf("string");
  return body;
}

/** A 400 whose `errors` each carry a non-empty path and message; `path` (if given) is among them. */
function expectValidation(res: AdminResponse, path?: string | RegExp): ProblemBody {
  const body = expectProblem(res, 400);
  expect(Array.isArray(body.errors), res.text).toBe(true);
  const errors = body.errors ?? [];
  expect(errors.length).toBeGreaterThan(0);
  for (const e of errors) {
    expect(e.path).toBeTypeOf("string");
    expect(e.path.length).toBeGreaterThan(0);
    expect(e.message).toBeTypeOf("string");
    expect(e.message.length).toBeGreaterThan(0);
  }
  if (path !== undefined) {
    const paths = errors.map((e) => e.path);
    if (typeof path === "string") expect(paths, res.text).toContain(path);
    else expect(paths.some((p) => path.test(p)), res.text).toBe(true);
  }
  return body;
}

function expectUnauthorized(res: AdminResponse): ProblemBody {
  const body = expectProblem(res, 401);
  expect(res.headers.get("www-authenticate") ?? "").toMatch(/^Bearer( |$)/);
  return body;
}

// ------------------------------------------------------------------ helpers

/** A request body stream of `total` bytes in 64 KiB chunks, sent chunked (no Content-Length). */
function chunkedBody(total: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(65_536).fill(0x20); // spaces: still "JSON-ish" whitespace
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(chunk.byteLength, total - sent);
      controller.enqueue(chunk.slice(0, n));
      sent += n;
    },
  });
}

/** A JSON document of more than 1 MiB (a route with one huge unknown field). */
function oversizedJson(): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ ...routeDoc(), padding: "x".repeat(MIB + 16) }));
}

/** A raw HTTP request that keeps its request-target exactly as given (fetch would normalise it). */
function rawRequest(url: string, method: string, target: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method, path: target, headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One keep-alive connection driven by hand: `send` writes bytes (resolving once they are handed to
 * the kernel, or once the connection is gone), `next` resolves with the next complete response
 * (Content-Length framed, as every gateway answer here is), or null once the server has closed the
 * connection without one; `closed` resolves when the connection is closed (by the server, as long as
 * `close` was not called).
 */
async function rawConnection(url: string) {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let buf = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | null = null;
  const closedEvent = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  socket.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    poke();
  });
  socket.on("close", () => {
    closed = true;
    poke();
  });
  socket.on("error", () => undefined);

  const parse = (): RawResponse | null => {
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const [statusLine, ...lines] = buf.subarray(0, end).toString("latin1").split("\r\n");
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    if (buf.length < end + 4 + length) return null;
    const body = buf.subarray(end + 4, end + 4 + length).toString("utf8");
    buf = buf.subarray(end + 4 + length);
    return { status: Number(statusLine?.split(" ")[1]), headers, body };
  };

  return {
    send: (data: string | Buffer) =>
      new Promise<void>((resolve) => {
        if (closed || socket.write(data)) return resolve();
        // A server that stops reading and closes would otherwise leave us waiting for "drain" forever.
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          resolve();
        };
        socket.once("drain", done);
        socket.once("close", done);
      }),
    closed: closedEvent,
    async next(): Promise<RawResponse | null> {
      for (;;) {
        const res = parse();
        if (res) return res;
        if (closed) return null;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    close: () => socket.destroy(),
  };
}

async function startGateway(extra: Parameters<typeof startNodeGateway>[0] = {}): Promise<RunningGateway> {
  return startNodeGateway({ port: 0, hostname: "127.0.0.1", adminToken: TOKEN, log: silentLogger, ...extra });
}

// ================================================================== embedded store

describe("admin API on the embedded store", () => {
  let gw: RunningGateway;
  let api: AdminClient;
  const version = () => gw.store.version();
  /** Makes the live routing table catch up with the store (explain and readyz read it). */
  const syncTable = () => gw.routing.reload();

  beforeAll(async () => {
    gw = await startGateway();
    api = new AdminClient(gw.url, TOKEN);
    expect((await api.put("/clusters/east", EAST)).status).toBe(201);
    expect((await api.put("/clusters/west", WEST)).status).toBe(201);
  });
  afterAll(async () => {
    await gw?.close();
  });

  // ---------------------------------------------------------------- authentication

  describe("authentication", () => {
    const basic = Buffer.from(`admin:${TOKEN}`).toString("base64");
    const cases: Array<[string, string | null]> = [
      ["missing Authorization header", null],
      ["wrong token", "Bearer not-the-admin-token"],
      ["lowercase `bearer` scheme", `bearer ${TOKEN}`],
      ["uppercase `BEARER` scheme", `BEARER ${TOKEN}`],
      ["Basic scheme carrying the token as password", `Basic ${basic}`],
      ["Basic scheme carrying the bare token", `Basic ${TOKEN}`],
      ["token with trailing junk after a space", `Bearer ${TOKEN} junk`],
      ["token with trailing junk glued on", `Bearer ${TOKEN}x`],
      ["token prefix (one character short)", `Bearer ${TOKEN.slice(0, -1)}`],
      ["two spaces after the scheme", `Bearer  ${TOKEN}`],
      ["empty token", "Bearer "],
      ["scheme only", "Bearer"],
      ["token without a scheme", TOKEN],
    ];

    it.each(cases)("%s -> 401 problem with WWW-Authenticate, nothing written", async (_label, authorization) => {
      await api.put("/clusters/auth-keep", { endpoint: "https://gw.keep.example", trustDomain: "keep.example" });
      await api.put("/routes/auth-keep", routeDoc(1, 1, "keep.example"));
      const before = await version();
      const headers: Record<string, string> = authorization === null ? {} : { authorization };
      const as = { token: null, headers };

      const attempts = await Promise.all([
        api.get("/routes", as),
        api.get("/clusters/auth-keep", as),
        api.put("/routes/auth-probe", routeDoc(), as),
        api.put("/routes/auth-keep", routeDoc(5, 5, "keep.example"), as),
        api.put("/clusters/auth-probe", { endpoint: "https://gw.probe.example", trustDomain: "probe.example" }, as),
        api.delete("/clusters/auth-keep", as),
        api.delete("/routes/auth-keep", as),
        api.post("/routes/auth-keep/rollback", { toRevision: 1 }, as),
        api.get("/explain?host=keep.example", as),
      ]);
      for (const res of attempts) {
        const body = expectUnauthorized(res);
        // The refusal never echoes the token back.
        expect(res.text).not.toContain(TOKEN);
        expect(body.detail).toBeTypeOf("string");
      }

      expect(await version()).toBe(before);
      expect((await api.get("/routes/auth-probe")).status).toBe(404);
      expect((await api.get("/clusters/auth-probe")).status).toBe(404);
      expect((await api.get("/clusters/auth-keep")).status).toBe(200);
      const kept = await api.get<{ revision: number }>("/routes/auth-keep");
      expect(kept.status).toBe(200);
      expect(kept.body.revision).toBe(1);
      expect(specOf(kept.body)).toMatchObject({ hostnames: ["keep.example"] });
    });

    it("the right token is accepted (control)", async () => {
      const res = await api.get("/routes");
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("no-store");
    });

    it("with no admin token configured, every admin call is refused with 401 and nothing is written", async () => {
      for (const adminToken of [undefined, ""]) {
        const locked = await startGateway({ adminToken });
        try {
          const before = await locked.store.version();
          for (const guess of [TOKEN, "undefined", "null", ""]) {
            const client = new AdminClient(locked.url, guess === "" ? null : guess);
            const results = await Promise.all([
              client.get("/routes"),
              client.put("/clusters/east", EAST),
              client.put("/routes/shop", routeDoc()),
              client.get("/explain?host=checkout.shop"),
            ]);
            for (const res of results) {
              const body = expectUnauthorized(res);
              expect(body.detail).toContain("ISTHMUS_ADMIN_TOKEN");
            }
          }
          expect(await locked.store.version()).toBe(before);
          expect(await locked.store.listClusters()).toEqual([]);
          expect(await locked.store.listRoutes()).toEqual([]);
          // Health stays open.
          expect((await new AdminClient(locked.url, null).raw("GET", "/_isthmus/healthz")).status).toBe(200);
        } finally {
          await locked.close();
        }
      }
    });
  });

  // ---------------------------------------------------------------- clusters

  describe("clusters CRUD", () => {
    const NORTH = { endpoint: "https://gw.north.example:4143", trustDomain: "north.example" };

    it("PUT creates (201) then replaces (200); GET one and list; GET-then-PUT-back works", async () => {
      const created = await api.put<Record<string, unknown>>("/clusters/north", NORTH);
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ name: "north", ...NORTH });
      expect(created.body.updatedAt).toBeTypeOf("string");

      const replaced = await api.put<Record<string, unknown>>("/clusters/north", { ...NORTH, endpoint: "https://gw2.north.example" });
      expect(replaced.status).toBe(200);
      expect(replaced.body).toMatchObject({ name: "north", endpoint: "https://gw2.north.example", trustDomain: "north.example" });

      const one = await api.get<Record<string, unknown>>("/clusters/north");
      expect(one.status).toBe(200);
      // status.health is live probe state (it moves between reads); the rest is the stored cluster.
      expect(withoutStatus(one.body)).toEqual(withoutStatus(replaced.body));
      expect(one.body.status).toMatchObject({ health: { url: "https://gw2.north.example/ready" } });

      const list = await api.get<{ items: Array<{ name: string }> }>("/clusters");
      expect(list.status).toBe(200);
      expect(list.body.items.map((c) => c.name)).toEqual(expect.arrayContaining(["east", "west", "north"]));

      // What GET answers can be PUT back as is (name and updatedAt are read-only): no change.
      const before = await version();
      const back = await api.put("/clusters/north", one.body);
      expect(back.status).toBe(200);
      // A probe may land between the two reads: its live status is not what was written.
      expect(withoutStatus(back.body as Record<string, unknown>)).toEqual(withoutStatus(one.body));
      expect(await version()).toBe(before);

      // ... but not under another name.
      expectValidation(await api.put("/clusters/south", one.body), "name");
      expect((await api.get("/clusters/south")).status).toBe(404);
    });

    it("two clusters with the same trust domain -> 409, the second is not created", async () => {
      await api.put("/clusters/td-one", { endpoint: "https://one.example", trustDomain: "shared.example" });
      const before = await version();
      const clash = await api.put("/clusters/td-two", { endpoint: "https://two.example", trustDomain: "shared.example" });
      const body = expectProblem(clash, 409);
      expect(body.detail).toContain("td-one");
      expect(body.errors?.map((e) => e.path)).toContain("trustDomain");
      expect(await version()).toBe(before);
      expect((await api.get("/clusters/td-two")).status).toBe(404);
      // Re-PUT of the owner of the trust domain is not a clash with itself.
      expect((await api.put("/clusters/td-one", { endpoint: "https://one-b.example", trustDomain: "shared.example" })).status).toBe(200);
    });

    it("DELETE of a cluster a route uses -> 409; DELETE -> 204, then 404; GET of a missing cluster -> 404 problem", async () => {
      await api.put("/clusters/doomed", { endpoint: "https://doomed.example", trustDomain: "doomed.example" });
      const doc = routeDoc();
      (doc.rules[0]?.backendRefs as Array<Record<string, unknown>>).push({ cluster: "doomed", service: SERVICE, weight: 1 });
      expect((await api.put("/routes/uses-doomed", doc)).status).toBe(201);

      const before = await version();
      const conflict = expectProblem(await api.delete("/clusters/doomed"), 409);
      expect(conflict.detail).toContain("uses-doomed");
      expect(await version()).toBe(before);
      expect((await api.get("/clusters/doomed")).status).toBe(200);

      expect((await api.delete("/routes/uses-doomed")).status).toBe(204);
      const deleted = await api.delete("/clusters/doomed");
      expect(deleted.status).toBe(204);
      expect(deleted.text).toBe("");
      expectProblem(await api.get("/clusters/doomed"), 404);
      expectProblem(await api.delete("/clusters/doomed"), 404);
      const missing = expectProblem(await api.get("/clusters/never-was"), 404);
      expect(missing.detail).toContain("never-was");
    });
  });

  // ---------------------------------------------------------------- routes

  describe("routes CRUD with ETag / If-Match", () => {
    it("create, replace, no-op replace, conditional writes, delete, re-create", async () => {
      const created = await api.put<Record<string, unknown>>("/routes/crud", routeDoc(90, 10));
      expect(created.status).toBe(201);
      expect(created.headers.get("etag")).toBe('"1"');
      expect(created.body).toMatchObject({ name: "crud", revision: 1, hostnames: ["checkout.shop"] });
      expect(created.body.updatedAt).toBeTypeOf("string");

      const got = await api.get<Record<string, unknown>>("/routes/crud");
      expect(got.status).toBe(200);
      expect(got.headers.get("etag")).toBe('"1"');
      expect(got.body).toEqual(created.body);

      const second = await api.put("/routes/crud", routeDoc(80, 20));
      expect(second.status).toBe(200);
      expect(second.headers.get("etag")).toBe('"2"');
      expect(second.body).toMatchObject({ revision: 2 });

      // The same document again: 200, no new revision, nothing written.
      let before = await version();
      const same = await api.put("/routes/crud", routeDoc(80, 20));
      expect(same.status).toBe(200);
      expect(same.headers.get("etag")).toBe('"2"');
      expect(same.body).toMatchObject({ revision: 2 });
      expect(await version()).toBe(before);

      // Stale If-Match: 412 with the current revision, nothing written.
      const stale = await api.put("/routes/crud", routeDoc(70, 30), { headers: { "if-match": '"1"' } });
      const p = expectProblem(stale, 412);
      expect(p.currentRevision).toBe(2);
      expect(stale.headers.get("etag")).toBe('"2"');
      expect(await version()).toBe(before);
      const still = await api.get("/routes/crud");
      expect(still.body).toMatchObject({ revision: 2 });
      expect(specOf(still.body)).toEqual(specOf(second.body));

      // Current If-Match: written.
      const fresh = await api.put("/routes/crud", routeDoc(70, 30), { headers: { "if-match": '"2"' } });
      expect(fresh.status).toBe(200);
      expect(fresh.headers.get("etag")).toBe('"3"');

      // If-Match: * on an existing route is fine, If-None-Match: * (create only) is not.
      before = await version();
      expectProblem(await api.put("/routes/crud", routeDoc(60, 40), { headers: { "if-none-match": "*" } }), 412);
      expect(await version()).toBe(before);
      expect((await api.put("/routes/crud", routeDoc(70, 30), { headers: { "if-match": "*" } })).status).toBe(200);

      // Malformed preconditions: 400 at headers.if-match, nothing written.
      for (const bad of ['W/"3"', '"abc"', "3", '"3", "4"', '"0"', '"-1"', '"3']) {
        expectValidation(await api.put("/routes/crud", routeDoc(60, 40), { headers: { "if-match": bad } }), "headers.if-match");
        expectValidation(await api.delete("/routes/crud", { headers: { "if-match": bad } }), "headers.if-match");
      }
      expect(await version()).toBe(before);

      // DELETE with a stale If-Match: 412, still there.
      const staleDelete = expectProblem(await api.delete("/routes/crud", { headers: { "if-match": '"2"' } }), 412);
      expect(staleDelete.currentRevision).toBe(3);
      expect((await api.get("/routes/crud")).status).toBe(200);
      expect(await version()).toBe(before);

      // DELETE with the current revision: 204, then GET 404, DELETE 404; history is kept.
      const del = await api.delete("/routes/crud", { headers: { "if-match": '"3"' } });
      expect(del.status).toBe(204);
      expectProblem(await api.get("/routes/crud"), 404);
      expectProblem(await api.delete("/routes/crud"), 404);
      const list = await api.get<{ items: Array<{ name: string }> }>("/routes");
      expect(list.body.items.map((r) => r.name)).not.toContain("crud");
      const history = await api.get<{ name: string; items: Array<{ revision: number; action: string }> }>("/routes/crud/revisions");
      expect(history.status).toBe(200);
      expect(history.body.items.map((r) => [r.revision, r.action])).toEqual([
        [4, "delete"],
        [3, "update"],
        [2, "update"],
        [1, "create"],
      ]);

      // If-Match on a deleted route: the route does not exist, so it cannot match.
      const gone = expectProblem(await api.put("/routes/crud", routeDoc(), { headers: { "if-match": '"3"' } }), 412);
      expect(gone.currentRevision).toBe(0);

      // Re-create continues the numbering: revisions are never reused.
      const again = await api.put("/routes/crud", routeDoc(90, 10), { headers: { "if-none-match": "*" } });
      expect(again.status).toBe(201);
      expect(again.headers.get("etag")).toBe('"5"');
      expect(again.body).toMatchObject({ revision: 5 });
      expect((await api.get<{ items: Array<{ name: string }> }>("/routes")).body.items.map((r) => r.name)).toContain("crud");
    });

    it("GET-then-PUT-back of the representation works; a body name unlike the URL -> 400 at `name`", async () => {
      await api.put("/routes/roundtrip", routeDoc(3, 1));
      const got = await api.get<Record<string, unknown>>("/routes/roundtrip");
      expect(got.body).toMatchObject({ name: "roundtrip", revision: 1 });

      const before = await version();
      const back = await api.put("/routes/roundtrip", got.body, { headers: { "if-match": got.headers.get("etag") ?? "" } });
      expect(back.status).toBe(200);
      expect(back.body).toEqual(got.body);
      expect(await version()).toBe(before);

      const edited = { ...got.body, hostnames: ["edited.shop"] };
      const changed = await api.put("/routes/roundtrip", edited, { headers: { "if-match": '"1"' } });
      expect(changed.status).toBe(200);
      expect(changed.body).toMatchObject({ name: "roundtrip", revision: 2, hostnames: ["edited.shop"] });

      const renamed = await api.put("/routes/roundtrip", { ...edited, name: "other" });
      expectValidation(renamed, "name");
      expect((await api.get("/routes/roundtrip")).body).toMatchObject({ revision: 2 });
      expect((await api.get("/routes/other")).status).toBe(404);
    });

    it("If-Match: * on a missing route and If-None-Match: * on a new one", async () => {
      const before = await version();
      const missing = expectProblem(await api.put("/routes/cond-new", routeDoc(), { headers: { "if-match": "*" } }), 412);
      expect(missing.currentRevision).toBe(0);
      expect(await version()).toBe(before);
      expect((await api.put("/routes/cond-new", routeDoc(), { headers: { "if-none-match": "*" } })).status).toBe(201);
    });

    it("GET of a missing route -> 404 problem", async () => {
      const res = expectProblem(await api.get("/routes/nowhere"), 404);
      expect(res.detail).toContain("nowhere");
      expectProblem(await api.get("/routes/nowhere/revisions"), 404);
    });
  });

  // ---------------------------------------------------------------- revisions and rollback

  describe("revisions and rollback", () => {
    it("lists newest first; rollback writes a new revision equal to the old one", async () => {
      await api.put("/routes/rb", routeDoc(90, 10));
      await api.put("/routes/rb", routeDoc(50, 50));
      await api.put("/routes/rb", routeDoc(50, 50, "other.shop"));

      type Rev = { revision: number; action: string; at: string; actor: string; spec?: Record<string, unknown>; restoredFrom?: number };
      const history = await api.get<{ name: string; items: Rev[] }>("/routes/rb/revisions");
      expect(history.status).toBe(200);
      expect(history.body.name).toBe("rb");
      expect(history.body.items.map((r) => [r.revision, r.action])).toEqual([
        [3, "update"],
        [2, "update"],
        [1, "create"],
      ]);
      for (const r of history.body.items) {
        expect(r.at).toBeTypeOf("string");
        expect(r.actor).toBeTypeOf("string");
        expect(r.spec).toBeTypeOf("object");
      }
      const rev1 = history.body.items[2]?.spec;

      const rolled = await api.post<Record<string, unknown>>("/routes/rb/rollback", { toRevision: 1 });
      expect(rolled.status).toBe(200);
      expect(rolled.headers.get("etag")).toBe('"4"');
      expect(rolled.body).toMatchObject({ name: "rb", revision: 4 });
      expect(specOf(rolled.body)).toEqual(rev1);

      const after = await api.get<{ items: Rev[] }>("/routes/rb/revisions");
      const newest = after.body.items[0];
      expect(newest).toMatchObject({ revision: 4, action: "rollback", restoredFrom: 1 });
      expect(newest?.spec).toEqual(rev1);
      expect(after.body.items.map((r) => r.revision)).toEqual([4, 3, 2, 1]);
      expect(specOf((await api.get("/routes/rb")).body)).toEqual(rev1);

      // Rollback honours If-Match too.
      const before = await version();
      expectProblem(await api.post("/routes/rb/rollback", { toRevision: 2 }, { headers: { "if-match": '"3"' } }), 412);
      expect(await version()).toBe(before);
      expect((await api.post("/routes/rb/rollback", { toRevision: 2 }, { headers: { "if-match": '"4"' } })).status).toBe(200);
    });

    it("rollback to a missing revision -> 404; to a delete revision -> 400; bad bodies -> 400 with paths", async () => {
      await api.put("/routes/rb2", routeDoc(90, 10));
      await api.put("/routes/rb2", routeDoc(10, 90));
      expect((await api.delete("/routes/rb2")).status).toBe(204); // revision 3: delete
      const before = await version();

      expectProblem(await api.post("/routes/rb2/rollback", { toRevision: 99 }), 404);
      expectProblem(await api.post("/routes/never-existed/rollback", { toRevision: 1 }), 404);
      expectValidation(await api.post("/routes/rb2/rollback", { toRevision: 3 }), "toRevision");

      const bad: Array<[unknown, string | RegExp]> = [
        [{}, "toRevision"],
        [{ toRevision: 0 }, "toRevision"],
        [{ toRevision: -1 }, "toRevision"],
        [{ toRevision: "1" }, "toRevision"],
        [{ toRevision: 1.5 }, "toRevision"],
        [{ toRevision: null }, "toRevision"],
        [{ toRevision: 1, extra: true }, "extra"],
        [[1], "body"],
        ["1", "body"], // a JSON string as the whole body
      ];
      for (const [body, path] of bad) {
        const res = await api.post("/routes/rb2/rollback", JSON.stringify(body), { headers: { "content-type": "application/json" } });
        expectValidation(res, path);
      }
      expectValidation(await api.post("/routes/rb2/rollback", "", { headers: { "content-type": "application/json" } }), "body");
      expectValidation(await api.post("/routes/rb2/rollback", '{"toRevision": 1}', { headers: { "content-type": "text/plain" } }), "headers.content-type");
      expect(await version()).toBe(before);
      expectProblem(await api.get("/routes/rb2"), 404);

      // Rolling back a deleted route brings it back as a new revision.
      const revived = await api.post<Record<string, unknown>>("/routes/rb2/rollback", { toRevision: 1 });
      expect([200, 201]).toContain(revived.status);
      expect(revived.body).toMatchObject({ name: "rb2", revision: 4 });
      const history = await api.get<{ items: Array<{ revision: number; action: string; restoredFrom?: number }> }>("/routes/rb2/revisions");
      expect(history.body.items[0]).toMatchObject({ revision: 4, action: "rollback", restoredFrom: 1 });
    });
  });

  // ---------------------------------------------------------------- invalid payloads

  describe("invalid admin payloads: 400 problem+json with paths, nothing written", () => {
    interface Case {
      name: string;
      target: "route" | "cluster";
      /** URL name; defaults to the guarded resource. */
      urlName?: string;
      body?: unknown;
      headers?: Record<string, string>;
      path: string | RegExp;
      /** The message at `path`, where the wording matters to the user. */
      message?: string;
      /** An oversized body: the rest is never read, so the answer says `Connection: close`. */
      closes?: true;
    }
    const json = { "content-type": "application/json" };
    const cases: Case[] = [
      // ---- wrong types and ranges (route)
      { name: "hostnames is a string", target: "route", body: { ...routeDoc(), hostnames: "checkout.shop" }, path: "hostnames" },
      { name: "rules missing", target: "route", body: { hostnames: ["checkout.shop"] }, path: "rules" },
      { name: "rules empty", target: "route", body: { ...routeDoc(), rules: [] }, path: "rules" },
      { name: "rules is an object", target: "route", body: { ...routeDoc(), rules: {} }, path: "rules" },
      { name: "backendRefs is an object", target: "route", body: withRule({ backendRefs: {} }), path: "rules[0].backendRefs" },
      { name: "empty backendRefs", target: "route", body: withRule({ backendRefs: [] }), path: "rules[0].backendRefs" },
      { name: "negative weight", target: "route", body: withBackend({ weight: -1 }), path: "rules[0].backendRefs[0].weight" },
      { name: "weight 1001", target: "route", body: withBackend({ weight: 1001 }), path: "rules[0].backendRefs[0].weight" },
      { name: "huge weight", target: "route", body: withBackend({ weight: 1e21 }), path: "rules[0].backendRefs[0].weight" },
      { name: "non-integer weight", target: "route", body: withBackend({ weight: 2.5 }), path: "rules[0].backendRefs[0].weight" },
      { name: "weight as a string", target: "route", body: withBackend({ weight: "10" }), path: "rules[0].backendRefs[0].weight" },
      { name: "port 0", target: "route", body: withBackend({ port: 0 }), path: "rules[0].backendRefs[0].port" },
      { name: "port as a string", target: "route", body: withBackend({ port: "8080" }), path: "rules[0].backendRefs[0].port" },
      { name: "service not a DNS name", target: "route", body: withBackend({ service: "Checkout_Shop" }), path: "rules[0].backendRefs[0].service" },
      { name: "unknown cluster", target: "route", body: withBackend({ cluster: "north-pole" }), path: "rules[0].backendRefs[0].cluster" },
      { name: "bad duration 2x", target: "route", body: withRule({ timeouts: { request: "2x" } }), path: "rules[0].timeouts.request" },
      { name: "fractional duration 1.5s", target: "route", body: withRule({ timeouts: { request: "1.5s" } }), path: "rules[0].timeouts.request" },
      { name: "negative duration", target: "route", body: withRule({ timeouts: { request: "-1s" } }), path: "rules[0].timeouts.request" },
      { name: "duration over an hour", target: "route", body: withRule({ timeouts: { request: "2h" } }), path: "rules[0].timeouts.request" },
      { name: "duration as a number", target: "route", body: withRule({ timeouts: { request: 2000 } }), path: "rules[0].timeouts.request" },
      { name: "backendRequest longer than request", target: "route", body: withRule({ timeouts: { request: "1s", backendRequest: "2s" } }), path: "rules[0].timeouts.backendRequest" },
      { name: "retry attempts 11", target: "route", body: withRule({ retry: { attempts: 11 } }), path: "rules[0].retry.attempts" },
      { name: "path match without leading slash", target: "route", body: withMatch({ path: { type: "PathPrefix", value: "api" } }), path: "rules[0].matches[0].path.value" },
      { name: "path match with dot segments", target: "route", body: withMatch({ path: { type: "PathPrefix", value: "/a/../b" } }), path: "rules[0].matches[0].path.value" },
      { name: "path match type RegularExpression", target: "route", body: withMatch({ path: { type: "RegularExpression", value: "/a.*" } }), path: "rules[0].matches[0].path.type" },
      { name: "lowercase method", target: "route", body: withMatch({ method: "get" }), path: "rules[0].matches[0].method" },
      { name: "bad identity", target: "route", body: { ...routeDoc(), authorization: { identities: ["east.example/ns/shop"] } }, path: "authorization.identities[0]" },
      { name: "unknown top-level field", target: "route", body: { ...routeDoc(), colour: "blue" }, path: "colour", message: 'unknown field "colour"' },
      { name: "misspelt backend field", target: "route", body: withBackend({ wieght: 5 }), path: "rules[0].backendRefs[0].wieght", message: 'unknown field "wieght"' },
      { name: "unknown field in a path match", target: "route", body: withMatch({ path: { type: "PathPrefix", value: "/", caseInsensitive: true } }), path: "rules[0].matches[0].path.caseInsensitive", message: 'unknown field "caseInsensitive"' },
      { name: "body name differs from the URL", target: "route", body: { ...routeDoc(), name: "someone-else" }, path: "name" },
      { name: "__proto__ key in the body", target: "route", body: `{"__proto__": {"hostnames": ["evil.shop"]}, ${JSON.stringify(routeDoc()).slice(1)}`, headers: json, path: "__proto__", message: 'unknown field "__proto__"' },
      { name: "revision field of the wrong type is ignored, but a bad spec is not", target: "route", body: { ...routeDoc(), revision: "x", rules: "none" }, path: "rules" },
      // ---- the body itself
      { name: "oversized body with a truthful Content-Length", target: "route", body: oversizedJson(), headers: json, path: "body", closes: true },
      { name: "oversized chunked body without Content-Length", target: "route", body: chunkedBody(MIB + 65_536), headers: json, path: "body", closes: true },
      { name: "malformed JSON", target: "route", body: '{"hostnames": ["checkout.shop"], "rules": [', headers: json, path: "body" },
      { name: "trailing garbage after JSON", target: "route", body: `${JSON.stringify(routeDoc())} x`, headers: json, path: "body" },
      { name: "empty body", target: "route", body: "", headers: json, path: "body" },
      { name: "no body at all", target: "route", headers: json, path: "body" },
      { name: "whitespace-only body", target: "route", body: " \n\t ", headers: json, path: "body" },
      { name: "JSON array body", target: "route", body: "[]", headers: json, path: "body" },
      { name: "JSON string body", target: "route", body: '"checkout"', headers: json, path: "body" },
      { name: "JSON null body", target: "route", body: "null", headers: json, path: "body" },
      { name: "JSON number body", target: "route", body: "42", headers: json, path: "body" },
      { name: "content-type text/plain", target: "route", body: JSON.stringify(routeDoc()), headers: { "content-type": "text/plain" }, path: "headers.content-type" },
      { name: "no content-type", target: "route", body: new TextEncoder().encode(JSON.stringify(routeDoc())), path: "headers.content-type" },
      { name: "content-type form-urlencoded", target: "route", body: "hostnames=checkout.shop", headers: { "content-type": "application/x-www-form-urlencoded" }, path: "headers.content-type" },
      { name: "charset latin1", target: "route", body: JSON.stringify(routeDoc()), headers: { "content-type": "application/json; charset=iso-8859-1" }, path: "headers.content-type" },
      { name: "non-UTF-8 bytes", target: "route", body: Uint8Array.from([0x7b, 0x22, 0x61, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), headers: json, path: "body" },
      // ---- URL and headers
      { name: "uppercase route name", target: "route", urlName: "Checkout", body: routeDoc(), path: "name" },
      { name: "route name of 64 characters", target: "route", urlName: "a".repeat(64), body: routeDoc(), path: "name" },
      { name: "route name with dots", target: "route", urlName: "checkout.v2", body: routeDoc(), path: "name" },
      { name: "route name with an underscore", target: "route", urlName: "check_out", body: routeDoc(), path: "name" },
      { name: "route name ending in a dash", target: "route", urlName: "checkout-", body: routeDoc(), path: "name" },
      { name: "weak If-Match", target: "route", body: routeDoc(1, 1), headers: { "if-match": 'W/"2"' }, path: "headers.if-match" },
      { name: "non-numeric If-Match", target: "route", body: routeDoc(1, 1), headers: { "if-match": '"abc"' }, path: "headers.if-match" },
      { name: "unquoted If-Match", target: "route", body: routeDoc(1, 1), headers: { "if-match": "2" }, path: "headers.if-match" },
      { name: "If-None-Match with a tag", target: "route", body: routeDoc(1, 1), headers: { "if-none-match": '"2"' }, path: "headers.if-none-match" },
      // ---- clusters
      { name: "cluster endpoint not a URL", target: "cluster", body: { ...EAST, endpoint: "gw.east.example" }, path: "endpoint" },
      { name: "cluster endpoint ftp", target: "cluster", body: { ...EAST, endpoint: "ftp://gw.east.example" }, path: "endpoint" },
      { name: "cluster endpoint with credentials", target: "cluster", body: { ...EAST, endpoint: "https://u:p@gw.east.example" }, path: "endpoint" },
      { name: "cluster endpoint link-local (metadata service)", target: "cluster", body: { ...EAST, endpoint: "http://169.254.169.254" }, path: "endpoint" },
      { name: "cluster endpoint missing", target: "cluster", body: { trustDomain: "east.example" }, path: "endpoint" },
      { name: "cluster trustDomain uppercase", target: "cluster", body: { ...EAST, trustDomain: "East.Example" }, path: "trustDomain" },
      { name: "cluster trustDomain a number", target: "cluster", body: { ...EAST, trustDomain: 42 }, path: "trustDomain" },
      { name: "cluster bundle with jwks and url", target: "cluster", body: { ...EAST, bundle: { jwks: { keys: [] }, url: "https://east.example/jwks" } }, path: "bundle" },
      { name: "cluster health interval bad duration", target: "cluster", body: { ...EAST, health: { interval: "soon" } }, path: "health.interval" },
      { name: "cluster unknown field", target: "cluster", body: { ...EAST, region: "eu" }, path: "region", message: 'unknown field "region"' },
      { name: "cluster unknown field in health", target: "cluster", body: { ...EAST, health: { port: 9090 } }, path: "health.port", message: 'unknown field "port"' },
      { name: "cluster body name differs", target: "cluster", body: { ...EAST, name: "west" }, path: "name" },
      { name: "cluster name uppercase in URL", target: "cluster", urlName: "East", body: EAST, path: "name" },
      { name: "cluster oversized body", target: "cluster", body: new TextEncoder().encode(JSON.stringify({ ...EAST, pad: "x".repeat(MIB) })), headers: json, path: "body", closes: true },
      { name: "cluster chunked oversized body", target: "cluster", body: chunkedBody(2 * MIB), headers: json, path: "body", closes: true },
      { name: "cluster content-type text/plain", target: "cluster", body: JSON.stringify(EAST), headers: { "content-type": "text/plain" }, path: "headers.content-type" },
      { name: "cluster JSON array body", target: "cluster", body: "[]", headers: json, path: "body" },
    ];

    let guardedRoute: AdminResponse<Record<string, unknown>>;
    let guardedCluster: AdminResponse<Record<string, unknown>>;
    let startVersion: number;

    beforeAll(async () => {
      await api.put("/routes/guarded", routeDoc(90, 10));
      await api.put("/routes/guarded", routeDoc(80, 20));
      guardedRoute = await api.get("/routes/guarded");
      guardedCluster = await api.get("/clusters/east");
      expect(guardedRoute.body).toMatchObject({ revision: 2 });
      startVersion = await version();
    });

    it("has at least 30 cases", () => {
      expect(cases.length).toBeGreaterThanOrEqual(30);
    });

    it.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
      const before = await version();
      const name = c.urlName ?? (c.target === "route" ? "guarded" : "east");
      // A streamed upload gets a connection of its own: after an oversized body the gateway closes
      // the connection (see "connection reuse" below), which must not race an unrelated case.
      const dispatcher = c.body instanceof ReadableStream ? new Agent() : undefined;
      try {
        const res = await api.request("PUT", `/${c.target === "route" ? "routes" : "clusters"}/${name}`, { body: c.body, headers: c.headers, dispatcher });
        const problem = expectValidation(res, c.path);
        if (c.message !== undefined) expect(problem.errors?.find((e) => e.path === c.path)?.message, res.text).toBe(c.message);
        expect(res.headers.get("connection")?.toLowerCase() === "close").toBe(c.closes === true);
      } finally {
        await dispatcher?.destroy();
      }
      expect(await version()).toBe(before);
    });

    it("after the whole table: nothing was written", async () => {
      expect(await version()).toBe(startVersion);
      const route = await api.get("/routes/guarded");
      expect(route.status).toBe(200);
      expect(route.headers.get("etag")).toBe('"2"');
      expect(route.body).toEqual(guardedRoute.body);
      const revisions = await api.get<{ items: Array<{ revision: number }> }>("/routes/guarded/revisions");
      expect(revisions.body.items.map((r) => r.revision)).toEqual([2, 1]);
      // The stored cluster is unchanged; its live probe status is not part of what was written.
      expect(withoutStatus((await api.get<Record<string, unknown>>("/clusters/east")).body)).toEqual(withoutStatus(guardedCluster.body as Record<string, unknown>));
      for (const name of ["Checkout", "checkout.v2", "check_out", "someone-else"]) {
        expect((await api.get<{ items: Array<{ name: string }> }>("/routes")).body.items.map((r) => r.name)).not.toContain(name);
      }
      // The connection pool is still healthy after the oversized uploads.
      expect((await api.get("/routes/guarded")).status).toBe(200);
    });
  });

  // ---------------------------------------------------------------- oversized uploads and keep-alive

  describe("connection reuse after an oversized upload", () => {
    const request = (path: string, framing: "chunked" | "content-length", total: number): Buffer => {
      const head = `PUT /_isthmus/v1${path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n`;
      if (framing === "content-length") return Buffer.concat([Buffer.from(`${head}Content-Length: ${total}\r\n\r\n`), Buffer.alloc(total, 0x20)]);
      const parts: Buffer[] = [Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n`)];
      for (let sent = 0; sent < total; sent += 65_536) parts.push(Buffer.from("10000\r\n"), Buffer.alloc(65_536, 0x20), Buffer.from("\r\n"));
      parts.push(Buffer.from("0\r\n\r\n"));
      return Buffer.concat(parts);
    };

    it.each([
      ["content-length", "/routes/guarded"],
      ["chunked", "/routes/guarded"],
      ["chunked", "/clusters/east"],
    ] as const)("%s body of 2 MiB to %s: a 400 with Connection: close, then the server closes the connection", async (framing, path) => {
      const before = await version();
      const conn = await rawConnection(gw.url);
      try {
        // Not awaited: the server answers (and closes) without reading the whole upload.
        const sent = conn.send(request(path, framing, 2 * MIB));
        const first = await conn.next();
        expect(first?.status).toBe(400);
        expect(first?.headers["content-type"] ?? "").toMatch(/^application\/problem\+json/);
        expect(JSON.parse(first?.body ?? "{}")).toMatchObject({ errors: [{ path: "body" }] });
        // The rest of the body is never read, so the connection cannot carry another request: the
        // answer says so, and the server closes it (a client reusing it would fail on its next request).
        expect(first?.headers.connection ?? "", JSON.stringify(first?.headers)).toMatch(/^close$/i);
        let deadline: NodeJS.Timeout | undefined;
        const timedOut = new Promise<"open">((resolve) => (deadline = setTimeout(() => resolve("open"), 5000)));
        try {
          expect(await Promise.race([conn.closed.then(() => "closed" as const), timedOut]), "the server should close the connection").toBe("closed");
        } finally {
          clearTimeout(deadline);
        }
        await sent;
        expect(await conn.next()).toBeNull();
      } finally {
        conn.close();
      }
      expect(await version()).toBe(before);
      // The gateway itself is fine: a fresh connection is served.
      expect((await api.get("/routes/guarded")).status).toBe(200);
    });
  });

  // ---------------------------------------------------------------- explain

  describe("explain", () => {
    beforeAll(async () => {
      const doc = {
        hostnames: ["shop.explain.test"],
        rules: [
          {
            name: "api",
            matches: [{ path: { type: "PathPrefix", value: "/api" }, method: "POST" }],
            backendRefs: [
              { cluster: "east", service: "api.shop.svc.cluster.local", port: 8080, weight: 3 },
              { cluster: "west", service: "api.shop.svc.cluster.local", port: 8080, weight: 1 },
            ],
          },
          {
            name: "web",
            matches: [{ path: { type: "PathPrefix", value: "/" } }],
            backendRefs: [
              { cluster: "east", service: "web.shop.svc.cluster.local", port: 8080, weight: 90 },
              { cluster: "west", service: "web.shop.svc.cluster.local", port: 8080, weight: 10 },
            ],
            sessionPersistence: { key: [{ header: "x-user-id" }, { cookie: "uid" }] },
          },
        ],
      };
      expect((await api.put("/routes/explained", doc)).status).toBe(201);
      await syncTable();
    });

    type Backend = { cluster: string; service: string; port: number | null; weight: number; share: number; endpoint: string | null };
    type Explained = {
      matched: boolean;
      tableVersion: number;
      reason: string;
      route?: { name: string; revision: number };
      rule?: { name: string; index: number; match: number };
      backends?: Backend[];
      sticky?: { key: string | null; bucket?: number; backend?: string | null; note?: string } | null;
      considered?: Array<{ route: string; rule: string; fits: boolean; reason?: string }>;
    };
    const q = (params: Record<string, string | string[]>) => {
      const sp = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) sp.append(k, one);
      return `/explain?${sp.toString()}`;
    };

    it("host/path/method -> route, rule, backends with shares summing to 1, considered list", async () => {
      const res = await api.get<Explained>(q({ host: "shop.explain.test", path: "/api/orders", method: "POST" }));
      expect(res.status).toBe(200);
      const e = res.body;
      expect(e.matched).toBe(true);
      expect(e.tableVersion).toBe(await version());
      expect(e.route).toEqual({ name: "explained", revision: 1 });
      expect(e.rule).toMatchObject({ name: "api", index: 0 });
      expect(e.reason).toBeTypeOf("string");
      const backends = e.backends ?? [];
      expect(backends.map((b) => [b.cluster, b.weight])).toEqual([
        ["east", 3],
        ["west", 1],
      ]);
      expect(backends.reduce((s, b) => s + b.share, 0)).toBeCloseTo(1, 12);
      expect(backends[0]?.share).toBeCloseTo(0.75, 12);
      expect(backends[0]?.endpoint).toContain("gw.east.example");
      expect(e.considered?.at(-1)).toMatchObject({ route: "explained", rule: "api", fits: true });
      expect(e.sticky).toBeNull();
    });

    it("explains why an earlier rule did not fit (method) and picks the next", async () => {
      const res = await api.get<Explained>(q({ host: "SHOP.explain.test:8443", path: "/api/orders", method: "get" }));
      const e = res.body;
      expect(e.matched).toBe(true);
      expect(e.rule).toMatchObject({ name: "web", index: 1 });
      const api0 = e.considered?.find((c) => c.rule === "api");
      expect(api0).toMatchObject({ fits: false });
      expect(api0?.reason).toMatch(/method/);
      expect(e.considered?.at(-1)).toMatchObject({ rule: "web", fits: true });
      expect((e.backends ?? []).reduce((s, b) => s + b.share, 0)).toBeCloseTo(1, 12);
    });

    it("with header=x-user-id:alice on a sticky rule -> the sticky bucket and backend, the same every time", async () => {
      const url = q({ host: "shop.explain.test", path: "/", header: "x-user-id:alice" });
      const first = (await api.get<Explained>(url)).body;
      expect(first.rule).toMatchObject({ name: "web" });
      expect(first.sticky).toMatchObject({ key: "alice", bucket: bucketOf("alice") });
      const ids = (first.backends ?? []).map((b) => `${b.cluster}/${b.service}:${b.port}`);
      expect(ids).toContain(first.sticky?.backend);
      for (let i = 0; i < 5; i++) expect((await api.get<Explained>(url)).body.sticky).toEqual(first.sticky);

      const none = (await api.get<Explained>(q({ host: "shop.explain.test", path: "/" }))).body;
      expect(none.sticky).toMatchObject({ key: null });
    });

    it("unknown host -> matched false with a reason; missing host -> 400 at query.host", async () => {
      const res = await api.get<Explained>(q({ host: "nobody.example", path: "/" }));
      expect(res.status).toBe(200);
      expect(res.body.matched).toBe(false);
      expect(res.body.reason).toContain("nobody.example");

      expectValidation(await api.get(q({ path: "/" })), "query.host");
      expectValidation(await api.get(q({ host: "" })), "query.host");
      expectValidation(await api.get(q({ host: "shop.explain.test", path: "no-slash" })), "query.path");
      expectValidation(await api.get(q({ host: "shop.explain.test", header: "no-colon" })), "query.header[0]");
    });
  });

  // ---------------------------------------------------------------- health and unknown paths

  describe("health endpoints and unknown /_isthmus/ paths", () => {
    const anon = () => new AdminClient(gw.url, null);

    it("healthz answers 200 without a token", async () => {
      const res = await anon().raw<{ status: string }>("GET", "/_isthmus/healthz");
      expect(res.status).toBe(200);
      expect(res.body.status).toBe("ok");
    });

    it("readyz answers 200 with the store kind and the routing table version", async () => {
      await syncTable();
      const res = await anon().raw<{ status: string; store: { kind: string; reachable: boolean }; routingTable: { loaded: boolean; version: number } }>("GET", "/_isthmus/readyz");
      expect(res.status).toBe(200);
      expect(res.body.status).toBe("ready");
      expect(res.body.store).toMatchObject({ kind: "memory", reachable: true });
      expect(res.body.routingTable.loaded).toBe(true);
      expect(res.body.routingTable.version).toBe(await version());
    });

    it("unknown /_isthmus/ paths -> 404 problem+json", async () => {
      for (const path of ["/_isthmus/nope", "/_isthmus/v2/routes", "/.well-known/nothing-here"]) {
        expectProblem(await anon().raw("GET", path), 404);
      }
      expectProblem(await api.get("/no-such-endpoint"), 404);
      expectProblem(await api.get("/routes/guarded/nope"), 404);
    });
  });
});

// ================================================================== data plane isolation

describe("/_isthmus/ paths never reach the data plane", () => {
  let gw: RunningGateway;
  let upstream: http.Server;
  const seen: string[] = [];

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      // The gateway's own health probe (GET /ready) is not data-plane traffic.
      if (req.headers["user-agent"] !== "isthmus-probe") seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { "content-type": "text/plain" }).end("from upstream");
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    const port = (upstream.address() as AddressInfo).port;
    const config = parseConfigText(
      JSON.stringify({
        clusters: { local: { endpoint: `http://127.0.0.1:${port}`, trustDomain: "local.test" } },
        // No hostnames: this route catches every host and every path.
        routes: { everything: { authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "local", service: "echo.default.svc.cluster.local" }] }] } },
      }),
    );
    gw = await startGateway({ config });
  });
  afterAll(async () => {
    await gw?.close();
    await new Promise<void>((resolve) => upstream?.close(() => resolve()));
  });

  it("a data-plane path is forwarded (control)", async () => {
    const res = await fetch(`${gw.url}/hello?x=1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("from upstream");
    expect(seen).toEqual(["GET /hello?x=1"]);
  });

  it("admin and internal paths, with or without a token, are answered by the gateway itself", async () => {
    seen.length = 0;
    const anon = new AdminClient(gw.url, null);
    const admin = new AdminClient(gw.url, TOKEN);
    const paths = ["/_isthmus/v1/routes", "/_isthmus/v1/does-not-exist", "/_isthmus/v1", "/_isthmus/v1/", "/_isthmus/v1/routes/", "/_isthmus/V1/routes", "/_isthmus/healthz/extra", "/_isthmus/", "/.well-known/anything"];
    for (const path of paths) {
      for (const client of [anon, admin]) {
        for (const method of ["GET", "POST", "DELETE", "OPTIONS"]) {
          const res = await client.raw(method, path, method === "POST" ? { body: {} } : {});
          expect(res.text, `${method} ${path}`).not.toBe("from upstream");
          expect(res.headers.get("content-type") ?? "", `${method} ${path}`).toMatch(/^application\/(problem\+)?json/);
        }
      }
    }
    // Raw request-targets that fetch would normalise away.
    for (const target of ["/_isthmus/v1/%2e%2e/routes", "/_isthmus/v1/./routes", "/_isthmus/v1//routes", "/_isthmus/v1/routes?x=/hello"]) {
      const res = await rawRequest(gw.url, "GET", target);
      expect(res.body, target).not.toBe("from upstream");
    }
    expect(seen).toEqual([]);
  });
});

// ================================================================== concurrency, both stores

describe.each(["memory", "redis"] as const)("concurrent admin writes on the %s store", (kind) => {
  let gw: RunningGateway;
  let api: AdminClient;

  beforeAll(async () => {
    gw = await startGateway(kind === "redis" ? { redisUrl: inject("redisUrl"), redisPrefix: uniquePrefix(`admin-api-${kind}`) } : {});
    expect(gw.store.kind).toBe(kind);
    api = new AdminClient(gw.url, TOKEN);
    expect((await api.put("/clusters/east", EAST)).status).toBe(201);
    expect((await api.put("/clusters/west", WEST)).status).toBe(201);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("20 concurrent PUTs with the same If-Match: exactly one 200, nineteen 412, a gap-free history", async () => {
    const first = await api.put("/routes/race", routeDoc(500, 500));
    expect(first.status).toBe(201);
    expect(first.headers.get("etag")).toBe('"1"');

    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => api.put<Record<string, unknown>>("/routes/race", routeDoc(i, 1000 - i), { headers: { "if-match": '"1"' } })));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 412)).toHaveLength(19);
    const winner = results.find((r) => r.status === 200) as AdminResponse<Record<string, unknown>>;
    expect(winner.body).toMatchObject({ revision: 2 });
    for (const loser of results.filter((r) => r.status === 412)) {
      expect(expectProblem(loser, 412).currentRevision).toBe(2);
      expect(loser.headers.get("etag")).toBe('"2"');
    }
    const now = await api.get<Record<string, unknown>>("/routes/race");
    expect(now.headers.get("etag")).toBe('"2"');
    expect(specOf(now.body)).toEqual(specOf(winner.body));

    // Unconditional concurrent writes all land, each as a revision of its own.
    const free = await Promise.all(Array.from({ length: 20 }, (_, i) => api.put("/routes/race", routeDoc(100 + i, 1))));
    expect(free.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(free.map((r) => r.headers.get("etag"))).size).toBe(20);

    const history = await api.get<{ items: Array<{ revision: number; action: string }> }>("/routes/race/revisions");
    expect(history.body.items.map((r) => r.revision)).toEqual(Array.from({ length: 22 }, (_, i) => 22 - i));
    expect(history.body.items.at(-1)?.action).toBe("create");
    expect(history.body.items.slice(0, -1).every((r) => r.action === "update")).toBe(true);
  });

  it("10 concurrent cluster PUTs sharing one trust domain: exactly one 201, nine 409", async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => api.put(`/clusters/td-race-${i}`, { endpoint: `https://c${i}.race.example`, trustDomain: "race.example" })));
    const owners = (await api.get<{ items: Array<{ name: string; trustDomain: string }> }>("/clusters")).body.items.filter((c) => c.trustDomain === "race.example");
    // The uniqueness check is part of the store's atomic write, so concurrent PUTs cannot all pass it.
    expect(owners.map((c) => c.name), `statuses ${results.map((r) => r.status).join(",")}`).toHaveLength(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
    const winner = owners[0]?.name ?? "";
    expect(results.findIndex((r) => r.status === 201)).toBe(Number(winner.replace("td-race-", "")));
    for (const loser of results.filter((r) => r.status === 409)) {
      const body = expectProblem(loser, 409);
      expect(body.detail).toContain(winner);
      expect(body.errors).toEqual([{ path: "trustDomain", message: expect.stringContaining(winner) }]);
    }
  });

  it("a cluster DELETE racing a route PUT that uses it never leaves a route pointing at a missing cluster", async () => {
    const n = 10;
    for (let i = 0; i < n; i++) expect((await api.put(`/clusters/gone-${i}`, { endpoint: `https://gone-${i}.example`, trustDomain: `gone-${i}.example` })).status).toBe(201);
    const pairs = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        Promise.all([
          api.delete(`/clusters/gone-${i}`),
          api.put(`/routes/uses-gone-${i}`, { hostnames: [`gone-${i}.shop`], rules: [{ backendRefs: [{ cluster: `gone-${i}`, service: SERVICE }] }] }),
        ]),
      ),
    );
    const clusters = new Set((await api.get<{ items: Array<{ name: string }> }>("/clusters")).body.items.map((c) => c.name));
    const routes = (await api.get<{ items: Array<{ name: string; rules: Array<{ backendRefs: Array<{ cluster: string }> }> }> }>("/routes")).body.items;
    const dangling = routes.flatMap((r) => r.rules.flatMap((rule) => rule.backendRefs.filter((b) => !clusters.has(b.cluster)).map((b) => `${r.name} -> ${b.cluster}`)));
    // The store checks references atomically with each write: one of the two is refused.
    const statuses = pairs.map(([d, p]) => `${d.status}/${p.status}`).join(" ");
    expect(dangling, `statuses ${statuses}`).toEqual([]);
    for (const [i, [del, put]] of pairs.entries()) {
      expect(del.status === 204 && put.status === 201, `statuses ${statuses}`).toBe(false);
      if (del.status === 204) {
        // The route PUT lost: a 400 at the backend's cluster, as for any unknown cluster.
        expectValidation(put, "rules[0].backendRefs[0].cluster");
        expect(clusters.has(`gone-${i}`)).toBe(false);
      } else {
        expect(put.status, `statuses ${statuses}`).toBe(201);
        expect(expectProblem(del, 409).detail).toContain(`uses-gone-${i}`);
        expect(clusters.has(`gone-${i}`)).toBe(true);
      }
    }
  });

  it("rolling back a deleted route re-creates it: 201 with a new revision", async () => {
    await api.put("/routes/revive", routeDoc());
    expect((await api.delete("/routes/revive")).status).toBe(204);
    const revived = await api.post("/routes/revive/rollback", { toRevision: 1 });
    // Regression: the Redis store used to report a rollback onto a deleted route as "updated"
    // (200) because ROUTE_WRITE only returned "created" for an "update" record; memory said 201.
    expect(revived.status).toBe(201);
    expect(revived.body).toMatchObject({ name: "revive", revision: 3 });
    const history = await api.get<{ items: Array<{ revision: number; action: string; restoredFrom?: number }> }>("/routes/revive/revisions");
    expect(history.body.items.map((r) => [r.revision, r.action])).toEqual([
      [3, "rollback"],
      [2, "delete"],
      [1, "create"],
    ]);
    expect(history.body.items[0]?.restoredFrom).toBe(1);
  });
});

// ================================================================== declarative config on Redis

describe("declarative config on Redis", () => {
  it("applied twice (stop, start a second gateway on the same prefix) creates no new revisions", async () => {
    const redisUrl = inject("redisUrl");
    const prefix = uniquePrefix("admin-api-declarative");
    const config = parseConfigText(
      JSON.stringify({
        clusters: { east: EAST, west: { ...WEST, health: { path: "/healthz", interval: "10s" } } },
        routes: {
          shop: routeDoc(90, 10),
          "shop-api": { hostnames: ["api.shop"], authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "west", service: SERVICE }], sessionPersistence: { key: [{ header: "x-user-id" }] } }] },
        },
      }),
    );

    const read = async (gw: RunningGateway) => {
      const api = new AdminClient(gw.url, TOKEN);
      const [clusters, routes, shopRevs, apiRevs] = await Promise.all([
        api.get<{ items: unknown[] }>("/clusters"),
        api.get<{ items: unknown[] }>("/routes"),
        api.get<{ items: unknown[] }>("/routes/shop/revisions"),
        api.get<{ items: unknown[] }>("/routes/shop-api/revisions"),
      ]);
      return { version: await gw.store.version(), clusters: (clusters.body.items as Record<string, unknown>[]).map(withoutStatus), routes: routes.body.items, shopRevs: shopRevs.body.items, apiRevs: apiRevs.body.items };
    };

    const first = await startGateway({ redisUrl, redisPrefix: prefix, config });
    let one: Awaited<ReturnType<typeof read>>;
    try {
      expect(first.store.kind).toBe("redis");
      one = await read(first);
      expect(one.shopRevs).toHaveLength(1);
      expect(one.apiRevs).toHaveLength(1);
      expect(one.routes).toHaveLength(2);
      expect(one.clusters).toHaveLength(2);
    } finally {
      await first.close();
    }

    const second = await startGateway({ redisUrl, redisPrefix: prefix, config });
    try {
      const two = await read(second);
      // Same store version, same revisions, same updatedAt timestamps: nothing was rewritten.
      expect(two).toEqual(one);
      const shop = await new AdminClient(second.url, TOKEN).get("/routes/shop");
      expect(shop.headers.get("etag")).toBe('"1"');
    } finally {
      await second.close();
    }
  });
});

/** A cluster representation without its live status (probe state changes between reads). */
function withoutStatus(body: Record<string, unknown>): Record<string, unknown> {
  const { status: _status, ...rest } = body;
  return rest;
}
