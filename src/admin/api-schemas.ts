// The bodies of the admin API as zod schemas, for its OpenAPI document (GET /_isthmus/v1/openapi.json).
// Request bodies are the very schemas the handlers validate with (clusterSchema, routeSchema,
// rolloutSchema, the rollback and promote bodies), extended only by the read-only fields a client
// may send back as it got them. Responses are described here: the server builds them from the
// stored records, and test/integration/openapi.test.ts checks real answers against these shapes.
import { z } from "zod";
import { clusterSchema, resourceName, routeSchema } from "../config/schemas.ts";
import { rolloutSchema } from "../rollout/schema.ts";
import { promoteRequestSchema } from "./rollouts.ts";
import { rollbackRequestSchema } from "./routes.ts";

const timestamp = z.string().meta({ format: "date-time", description: "RFC 3339 time (UTC)" });
const readOnly = (description: string) => z.unknown().optional().meta({ readOnly: true, description: `${description}; ignored when sent` });
const nameInBody = resourceName.optional().meta({ description: "may be sent (as read with GET); must then equal the name in the path" });

// ---------------------------------------------------------------- errors

export const fieldErrorSchema = z.strictObject({
  path: z.string().meta({ description: 'where the problem is: "rules[0].backendRefs[1].weight", "body", "headers.if-match", "query.host"' }),
  message: z.string(),
});

export const problemSchema = z
  .looseObject({
    type: z.string().meta({ description: 'urn:isthmus:problem:<kind> ("validation", "not-found", "conflict", "precondition-failed", "unauthorized", "forbidden", "store-unavailable", ...)' }),
    title: z.string(),
    status: z.int(),
    detail: z.string().optional(),
    errors: z.array(fieldErrorSchema).optional().meta({ description: "every problem found with the request (400), or the conflicting field (409)" }),
    currentRevision: z.int().optional().meta({ description: "412: the route's current revision (0: it does not exist)" }),
    routes: z.array(z.string()).optional().meta({ description: "409 on a cluster delete: the routes that still name the cluster" }),
    phase: z.string().optional().meta({ description: "409 on a rollout verb: the rollout's phase" }),
  })
  .meta({ description: "RFC 9457 problem details" });

// ---------------------------------------------------------------- clusters

const probeStateSchema = z.strictObject({
  alive: z.boolean().nullable().meta({ description: "null until the first probe has answered" }),
  consecutiveFailures: z.int().min(0),
  lastProbeAt: timestamp.nullable(),
  lastSuccessAt: timestamp.nullable(),
  lastLatencyMs: z.number().nullable(),
  lastError: z.string().nullable(),
  url: z.string(),
});

export const clusterRequestSchema = clusterSchema.extend({
  name: nameInBody,
  updatedAt: readOnly("set by the gateway"),
  status: readOnly("set by the gateway"),
});

export const clusterViewSchema = clusterSchema.extend({
  name: resourceName,
  updatedAt: timestamp,
  status: z.strictObject({ health: probeStateSchema.nullable() }).optional().meta({ description: "the health probe as this instance sees it" }),
});

export const clusterListSchema = z.strictObject({ items: z.array(clusterViewSchema) });

// ---------------------------------------------------------------- routes

export const routeRequestSchema = routeSchema.safeExtend({
  name: nameInBody,
  revision: readOnly("set by the gateway"),
  updatedAt: readOnly("set by the gateway"),
});

export const routeViewSchema = routeSchema.safeExtend({
  name: resourceName,
  revision: z.int().min(1).meta({ description: "monotonic per route, never reused; also the ETag" }),
  updatedAt: timestamp,
});

export const routeListSchema = z.strictObject({ items: z.array(routeViewSchema) });

export const revisionListSchema = z.strictObject({
  name: resourceName,
  items: z
    .array(
      z.strictObject({
        revision: z.int().min(1),
        action: z.enum(["create", "update", "rollback", "delete"]),
        at: timestamp,
        actor: z.string().meta({ description: '"admin-token", "oidc:<sub>", "config" or "rollout:<name>"' }),
        spec: routeSchema.optional().meta({ description: "the route as of this revision; absent for a delete" }),
        restoredFrom: z.int().min(1).optional().meta({ description: "for a rollback: the revision restored" }),
      }),
    )
    .meta({ description: "newest first; the last 100 are kept" }),
});

export { rollbackRequestSchema, promoteRequestSchema };

// ---------------------------------------------------------------- rollouts

const PHASES = ["Progressing", "Paused", "Succeeded", "Failed", "Aborted"] as const;
const counters = z.strictObject({ requests: z.number(), failures: z.number(), buckets: z.array(z.number()) });
const analysisWindow = z.strictObject({ requests: z.number(), failures: z.number(), successRate: z.number().nullable(), latencyP99Ms: z.number().nullable() });

export const rolloutViewSchema = z.strictObject({
  name: resourceName,
  spec: rolloutSchema,
  status: z.strictObject({
    phase: z.enum(PHASES),
    step: z.int().min(0).meta({ description: "index of the current step; steps.length once every step is done" }),
    canaryWeight: z.number().min(0).max(100),
    stepStartedAt: timestamp,
    stepApplied: z.boolean(),
    message: z.string(),
    failedChecks: z.int().min(0),
    passedSinceStep: z.int().min(0),
    lastAnalysis: z
      .strictObject({ at: timestamp, verdict: z.enum(["pass", "fail", "nodata"]), canary: analysisWindow, stable: analysisWindow, reasons: z.array(z.string()) })
      .nullable(),
    nextAnalysisAt: timestamp.nullable(),
    checkpoint: z.null().meta({ description: "internal; always null here" }),
    fastCheckpoint: z.strictObject({ at: timestamp, canary: counters }).nullable().optional(),
    gates: z.record(z.string(), z.int()).meta({ description: "webhook gates already confirmed: type -> step" }),
    routeRevision: z.int().min(0),
    pausedBy: z.enum(["user", "step", "gate"]).nullable(),
    weights: z.strictObject({ stable: z.number(), canary: z.number() }),
  }),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export const rolloutListSchema = z.strictObject({ items: z.array(rolloutViewSchema) });

export const rolloutEventListSchema = z.strictObject({
  name: resourceName,
  items: z.array(
    z.strictObject({
      at: timestamp,
      actor: z.string(),
      type: z.string().meta({ description: "Created, WeightSet, Held, Paused, Resumed, Promoted, Aborted, Failed, Succeeded, ..." }),
      message: z.string(),
      phase: z.enum(PHASES),
      step: z.int().min(0),
      canaryWeight: z.number(),
      routeRevision: z.int().optional(),
    }),
  ),
});

// ---------------------------------------------------------------- explain, health, keys

const considered = z.strictObject({
  route: z.string(),
  rule: z.string(),
  match: z.int(),
  path: z.string().meta({ description: '"PathPrefix /cart"' }),
  method: z.string().nullable(),
  fits: z.boolean(),
  reason: z.string().optional().meta({ description: "why this match does not fit" }),
});

export const explanationSchema = z
  .strictObject({
    tableVersion: z.int(),
    request: z.strictObject({ host: z.string(), path: z.string(), query: z.string(), method: z.string() }),
    matched: z.boolean(),
    reason: z.string(),
    hostEntry: z.string().optional(),
    route: z.strictObject({ name: z.string(), revision: z.int() }).optional(),
    rule: z.strictObject({ name: z.string(), index: z.int(), match: z.int() }).optional(),
    backends: z
      .array(
        z.strictObject({
          cluster: z.string(),
          service: z.string(),
          port: z.int().nullable(),
          weight: z.int(),
          share: z.number().min(0).max(1),
          endpoint: z.string().nullable(),
          problem: z.string().optional(),
        }),
      )
      .optional(),
    sticky: z
      .union([
        z.strictObject({ key: z.null(), note: z.string() }),
        z.strictObject({ key: z.string(), bucket: z.int(), backend: z.string().nullable() }),
      ])
      .nullable()
      .optional(),
    timeouts: z.strictObject({ requestMs: z.number(), backendRequestMs: z.number() }).optional(),
    authorization: z.record(z.string(), z.unknown()).optional(),
    considered: z.array(considered).optional().meta({ description: "every match of the host entry in precedence order, up to the winner" }),
  })
  .meta({ description: "which route, rule and backends the request would get from the live routing table, and why" });

export const healthSchema = z.strictObject({ status: z.literal("ok") });

export const readinessSchema = z.strictObject({
  status: z.enum(["ready", "not-ready"]),
  store: z.strictObject({
    kind: z.enum(["memory", "redis"]),
    reachable: z.boolean(),
    lastOkAt: timestamp.nullable(),
    downSince: timestamp.nullable(),
    lastError: z.string().nullable(),
    reset: z.literal(true).optional(),
  }),
  routingTable: z.strictObject({
    loaded: z.boolean(),
    version: z.int(),
    builtAt: timestamp,
    routes: z.int().min(0),
    clusters: z.int().min(0),
    warnings: z.array(z.string()),
  }),
  note: z.string().optional(),
});

export const jwksSchema = z.strictObject({
  keys: z.array(z.looseObject({ kty: z.string(), kid: z.string(), alg: z.string().optional(), use: z.string().optional() })).min(1),
});

export const bundleStatusListSchema = z.strictObject({
  items: z.array(
    z.strictObject({
      cluster: z.string(),
      trustDomain: z.string(),
      kind: z.enum(["jwt-svid", "kubernetes"]),
      issuer: z.string().optional(),
      source: z.string(),
      loaded: z.boolean(),
      keys: z.int(),
      loadedAt: z.string().nullable(),
      nextRefreshAt: z.string().nullable(),
      lastError: z.string().nullable(),
      sequence: z.number().nullable(),
      fetches: z.int(),
    }),
  ),
});

/** The document's components: name -> schema, and whether it describes a request (input) or an answer (output). */
export const COMPONENT_SCHEMAS = {
  Problem: { schema: problemSchema, io: "output" },
  Cluster: { schema: clusterRequestSchema, io: "input" },
  ClusterView: { schema: clusterViewSchema, io: "output" },
  ClusterList: { schema: clusterListSchema, io: "output" },
  Route: { schema: routeRequestSchema, io: "input" },
  RouteView: { schema: routeViewSchema, io: "output" },
  RouteList: { schema: routeListSchema, io: "output" },
  RevisionList: { schema: revisionListSchema, io: "output" },
  RollbackRequest: { schema: rollbackRequestSchema, io: "input" },
  Rollout: { schema: rolloutSchema, io: "input" },
  RolloutView: { schema: rolloutViewSchema, io: "output" },
  RolloutList: { schema: rolloutListSchema, io: "output" },
  RolloutEventList: { schema: rolloutEventListSchema, io: "output" },
  PromoteRequest: { schema: promoteRequestSchema, io: "input" },
  Explanation: { schema: explanationSchema, io: "output" },
  Health: { schema: healthSchema, io: "output" },
  Readiness: { schema: readinessSchema, io: "output" },
  JWKS: { schema: jwksSchema, io: "output" },
  BundleStatusList: { schema: bundleStatusListSchema, io: "output" },
} as const satisfies Record<string, { schema: z.ZodType; io: "input" | "output" }>;

export type ComponentName = keyof typeof COMPONENT_SCHEMAS;
