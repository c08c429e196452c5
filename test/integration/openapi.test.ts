// GET /_isthmus/v1/openapi.json against the real gateway: the document is valid OpenAPI 3.1 (by a
// real validator); it lists exactly the routes the Hono app registers, no more, no fewer; its
// request schemas accept and refuse what the server accepts and refuses (400); and every answer
// of a scenario touching every operation is documented, status, headers and body.
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { request, type Dispatcher } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_PREFIX, API_OPERATIONS, routeKey, type Operation } from "../../src/admin/api-catalog.ts";
import { COMPONENT_SCHEMAS, type ComponentName } from "../../src/admin/api-schemas.ts";
import { openApiDocument, REQUEST_EXAMPLES } from "../../src/admin/openapi.ts";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger } from "../../src/util/log.ts";

const TOKEN = "openapi-test-token-0123456789";
const SERVICE = "checkout.shop.svc.cluster.local";
const addFormats = addFormatsModule.default;

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  headers: Dispatcher.ResponseData["headers"];
  text: string;
  body: unknown;
}

let gw: RunningGateway;
const doc = openApiDocument() as {
  openapi: string;
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json> };
};

// ------------------------------------------------------------------ JSON Schema validation

const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
addFormats(ajv);
const compiled = new Map<string, ValidateFunction>();

/** The validator of a component schema, as it stands in the served document. */
function validatorOf(name: string): ValidateFunction {
  let v = compiled.get(name);
  if (!v) {
    const schema = doc.components.schemas[name];
    if (!schema) throw new Error(`no component schema ${name}`);
    v = ajv.compile(schema);
    compiled.set(name, v);
  }
  return v;
}

const refName = (schema: unknown): string => {
  const ref = (schema as { $ref?: string }).$ref ?? "";
  const m = /^#\/components\/schemas\/(\w+)$/.exec(ref);
  if (!m) throw new Error(`expected a component $ref, got ${JSON.stringify(schema)}`);
  return m[1] as string;
};

function check(name: string, value: unknown): { valid: boolean; errors: string } {
  const v = validatorOf(name);
  const valid = v(value);
  return { valid, errors: ajv.errorsText(v.errors) };
}

// ------------------------------------------------------------------ HTTP

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, auth = true): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, {
    method: method.toUpperCase() as Dispatcher.HttpMethod,
    headers: {
      ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.body.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: res.statusCode, headers: res.headers, text, body: parsed };
}

const header = (a: Answer, name: string): string | undefined => {
  const v = a.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
};

const operation = (id: string): Operation => {
  const op = API_OPERATIONS.find((o) => o.operationId === id);
  if (!op) throw new Error(`no operation ${id}`);
  return op;
};

const fill = (path: string, params: Record<string, string>): string => path.replace(/\{(\w+)\}/g, (_, p: string) => params[p] ?? "x");

/** Which operations answered with a documented success in the scenario. */
const exercised = new Map<string, Set<number>>();

/** Calls an operation and checks the answer against the document: status, content type, body and headers. */
async function invoke(id: string, params: Record<string, string> = {}, opts: { body?: unknown; headers?: Record<string, string>; query?: string } = {}): Promise<Answer> {
  const op = operation(id);
  const a = await call(op.method, `${fill(op.path, params)}${opts.query ?? ""}`, opts.body, opts.headers);
  conforms(op, a);
  if (a.status < 300) (exercised.get(id) ?? exercised.set(id, new Set()).get(id))?.add(a.status);
  return a;
}

function conforms(op: Operation, a: Answer): void {
  const where = `${op.method.toUpperCase()} ${op.path} answered ${a.status} ${a.text.slice(0, 300)}`;
  const documented = doc.paths[op.path]?.[op.method]?.responses as Record<string, Json> | undefined;
  const resp = documented?.[String(a.status)];
  expect(resp, `${where}: status not documented`).toBeDefined();
  let r = resp as Json;
  if (typeof r.$ref === "string") r = (doc.components as unknown as Record<string, Record<string, Json>>).responses?.[r.$ref.split("/").pop() as string] as Json;
  const content = r.content as Record<string, { schema: Json }> | undefined;
  const type = (header(a, "content-type") ?? "").split(";")[0]?.trim() ?? "";
  if (!content) {
    expect(a.text, `${where}: documented without a body`).toBe("");
    return;
  }
  const media = content[type];
  expect(media, `${where}: content type ${type} not documented (${Object.keys(content).join(", ")})`).toBeDefined();
  const schema = (media as { schema: Json }).schema;
  if (typeof schema.$ref === "string") {
    const res = check(refName(schema), a.body);
    expect(res.valid, `${where}: body does not match ${refName(schema)}: ${res.errors}`).toBe(true);
  } else if (schema.type === "string") {
    expect(typeof a.text).toBe("string");
  }
  for (const [name, h] of Object.entries((r.headers ?? {}) as Record<string, Json>)) {
    const ref = typeof h.$ref === "string" ? (h.$ref.split("/").pop() as string) : "";
    // ETag is documented on 412 "when the route exists"; elsewhere it is always there.
    if (ref === "ETag" && a.status !== 412) expect(header(a, name), `${where}: no ${name} header`).toMatch(/^"[0-9]+"$/);
    if (ref === "CacheControlNoStore") expect(header(a, name), `${where}: ${name}`).toBe("no-store");
  }
}

beforeAll(async () => {
  gw = await startNodeGateway({ port: 0, hostname: "127.0.0.1", adminToken: TOKEN, log: silentLogger, rolloutTickMs: 0 });
});
afterAll(async () => {
  await gw?.close();
});

describe("the document", () => {
  it("is a valid OpenAPI 3.1 document (and the validator does refuse a broken one)", async () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const res = await new Validator().validate(structuredClone(doc));
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);

    const broken = structuredClone(doc) as unknown as { paths: Record<string, Record<string, { responses: Record<string, Json> }>> };
    delete broken.paths[`${ADMIN_PREFIX}/clusters`]?.get?.responses["200"]?.description;
    expect((await new Validator().validate(broken)).valid).toBe(false);
    const dangling = structuredClone(doc) as { components: { schemas: Record<string, unknown> } };
    delete dangling.components.schemas.RouteView;
    expect((await new Validator().validate(dangling)).valid).toBe(false);
  });

  it("is served at /_isthmus/v1/openapi.json to admin callers only", async () => {
    const anonymous = await call("get", `${ADMIN_PREFIX}/openapi.json`, undefined, {}, false);
    expect(anonymous.status).toBe(401);
    expect(header(anonymous, "www-authenticate")).toBe('Bearer realm="isthmus-admin"');
    const served = await invoke("openapi");
    expect(served.status).toBe(200);
    expect(served.body).toEqual(doc);
  });

  it("documents exactly the routes the app registers", () => {
    // Concrete routes only: middleware and catch-alls (`*`) are not endpoints. The dashboard
    // (/_isthmus/ui) serves pages, not the admin API, and is documented in docs/, not here.
    const registered = new Set(
      gw.app.routes.filter((r) => r.method !== "ALL" && !r.path.includes("*") && !/^\/_isthmus\/ui(\/|$)/.test(r.path)).map((r) => routeKey(r.method, r.path)),
    );
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => routeKey(m, path))));
    expect([...registered].filter((k) => !documented.has(k)), "registered but not documented").toEqual([]);
    expect([...documented].filter((k) => !registered.has(k)), "documented but not registered").toEqual([]);
    expect(documented.size).toBe(API_OPERATIONS.length);
    expect(registered.size).toBeGreaterThanOrEqual(25);
  });

  it("says which calls need the admin token, as the server enforces it", async () => {
    for (const op of API_OPERATIONS) {
      const security = doc.paths[op.path]?.[op.method]?.security as Array<Record<string, string[]>>;
      expect(op.admin).toBe(op.path.startsWith(`${ADMIN_PREFIX}/`));
      const a = await call(op.method, fill(op.path, { name: "nope" }), undefined, {}, false);
      if (op.admin) {
        expect(security, op.operationId).toEqual([{ adminBearer: [op.method === "get" ? "isthmus:read" : op.tag === "rollouts" ? "isthmus:rollout" : "isthmus:write"] }]);
        expect(a.status, `${op.operationId} without a token`).toBe(401);
        conforms(op, a);
      } else {
        expect(security, op.operationId).toEqual([]);
        expect(a.status, `${op.operationId} without a token`).not.toBe(401);
      }
    }
  });

  it("takes its request bodies from the schemas the server validates with", () => {
    const bodies = API_OPERATIONS.filter((o) => o.body).map((o) => [o.operationId, refName((doc.paths[o.path]?.[o.method]?.requestBody as { content: Record<string, { schema: Json }> }).content["application/json"]?.schema)]);
    expect(Object.fromEntries(bodies)).toEqual({
      putCluster: "Cluster",
      putRoute: "Route",
      rollbackRoute: "RollbackRequest",
      startRollout: "Rollout",
      promoteRollout: "PromoteRequest",
    });
    // Every example the document shows is valid for the document and for the server's own schema.
    for (const [name, example] of Object.entries(REQUEST_EXAMPLES)) {
      expect(check(name, example).errors, name).toBe("No errors");
      expect(COMPONENT_SCHEMAS[name as ComponentName].schema.safeParse(example).success, name).toBe(true);
    }
  });
});

// ------------------------------------------------------------------ request bodies: the document and the server agree

interface Sample {
  why: string;
  value: unknown;
  valid: boolean;
}

const EAST = { endpoint: "https://gw.east.example:4143", trustDomain: "east.example" };
const WEST = { endpoint: "https://gw.west.example:4143", trustDomain: "west.example" };
const route = (backendRefs: unknown[] = [{ cluster: "east", service: SERVICE, port: 8080, weight: 100 }], extra: Json = {}): Json => ({
  hostnames: ["checkout.shop"],
  rules: [{ name: "default", backendRefs, ...extra }],
});
const rollout = (extra: Json = {}): Json => ({
  name: "checkout-v2",
  route: "checkout",
  rule: "default",
  stable: { cluster: "east", service: SERVICE, port: 8080 },
  canary: { cluster: "west", service: "checkout-v2.shop.svc.cluster.local", port: 8080 },
  steps: [{ setWeight: 5 }, { pause: {} }, { setWeight: 100 }],
  ...extra,
});

const SAMPLES: Record<"Cluster" | "Route" | "Rollout" | "RollbackRequest" | "PromoteRequest", Sample[]> = {
  Cluster: [
    { why: "minimal", value: { endpoint: "https://gw.a.example", trustDomain: "a.example" }, valid: true },
    { why: "everything", value: { endpoint: "http://10.0.0.1:4143/base", trustDomain: "b.example", bundle: { jwks: { keys: [] } }, metrics: { remoteWrite: { url: "https://prom.b.example/api/v1/write" } }, health: { path: "/ready", interval: "3s", timeout: "1s" } }, valid: true },
    { why: "read-only fields sent back", value: { name: "s2", endpoint: "https://gw.c.example", trustDomain: "c.example", updatedAt: "2026-01-01T00:00:00.000Z", status: { health: null } }, valid: true },
    { why: "no trustDomain", value: { endpoint: "https://gw.d.example" }, valid: false },
    { why: "misspelt field", value: { endpont: "https://gw.d.example", trustDomain: "d.example" }, valid: false },
    { why: "trust domain with spaces", value: { endpoint: "https://gw.d.example", trustDomain: "D Example" }, valid: false },
    { why: "interval not a duration", value: { endpoint: "https://gw.d.example", trustDomain: "d.example", health: { interval: "3 seconds" } }, valid: false },
    { why: "remoteWrite without url", value: { endpoint: "https://gw.d.example", trustDomain: "d.example", metrics: { remoteWrite: {} } }, valid: false },
    { why: "endpoint a number", value: { endpoint: 4143, trustDomain: "d.example" }, valid: false },
    { why: "not an object", value: ["https://gw.d.example"], valid: false },
  ],
  Route: [
    { why: "minimal", value: { rules: [{ backendRefs: [{ cluster: "east", service: "a" }] }] }, valid: true },
    { why: "the contract's example", value: REQUEST_EXAMPLES.Route, valid: true },
    { why: "upper-case hostname (lower-cased)", value: { hostnames: ["Checkout.Example"], rules: [{ backendRefs: [{ cluster: "west", service: "a" }] }] }, valid: true },
    { why: "identities and a wildcard host", value: { hostnames: ["*.shop.example"], authorization: { identities: ["spiffe://east.example/ns/shop/*"] }, ...route() }, valid: true },
    { why: "weight over 1000", value: route([{ cluster: "east", service: SERVICE, weight: 5000 }]), valid: false },
    { why: "no rules", value: { rules: [] }, valid: false },
    { why: "misspelt weight", value: route([{ cluster: "east", service: SERVICE, wieght: 1 }]), valid: false },
    { why: "timeout not a duration", value: route(undefined, { timeouts: { request: "2 seconds" } }), valid: false },
    { why: "regular expression path", value: route(undefined, { matches: [{ path: { type: "RegularExpression", value: "/.*" } }] }), valid: false },
    { why: "identity not SPIFFE", value: { authorization: { identities: ["east.example/web"] }, ...route() }, valid: false },
    { why: "hostname with '_'", value: { ...route(), hostnames: ["bad_host.example"] }, valid: false },
    { why: "port 0", value: route([{ cluster: "east", service: SERVICE, port: 0 }]), valid: false },
  ],
  Rollout: [
    { why: "a rollout that fits the route", value: rollout({ analysis: { interval: "10s", successRate: { min: 0.99 } } }), valid: true },
    { why: "no steps", value: rollout({ steps: [] }), valid: false },
    { why: "weight over 100", value: rollout({ steps: [{ setWeight: 150 }] }), valid: false },
    { why: "no canary", value: { ...rollout(), canary: undefined }, valid: false },
    { why: "unknown onNoData", value: rollout({ analysis: { onNoData: "maybe" } }), valid: false },
    { why: "pause duration not a duration", value: rollout({ steps: [{ setWeight: 5 }, { pause: { duration: "soon" } }] }), valid: false },
  ],
  RollbackRequest: [
    { why: "a revision", value: { toRevision: 1 }, valid: true },
    { why: "revision 0", value: { toRevision: 0 }, valid: false },
    { why: "a string", value: { toRevision: "1" }, valid: false },
    { why: "a fraction", value: { toRevision: 1.5 }, valid: false },
    { why: "empty", value: {}, valid: false },
    { why: "an extra field", value: { toRevision: 1, force: true }, valid: false },
  ],
  PromoteRequest: [
    { why: "empty", value: {}, valid: true },
    { why: "full", value: { full: false }, valid: true },
    { why: "full not a boolean", value: { full: "yes" }, valid: false },
    { why: "unknown field", value: { fast: true }, valid: false },
  ],
};

describe("request schemas and the server's 400s", () => {
  beforeAll(async () => {
    expect((await call("put", `${ADMIN_PREFIX}/clusters/east`, EAST)).status).toBe(201);
    expect((await call("put", `${ADMIN_PREFIX}/clusters/west`, WEST)).status).toBe(201);
    expect((await call("put", `${ADMIN_PREFIX}/routes/checkout`, route())).status).toBe(201);
  });

  it("the document's verdict on each sample is the server's schema's verdict", () => {
    for (const [name, samples] of Object.entries(SAMPLES)) {
      const server = COMPONENT_SCHEMAS[name as keyof typeof SAMPLES].schema;
      for (const s of samples) {
        const res = check(name, s.value);
        expect(res.valid, `${name}: ${s.why}: ${res.errors}`).toBe(s.valid);
        // The cluster and route handlers strip read-only fields before they validate; the document marks them readOnly.
        let input = s.value;
        if ((name === "Cluster" || name === "Route") && !Array.isArray(input)) {
          const { name: _n, updatedAt: _u, status: _s, revision: _r, ...spec } = input as Json;
          input = spec;
        }
        expect(server.safeParse(input).success, `${name} (server schema): ${s.why}`).toBe(s.valid);
      }
    }
  });

  it("the server answers 400 exactly for the samples the document refuses", async () => {
    const sent: Array<[string, Sample, string, string]> = [
      ...SAMPLES.Cluster.map((s, i) => ["put", s, `/clusters/s${i}`, "putCluster"] as [string, Sample, string, string]),
      ...SAMPLES.Route.map((s, i) => ["put", s, `/routes/s${i}`, "putRoute"] as [string, Sample, string, string]),
      ...SAMPLES.Rollout.map((s) => ["post", s, "/rollouts", "startRollout"] as [string, Sample, string, string]),
      ...SAMPLES.RollbackRequest.map((s) => ["post", s, "/routes/checkout/rollback", "rollbackRoute"] as [string, Sample, string, string]),
      ...SAMPLES.PromoteRequest.map((s) => ["post", s, "/rollouts/checkout-v2/promote", "promoteRollout"] as [string, Sample, string, string]),
    ];
    for (const [method, s, path, id] of sent) {
      const a = await call(method, `${ADMIN_PREFIX}${path}`, s.value);
      expect(a.status === 400, `${method.toUpperCase()} ${path} (${s.why}) answered ${a.status} ${a.text.slice(0, 200)}`).toBe(!s.valid);
      conforms(operation(id), a);
      if (a.status === 400) expect((a.body as { errors: unknown[] }).errors.length).toBeGreaterThan(0);
    }
  });
});

// ------------------------------------------------------------------ every answer of a full scenario is documented

describe("answers", () => {
  it("of every operation match the document", async () => {
    await invoke("healthz");
    expect((await invoke("readyz")).status).toBe(200);
    await invoke("jwks");

    // Clusters: create, replace with what GET gave, conflicts, missing, delete.
    expect((await invoke("putCluster", { name: "north" }, { body: { endpoint: "https://gw.north.example", trustDomain: "north.example" } })).status).toBe(201);
    const north = await invoke("getCluster", { name: "north" });
    expect(check("Cluster", north.body).errors, "a cluster as read is a valid request body").toBe("No errors");
    expect((await invoke("putCluster", { name: "north" }, { body: north.body })).status).toBe(200);
    expect((await invoke("putCluster", { name: "south" }, { body: { endpoint: "https://gw.south.example", trustDomain: "north.example" } })).status).toBe(409);
    expect((await invoke("getCluster", { name: "south" })).status).toBe(404);
    expect((await invoke("getCluster", { name: "Not_A_Name" })).status).toBe(400);
    await invoke("listClusters");

    // Routes: create with preconditions, read, stale write, history, rollback, delete.
    const sticky = route(
      [
        { cluster: "east", service: SERVICE, port: 8080, weight: 50 },
        { cluster: "north", service: SERVICE, weight: 50 },
      ],
      { sessionPersistence: { key: [{ header: "x-user-id" }] }, timeouts: { request: "2s", backendRequest: "800ms" } },
    );
    const created = await invoke("putRoute", { name: "sticky" }, { body: { ...sticky, hostnames: ["sticky.shop"] }, headers: { "if-none-match": "*" } });
    expect(created.status).toBe(201);
    expect((await invoke("putRoute", { name: "sticky" }, { body: { ...sticky, hostnames: ["sticky.shop", "*.sticky.shop"] }, headers: { "if-match": '"1"' } })).status).toBe(200);
    const stale = await invoke("putRoute", { name: "sticky" }, { body: sticky, headers: { "if-match": '"1"' } });
    expect(stale.status).toBe(412);
    expect(header(stale, "etag")).toBe('"2"');
    expect((await invoke("putRoute", { name: "sticky" }, { body: sticky, headers: { "if-match": 'W/"2"' } })).status).toBe(400);
    const got = await invoke("getRoute", { name: "sticky" });
    expect(check("Route", got.body).errors, "a route as read is a valid request body").toBe("No errors");
    expect((await invoke("putRoute", { name: "sticky" }, { body: got.body })).status).toBe(200);
    await invoke("listRoutes");
    await invoke("listRouteRevisions", { name: "sticky" });
    expect((await invoke("rollbackRoute", { name: "sticky" }, { body: { toRevision: 1 } })).status).toBe(200);
    expect((await invoke("rollbackRoute", { name: "sticky" }, { body: { toRevision: 99 } })).status).toBe(404);
    expect((await invoke("deleteCluster", { name: "north" })).status).toBe(409);
    await gw.routing.reload();

    // Explain: a sticky match with its key, no key, no host entry, bad input.
    expect((await invoke("explain", {}, { query: "?host=sticky.shop&path=/cart&header=x-user-id:alice" })).status).toBe(200);
    expect((await invoke("explain", {}, { query: "?host=sticky.shop" })).status).toBe(200);
    expect((await invoke("explain", {}, { query: "?host=nowhere.example" })).status).toBe(200);
    expect((await invoke("explain", {}, { query: "?path=cart" })).status).toBe(400);

    expect((await invoke("deleteRoute", { name: "sticky" }, { headers: { "if-match": '"9"' } })).status).toBe(412);
    expect((await invoke("deleteRoute", { name: "sticky" })).status).toBe(204);
    await invoke("listRouteRevisions", { name: "sticky" });
    expect((await invoke("rollbackRoute", { name: "sticky" }, { body: { toRevision: 2 } })).status).toBe(201);
    expect((await invoke("deleteRoute", { name: "sticky" })).status).toBe(204);
    expect((await invoke("deleteRoute", { name: "sticky" })).status).toBe(404);
    expect((await invoke("deleteCluster", { name: "north" })).status).toBe(204);

    // Rollouts: start, operate, read.
    expect((await invoke("putRoute", { name: "cart" }, { body: { ...route(), hostnames: ["cart.shop"] } })).status).toBe(201);
    const body = rollout({ name: "cart-v2", route: "cart", analysis: { successRate: { min: 0.99 } }, fastAbort: { errorRate: 0.5 } });
    expect((await invoke("startRollout", {}, { body })).status).toBe(201);
    expect((await invoke("startRollout", {}, { body })).status).toBe(409);
    expect((await invoke("startRollout", {}, { body: { ...body, name: "cart-v3", route: "gone" } })).status).toBe(404);
    expect((await invoke("pauseRollout", { name: "cart-v2" })).status).toBe(200);
    expect((await invoke("resumeRollout", { name: "cart-v2" })).status).toBe(200);
    expect((await invoke("resumeRollout", { name: "cart-v2" })).status).toBe(409);
    expect((await invoke("promoteRollout", { name: "cart-v2" })).status).toBe(200);
    expect((await invoke("abortRollout", { name: "cart-v2" })).status).toBe(200);
    expect((await invoke("retryRollout", { name: "cart-v2" })).status).toBe(200);
    expect((await invoke("promoteRollout", { name: "cart-v2" }, { body: { full: true } })).status).toBe(200);
    expect((await invoke("promoteRollout", { name: "gone" })).status).toBe(404);
    await invoke("getRollout", { name: "cart-v2" });
    await invoke("listRollouts");
    await invoke("listRolloutEvents", { name: "cart-v2" });
    expect((await invoke("listRolloutEvents", { name: "gone" })).status).toBe(404);

    // Metrics: all, one cluster, an unknown one, a bad name.
    expect((await invoke("metrics")).status).toBe(200);
    expect((await invoke("metrics", {}, { query: "?cluster=east" })).status).toBe(200);
    expect((await invoke("metrics", {}, { query: "?cluster=nowhere" })).status).toBe(404);
    expect((await invoke("metrics", {}, { query: "?cluster=Bad_Name" })).status).toBe(400);
    expect((await invoke("listBundles")).status).toBe(200);

    // Every operation answered a documented success at least once.
    expect(API_OPERATIONS.filter((op) => !exercised.has(op.operationId)).map((op) => op.operationId)).toEqual([]);
    // And every documented success status was seen.
    const missing = API_OPERATIONS.flatMap((op) =>
      Object.keys(op.answers)
        .map(Number)
        .filter((s) => s < 300 && !exercised.get(op.operationId)?.has(s))
        .map((s) => `${op.operationId} ${s}`),
    );
    expect(missing).toEqual([]);
  });
});
