// The admin API's route table, in one place: every endpoint the gateway serves outside the data
// plane, with what it takes and what it answers. The OpenAPI document (openapi.ts) is built from it,
// and test/integration/openapi.test.ts compares it with the routes the app really registers, both ways.
import type { ComponentName } from "./api-schemas.ts";
import { scopeFor, type AdminScope } from "./auth.ts";

export const ADMIN_PREFIX = "/_isthmus/v1";

export type HttpMethod = "get" | "put" | "post" | "delete";
export type Tag = "clusters" | "routes" | "rollouts" | "diagnostics" | "health" | "keys";

/** Problem+json answers an operation can give besides 401 and 403 (which every admin call can give). */
export type ProblemStatus = 400 | 404 | 409 | 412 | 503;

export interface Answer {
  description: string;
  /** A component schema (application/json), Prometheus text, or the OpenAPI document itself. */
  body?: ComponentName | "prometheus-text" | "openapi";
  /** The answer carries `ETag: "<revision>"`. */
  etag?: boolean;
}

export interface QueryParam {
  name: string;
  description: string;
  required?: boolean;
  /** Repeatable (`header=a:1&header=b:2`). */
  array?: boolean;
  schema?: { pattern?: string; enum?: readonly string[]; default?: string };
}

export interface Operation {
  method: HttpMethod;
  /** The full path as served, with `{param}` placeholders (OpenAPI style). */
  path: string;
  operationId: string;
  tag: Tag;
  summary: string;
  description?: string;
  /** Needs admin credentials (the admin token, or an admin JWT with the scope `scopeFor` gives). */
  admin: boolean;
  query?: QueryParam[];
  /** Conditional-request headers the operation honours. */
  preconditions?: ReadonlyArray<"If-Match" | "If-None-Match">;
  body?: { schema: ComponentName; required: boolean; description?: string };
  /** Answers other than problems: status -> what it carries. */
  answers: Record<number, Answer>;
  /** Problem answers (application/problem+json) and when they are given. */
  problems: Partial<Record<ProblemStatus, string>>;
}

const NAME_400 = "the name in the path is not a DNS label";
const STORE_503 = "the configuration store cannot be reached (Retry-After: 1); nothing was written";
const IF_MATCH_412 = "a precondition did not hold: the body has `currentRevision` and the route's current ETag";

const admin = (op: Omit<Operation, "admin" | "path"> & { path: string }): Operation => ({ ...op, path: `${ADMIN_PREFIX}${op.path}`, admin: true });

const rolloutVerb = (verb: "promote" | "pause" | "resume" | "abort" | "retry", summary: string, description: string): Operation =>
  admin({
    method: "post",
    path: `/rollouts/{name}/${verb}`,
    operationId: `${verb}Rollout`,
    tag: "rollouts",
    summary,
    description,
    ...(verb === "promote"
      ? { body: { schema: "PromoteRequest" as const, required: false, description: "optional: no body (or `Content-Length: 0`) is a one-step promote" } }
      : {}),
    answers: { 200: { description: "the rollout after the verb", body: "RolloutView" } },
    problems: {
      400: `${NAME_400}${verb === "promote" ? ", or the body is invalid" : ""}`,
      404: "no such rollout",
      409: "the verb does not fit the rollout's phase (the body says the phase)",
      503: STORE_503,
    },
  });

export const API_OPERATIONS: readonly Operation[] = [
  // ------------------------------------------------------------ clusters
  admin({
    method: "get",
    path: "/clusters",
    operationId: "listClusters",
    tag: "clusters",
    summary: "List clusters",
    description: "Every registered cluster, with the health probe as this instance sees it.",
    answers: { 200: { description: "the clusters", body: "ClusterList" } },
    problems: { 503: STORE_503 },
  }),
  admin({
    method: "get",
    path: "/clusters/{name}",
    operationId: "getCluster",
    tag: "clusters",
    summary: "Read a cluster",
    answers: { 200: { description: "the cluster", body: "ClusterView" } },
    problems: { 400: NAME_400, 404: "no such cluster", 503: STORE_503 },
  }),
  admin({
    method: "put",
    path: "/clusters/{name}",
    operationId: "putCluster",
    tag: "clusters",
    summary: "Create or replace a cluster",
    description: "A representation read with GET can be sent back as is: `updatedAt` and `status` are ignored, and `name` must match the path.",
    body: { schema: "Cluster", required: true },
    answers: { 200: { description: "replaced", body: "ClusterView" }, 201: { description: "created", body: "ClusterView" } },
    problems: {
      400: "the body is invalid: `errors` lists every problem with its path (also a wrong content type, bad JSON or a body over 1 MiB)",
      409: "another cluster has the same trust domain or Kubernetes issuer",
      503: STORE_503,
    },
  }),
  admin({
    method: "delete",
    path: "/clusters/{name}",
    operationId: "deleteCluster",
    tag: "clusters",
    summary: "Delete a cluster",
    answers: { 204: { description: "deleted" } },
    problems: { 400: NAME_400, 404: "no such cluster", 409: "routes still name the cluster as a backend (listed in `routes`)", 503: STORE_503 },
  }),

  // ------------------------------------------------------------ routes
  admin({
    method: "get",
    path: "/routes",
    operationId: "listRoutes",
    tag: "routes",
    summary: "List routes",
    answers: { 200: { description: "the routes", body: "RouteList" } },
    problems: { 503: STORE_503 },
  }),
  admin({
    method: "get",
    path: "/routes/{name}",
    operationId: "getRoute",
    tag: "routes",
    summary: "Read a route",
    answers: { 200: { description: "the route at its current revision", body: "RouteView", etag: true } },
    problems: { 400: NAME_400, 404: "no such route", 503: STORE_503 },
  }),
  admin({
    method: "put",
    path: "/routes/{name}",
    operationId: "putRoute",
    tag: "routes",
    summary: "Create or replace a route",
    description:
      "Every backend must name a registered cluster. Writing a spec equal to the current one makes no new revision. " +
      "A representation read with GET can be sent back as is: `revision` and `updatedAt` are ignored, and `name` must match the path.",
    preconditions: ["If-Match", "If-None-Match"],
    body: { schema: "Route", required: true },
    answers: {
      200: { description: "replaced (or unchanged: same revision)", body: "RouteView", etag: true },
      201: { description: "created", body: "RouteView", etag: true },
    },
    problems: {
      400: "the body, a precondition header or a backend's cluster is invalid: `errors` lists every problem with its path",
      412: IF_MATCH_412,
      503: STORE_503,
    },
  }),
  admin({
    method: "delete",
    path: "/routes/{name}",
    operationId: "deleteRoute",
    tag: "routes",
    summary: "Delete a route",
    description: "The delete is a revision of its own: revision numbers are never reused.",
    preconditions: ["If-Match"],
    answers: { 204: { description: "deleted" } },
    problems: { 400: `${NAME_400}, or If-Match is malformed`, 404: "no such route", 412: IF_MATCH_412, 503: STORE_503 },
  }),
  admin({
    method: "get",
    path: "/routes/{name}/revisions",
    operationId: "listRouteRevisions",
    tag: "routes",
    summary: "A route's revision history",
    description: "Newest first, the last 100 kept; also after the route is deleted.",
    answers: { 200: { description: "the revisions", body: "RevisionList" } },
    problems: { 400: NAME_400, 404: "the route never existed", 503: STORE_503 },
  }),
  admin({
    method: "post",
    path: "/routes/{name}/rollback",
    operationId: "rollbackRoute",
    tag: "routes",
    summary: "Roll a route back to an earlier revision",
    description: 'Writes a new revision equal to revision `toRevision` (`action: "rollback"`, `restoredFrom`).',
    preconditions: ["If-Match"],
    body: { schema: "RollbackRequest", required: true },
    answers: {
      200: { description: "the route at its new revision", body: "RouteView", etag: true },
      201: { description: "the route was deleted and is created again", body: "RouteView", etag: true },
    },
    problems: {
      400: "the body is invalid, the revision is a delete, or a backend's cluster is no longer registered",
      404: "the route has no such revision (never existed, or trimmed from history)",
      412: IF_MATCH_412,
      503: STORE_503,
    },
  }),

  // ------------------------------------------------------------ rollouts
  admin({
    method: "post",
    path: "/rollouts",
    operationId: "startRollout",
    tag: "rollouts",
    summary: "Start a canary rollout",
    description: "The rule must hold the stable backend; the canary is added at weight 0 if absent. One running rollout per route rule.",
    body: { schema: "Rollout", required: true },
    answers: { 201: { description: "started", body: "RolloutView" } },
    problems: {
      400: "the body is invalid, or does not fit the route (field paths in `errors`)",
      404: "the route does not exist",
      409: "a rollout of that name exists, or one runs on the rule",
      503: STORE_503,
    },
  }),
  admin({
    method: "get",
    path: "/rollouts",
    operationId: "listRollouts",
    tag: "rollouts",
    summary: "List rollouts",
    answers: { 200: { description: "the rollouts", body: "RolloutList" } },
    problems: { 503: STORE_503 },
  }),
  admin({
    method: "get",
    path: "/rollouts/{name}",
    operationId: "getRollout",
    tag: "rollouts",
    summary: "Read a rollout",
    description: "Phase, step, weights, message, failed checks and the last analysis with its numbers.",
    answers: { 200: { description: "the rollout", body: "RolloutView" } },
    problems: { 400: NAME_400, 404: "no such rollout", 503: STORE_503 },
  }),
  admin({
    method: "get",
    path: "/rollouts/{name}/events",
    operationId: "listRolloutEvents",
    tag: "rollouts",
    summary: "A rollout's audit trail",
    answers: { 200: { description: "the events, oldest first", body: "RolloutEventList" } },
    problems: { 400: NAME_400, 404: "no such rollout", 503: STORE_503 },
  }),
  rolloutVerb("promote", "Promote a rollout", 'Moves to the next step, or with `{"full": true}` straight to 100.'),
  rolloutVerb("pause", "Pause a rollout", "Holds the rollout at its current weight."),
  rolloutVerb("resume", "Resume a rollout", "Continues a paused rollout (resuming a `pause: {}` step moves past it)."),
  rolloutVerb("abort", "Abort a rollout", "Sets the canary's weight to 0 at once; phase `Aborted`."),
  rolloutVerb("retry", "Retry a rollout", "After `Failed` or `Aborted`, starts again from step 0."),

  // ------------------------------------------------------------ diagnostics
  admin({
    method: "get",
    path: "/explain",
    operationId: "explain",
    tag: "diagnostics",
    summary: "Explain how a request would be routed",
    description: "Answers from the live routing table: no store round trip, no request sent.",
    query: [
      { name: "host", required: true, description: "the request's Host" },
      { name: "path", description: "the request's path (and query)", schema: { pattern: "^/", default: "/" } },
      { name: "method", description: "the request's method", schema: { default: "GET" } },
      { name: "header", array: true, description: 'a request header as "name:value"; repeatable' },
    ],
    answers: { 200: { description: "the routing decision and why", body: "Explanation" } },
    problems: { 400: "`host` is missing, `path` does not start with '/', or a `header` is not name:value (`query.*` paths)" },
  }),
  admin({
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    tag: "diagnostics",
    summary: "Prometheus metrics (fleet-wide)",
    description: "Prometheus text format 0.0.4: the fleet's cumulative counters plus this instance's probe gauges, or with `cluster` only the series that cluster took part in.",
    query: [{ name: "cluster", description: "keep only the series where this cluster is the source, the destination or the probe target", schema: { pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" } }],
    answers: { 200: { description: "the metrics", body: "prometheus-text" } },
    problems: { 400: "`cluster` is not a cluster name", 404: "no such cluster (or metrics are disabled)", 503: STORE_503 },
  }),
  admin({
    method: "get",
    path: "/bundles",
    operationId: "listBundles",
    tag: "diagnostics",
    summary: "Trust bundles as this instance holds them",
    description: "Each cluster's JWT-SVID bundle and Kubernetes issuer keys: loaded or not, how many keys, when fetched and next refreshed, the last error.",
    answers: { 200: { description: "the bundles", body: "BundleStatusList" } },
    problems: { 404: "identity is not configured on this gateway" },
  }),
  admin({
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    tag: "diagnostics",
    summary: "This document",
    description: "The OpenAPI 3.1 document of the admin API, generated from the schemas the server validates with.",
    answers: { 200: { description: "the OpenAPI document", body: "openapi" } },
    problems: {},
  }),

  // ------------------------------------------------------------ unauthenticated
  {
    method: "get",
    path: "/_isthmus/healthz",
    operationId: "healthz",
    tag: "health",
    summary: "Liveness",
    description: "200 while the process runs. Use it for load-balancer liveness.",
    admin: false,
    answers: { 200: { description: "alive", body: "Health" } },
    problems: {},
  },
  {
    method: "get",
    path: "/_isthmus/readyz",
    operationId: "readyz",
    tag: "health",
    summary: "Readiness",
    description:
      "200 when a routing table is loaded and the store is reachable, else 503. While the store is away the data plane keeps serving the last good table: readiness failing then is information, not a reason to drain.",
    admin: false,
    answers: { 200: { description: "ready", body: "Readiness" }, 503: { description: "not ready (the body says why)", body: "Readiness" } },
    problems: {},
  },
  {
    method: "get",
    path: "/.well-known/jwks.json",
    operationId: "jwks",
    tag: "keys",
    summary: "The gateway's public signing keys",
    description: "Current and previous: destinations verify the gateway-signed tokens with them. Cacheable for 60 s.",
    admin: false,
    answers: { 200: { description: "the JWK set", body: "JWKS" } },
    problems: { 404: "workload identity is not configured on this gateway" },
  },
];

/** The admin scope an operation needs, or null for the unauthenticated endpoints. */
export const operationScope = (op: Operation): AdminScope | null => (op.admin ? scopeFor(op.method.toUpperCase(), op.path) : null);

/** `GET /_isthmus/v1/routes/:name`: method and path the way Hono registers them. */
export const routeKey = (method: string, path: string): string => `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ":$1")}`;
