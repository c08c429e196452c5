// The Rollout resource (SPEC.md "Rollout"): Argo-style steps, Flagger-style analysis and webhooks.
import { z } from "zod";
import { parseDuration } from "../config/duration.ts";
import { DURATION_JSON_SCHEMA, resourceName } from "../config/schemas.ts";

const duration = z
  .string()
  .refine((s) => parseDuration(s) !== undefined, 'must be a duration such as "30s"')
  .meta({ ...DURATION_JSON_SCHEMA, description: 'a duration such as "30s" or "1m30s"' });
const backend = z.strictObject({
  cluster: resourceName,
  service: z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, "must be a DNS name"),
  port: z.int("must be an integer").min(1).max(65535).optional(),
});

const step = z.union(
  [
    z.strictObject({ setWeight: z.int("must be an integer").min(0, "must be 0..100").max(100, "must be 0..100") }),
    z.strictObject({ pause: z.strictObject({ duration: duration.optional() }) }),
  ],
  { error: 'a step is {"setWeight": 0..100} or {"pause": {"duration"?: "30s"}}' },
);

export const WEBHOOK_TYPES = ["confirm-rollout", "pre-rollout", "confirm-promotion", "rollback", "event"] as const;

export const rolloutSchema = z
  .strictObject({
    name: resourceName,
    route: resourceName,
    rule: resourceName,
    stable: backend,
    canary: backend,
    steps: z.array(step).min(1, "at least one step").max(64),
    analysis: z
      .strictObject({
        interval: duration.default("10s"),
        threshold: z.int().min(1).max(100).default(2),
        minRequests: z.int().min(0).max(1_000_000).default(20),
        successRate: z.strictObject({ min: z.number().min(0).max(1) }).optional(),
        latencyP99Ms: z.strictObject({ max: z.number().positive().max(600_000) }).optional(),
        /** Compare the canary with the stable backend over the same window. */
        compareWithStable: z
          .strictObject({
            maxSuccessRateDrop: z.number().min(0).max(1).optional(),
            maxLatencyP99Ratio: z.number().min(1).max(100).optional(),
          })
          .optional(),
        onNoData: z.enum(["hold", "pass", "fail"]).default("hold"),
      })
      .optional(),
    /** Fail at once, without waiting interval x threshold, when the canary's error rate passes a bound. */
    fastAbort: z
      .strictObject({
        errorRate: z.number().gt(0).max(1),
        window: duration.default("10s"),
        minRequests: z.int().min(1).max(1_000_000).default(10),
      })
      .optional(),
    /** Requests carrying this header value go to the canary whatever the weight (for testers). */
    headerOverride: z.strictObject({ name: z.string().min(1).max(256).regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/), value: z.string().min(1).max(1024) }).optional(),
    webhooks: z
      .array(
        z.strictObject({
          name: z.string().min(1).max(63).optional(),
          type: z.enum(WEBHOOK_TYPES),
          url: z.string().url().max(2048).refine((u) => /^https?:/.test(u), "must be http(s)"),
          timeout: duration.default("10s"),
          metadata: z.record(z.string(), z.string()).optional(),
        }),
      )
      .max(16)
      .optional(),
  })
  .check((ctx) => {
    const v = ctx.value;
    if (v.stable.cluster === v.canary.cluster && v.stable.service === v.canary.service && v.stable.port === v.canary.port)
      ctx.issues.push({ code: "custom", continue: true, input: v, path: ["canary"], message: "must differ from stable" });
    if (!v.steps.some((s) => "setWeight" in s)) ctx.issues.push({ code: "custom", continue: true, input: v, path: ["steps"], message: "needs at least one setWeight step" });
  });

export type RolloutSpec = z.output<typeof rolloutSchema>;
export type RolloutStep = RolloutSpec["steps"][number];
export type WebhookType = (typeof WEBHOOK_TYPES)[number];

export type RolloutPhase = "Progressing" | "Paused" | "Succeeded" | "Failed" | "Aborted";

export interface AnalysisWindow {
  requests: number;
  failures: number;
  successRate: number | null;
  latencyP99Ms: number | null;
}

export interface AnalysisResult {
  at: string;
  verdict: "pass" | "fail" | "nodata";
  canary: AnalysisWindow;
  stable: AnalysisWindow;
  reasons: string[];
}

/** Cumulative counters of one backend at a moment: requests, failures, latency bucket counts. */
export interface Counters {
  requests: number;
  failures: number;
  buckets: number[];
}

export interface RolloutStatus {
  phase: RolloutPhase;
  /** Index of the current step; steps.length once every step is done. */
  step: number;
  canaryWeight: number;
  stepStartedAt: string;
  /** Set when a step's weight has been written. */
  stepApplied: boolean;
  message: string;
  failedChecks: number;
  /** Analyses that passed since the current step started. */
  passedSinceStep: number;
  lastAnalysis: AnalysisResult | null;
  nextAnalysisAt: string | null;
  /** Counters at the start of the current analysis window. */
  checkpoint: { at: string; canary: Counters; stable: Counters } | null;
  /** Canary counters at the start of the current fast-abort window (it rolls every `fastAbort.window`). */
  fastCheckpoint?: { at: string; canary: Counters } | null;
  /** Gates already confirmed (webhook type -> step). */
  gates: Record<string, number>;
  routeRevision: number;
  /** Set by a pause verb; a pause step pauses without it. */
  pausedBy: "user" | "step" | "gate" | null;
}

export interface RolloutRecord {
  name: string;
  spec: RolloutSpec;
  status: RolloutStatus;
  /** Compare-and-set version: every write moves it, so concurrent controllers take a step once. */
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface RolloutEvent {
  at: string;
  actor: string;
  type: string;
  message: string;
  phase: RolloutPhase;
  step: number;
  canaryWeight: number;
  routeRevision?: number;
}
