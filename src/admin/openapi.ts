// GET /_isthmus/v1/openapi.json: the OpenAPI 3.1 document of the admin API. Built once, on first
// use, from the route table (api-catalog.ts) and the zod schemas the handlers validate with
// (api-schemas.ts, through zod's own JSON Schema conversion), so the document cannot drift from
// what the server accepts.
import type { Hono } from "hono";
import { z } from "zod";
import { resourceName } from "../config/schemas.ts";
import { API_OPERATIONS, operationScope, type Answer, type Operation, type ProblemStatus } from "./api-catalog.ts";
import { COMPONENT_SCHEMAS, type ComponentName } from "./api-schemas.ts";
import { MAX_ADMIN_BODY_BYTES } from "./body.ts";
import type { AdminDeps, AdminEnv } from "./deps.ts";

type Json = Record<string, unknown>;

export const OPENAPI_VERSION = "3.1.1";

/** JSON Schema (draft 2020-12, OpenAPI 3.1's dialect) of a zod schema, as a request (input) or an answer (output) sees it. */
export function toJsonSchema(schema: z.ZodType, io: "input" | "output"): Json {
  const out = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io,
    unrepresentable: "throw",
    override: ({ jsonSchema }) => {
      // zod names startsWith() a format of its own; the pattern beside it already says it.
      if (jsonSchema.format === "starts_with") delete jsonSchema.format;
    },
  }) as Json;
  delete out.$schema;
  return out;
}

const ref = (name: string, kind = "schemas"): Json => ({ $ref: `#/components/${kind}/${name}` });
const problemContent = { "application/problem+json": { schema: ref("Problem") } };

const EXAMPLES: Partial<Record<ComponentName, unknown>> = {
  Cluster: {
    endpoint: "https://gw.east.example:4143",
    trustDomain: "east.example",
    bundle: { url: "https://spire.east.example/bundle.json" },
    metrics: { remoteWrite: { url: "https://prom.east.example/api/v1/write" } },
    health: { path: "/ready", interval: "3s", timeout: "1s" },
  },
  Route: {
    hostnames: ["checkout.shop"],
    authorization: { identities: ["spiffe://east.example/ns/shop/sa/web"] },
    rules: [
      {
        name: "default",
        matches: [{ path: { type: "PathPrefix", value: "/" } }],
        backendRefs: [
          { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080, weight: 90 },
          { cluster: "west", service: "checkout.shop.svc.cluster.local", port: 8080, weight: 10 },
        ],
        timeouts: { request: "2s", backendRequest: "800ms" },
        retry: { attempts: 2, codes: [502, 503, 504], backoff: "25ms" },
        sessionPersistence: { key: [{ header: "x-user-id" }, { cookie: "uid" }, { jwtClaim: "sub" }] },
      },
    ],
  },
  Rollout: {
    name: "checkout-v2",
    route: "checkout",
    rule: "default",
    stable: { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 },
    canary: { cluster: "west", service: "checkout-v2.shop.svc.cluster.local", port: 8080 },
    steps: [{ setWeight: 5 }, { pause: { duration: "30s" } }, { setWeight: 25 }, { pause: {} }, { setWeight: 100 }],
    analysis: { interval: "10s", threshold: 2, minRequests: 20, successRate: { min: 0.99 }, latencyP99Ms: { max: 500 }, onNoData: "hold" },
  },
  RollbackRequest: { toRevision: 3 },
  PromoteRequest: { full: true },
};

/** The request-body examples the document carries (each is valid: the tests check it). */
export const REQUEST_EXAMPLES: Readonly<Partial<Record<ComponentName, unknown>>> = EXAMPLES;

const PROBLEM_TITLES: Record<ProblemStatus, string> = {
  400: "Invalid request",
  404: "Not found",
  409: "Conflict",
  412: "Precondition failed",
  503: "Store unavailable",
};

function answer(op: Operation, a: Answer): Json {
  const headers: Json = {};
  if (a.etag) headers.ETag = ref("ETag", "headers");
  if (op.admin) headers["Cache-Control"] = ref("CacheControlNoStore", "headers");
  if (op.operationId === "jwks") headers["Cache-Control"] = { description: "public, max-age=60", schema: { type: "string" } };
  const out: Json = { description: a.description };
  if (Object.keys(headers).length > 0) out.headers = headers;
  if (a.body === "prometheus-text") out.content = { "text/plain": { schema: { type: "string", description: "Prometheus text exposition format 0.0.4" } } };
  else if (a.body === "openapi") out.content = { "application/json": { schema: { type: "object", required: ["openapi", "info", "paths"], description: "an OpenAPI 3.1 document" } } };
  else if (a.body) out.content = { "application/json": { schema: ref(a.body) } };
  return out;
}

function problemAnswer(status: ProblemStatus, description: string): Json {
  const headers: Json = {};
  if (status === 412) headers.ETag = ref("ETag", "headers");
  if (status === 503) headers["Retry-After"] = ref("RetryAfter", "headers");
  return { description: `${PROBLEM_TITLES[status]}: ${description}`, ...(Object.keys(headers).length > 0 ? { headers } : {}), content: problemContent };
}

function operationObject(op: Operation): Json {
  const scope = operationScope(op);
  const parameters: Json[] = [];
  for (const [, param] of op.path.matchAll(/\{([^}]+)\}/g)) {
    const what = op.tag === "clusters" ? "cluster" : op.tag === "routes" ? "route" : "rollout";
    parameters.push({ name: param, in: "path", required: true, description: `the ${what}'s name (a DNS label)`, schema: toJsonSchema(resourceName, "input") });
  }
  for (const q of op.query ?? []) {
    const schema: Json = { type: "string", ...q.schema };
    parameters.push({
      name: q.name,
      in: "query",
      required: q.required ?? false,
      description: q.description,
      ...(q.array ? { schema: { type: "array", items: schema }, style: "form", explode: true } : { schema }),
    });
  }
  for (const h of op.preconditions ?? []) parameters.push(ref(h === "If-Match" ? "IfMatch" : "IfNoneMatch", "parameters"));

  const responses: Json = {};
  for (const [status, a] of Object.entries(op.answers)) responses[status] = answer(op, a);
  const problems: Array<[ProblemStatus, string]> = Object.entries(op.problems).map(([s, d]) => [Number(s) as ProblemStatus, d]);
  for (const [status, description] of problems) responses[String(status)] = problemAnswer(status, description);
  if (op.admin) {
    responses["401"] = ref("Unauthorized", "responses");
    responses["403"] = { description: `Forbidden: the admin JWT lacks the scope ${scope}`, content: problemContent };
  }

  const out: Json = {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
  };
  if (op.body) {
    const example = EXAMPLES[op.body.schema];
    out.requestBody = {
      required: op.body.required,
      description: `${op.body.description ? `${op.body.description}. ` : ""}JSON (\`application/json\` or \`application/*+json\`), UTF-8, at most ${MAX_ADMIN_BODY_BYTES} bytes.`,
      content: { "application/json": { schema: ref(op.body.schema), ...(example !== undefined ? { examples: { example: { value: example } } } : {}) } },
    };
  }
  out.responses = responses;
  out.security = scope ? [{ adminBearer: [scope] }] : [];
  return out;
}

function buildDocument(): Json {
  const paths: Record<string, Json> = {};
  for (const op of API_OPERATIONS) (paths[op.path] ??= {})[op.method] = operationObject(op);
  const schemas: Json = {};
  for (const [name, c] of Object.entries(COMPONENT_SCHEMAS)) schemas[name] = toJsonSchema(c.schema, c.io);

  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: "isthmus admin API",
      version: "1",
      summary: "Clusters, routes, canary rollouts and diagnostics of an isthmus multi-cluster mesh gateway.",
      description:
        "Every call under /_isthmus/v1 needs `Authorization: Bearer <ISTHMUS_ADMIN_TOKEN>` (or an admin JWT carrying the scope named on the operation). " +
        "Errors are RFC 9457 `application/problem+json`; invalid input is a 400 whose `errors` lists every problem with its field path, and nothing is written.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    tags: [
      { name: "clusters", description: "Kubernetes clusters the gateway bridges: endpoint, trust domain, trust bundle, metrics federation, health probe" },
      { name: "routes", description: "Weighted cross-cluster routes (Gateway API HTTPRoute vocabulary), versioned, with ETag/If-Match and rollback" },
      { name: "rollouts", description: "Canary rollouts judged by the gateway's own metrics" },
      { name: "diagnostics", description: "Routing explanations, metrics and this document" },
      { name: "health", description: "Unauthenticated liveness and readiness" },
      { name: "keys", description: "Unauthenticated: the gateway's public signing keys" },
    ],
    paths,
    components: {
      schemas,
      parameters: {
        IfMatch: {
          name: "If-Match",
          in: "header",
          required: false,
          description: 'Write only if the route is at this revision (`"3"`), or only if it exists (`*`). A weak or malformed tag is a 400.',
          schema: { type: "string", pattern: '^(\\*|"[1-9][0-9]{0,14}")$' },
        },
        IfNoneMatch: {
          name: "If-None-Match",
          in: "header",
          required: false,
          description: "`*`: create only (412 if the route exists).",
          schema: { type: "string", const: "*" },
        },
      },
      headers: {
        ETag: { description: 'The route\'s revision as a strong tag: `"<revision>"`', schema: { type: "string", pattern: '^"[0-9]+"$' } },
        RetryAfter: { description: "Seconds to wait before retrying", schema: { type: "integer" } },
        CacheControlNoStore: { description: "Admin answers are never cached: `no-store`", schema: { type: "string" } },
        WWWAuthenticate: { description: 'Bearer realm="isthmus-admin"', schema: { type: "string" } },
      },
      responses: {
        Unauthorized: {
          description: "Unauthorized: no admin credentials, malformed or wrong ones, or no admin token configured on the gateway",
          headers: { "WWW-Authenticate": ref("WWWAuthenticate", "headers") },
          content: problemContent,
        },
      },
      securitySchemes: {
        adminBearer: {
          type: "http",
          scheme: "bearer",
          description:
            "The admin token (ISTHMUS_ADMIN_TOKEN, or the Secrets Manager secret named by ISTHMUS_ADMIN_TOKEN_SECRET_ID), which may do everything; " +
            "or an admin JWT from the configured OIDC issuer whose scopes (isthmus:read, isthmus:write, isthmus:rollout) must include the one the operation lists.",
        },
      },
    },
  };
}

let cached: Json | null = null;

/** The OpenAPI document of the admin API (built once). */
export function openApiDocument(): Json {
  cached ??= buildDocument();
  return cached;
}

export function registerOpenApiRoute(app: Hono<AdminEnv>, _deps: AdminDeps): void {
  app.get("/openapi.json", (c) => c.json(openApiDocument()));
}
