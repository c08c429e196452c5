// What every command receives, and the shapes of the admin API it reads.
import type { Flags, FlagName } from "./args.ts";
import type { Client } from "./client.ts";
import type { Output } from "./output.ts";
import type { ProbeState } from "../telemetry/health-probes.ts";

export interface Ctx {
  client: Client;
  out: Output;
  flags: Flags;
  /** Positional arguments after the command words. */
  args: string[];
}

export interface Command {
  /** The command words, e.g. ["rollout", "get"]. */
  path: string[];
  /** Positional arguments, e.g. ["NAME"]; a trailing "?" makes one optional. */
  args: string[];
  /** Flags beyond the global ones. */
  flags: FlagName[];
  summary: string;
  /** What follows the command words in the usage line, when more than its arguments (e.g. "-f FILE [--dry-run]"). */
  synopsis?: string;
  /** Extra help text. */
  help?: string;
  /** Exit code: 0 ok, 1 a failed check or operation. */
  run(ctx: Ctx): Promise<number>;
}

/** The probe state as GET /clusters reports it (status.health). */
export type ProbeStatus = ProbeState;

export interface BackendRef {
  cluster: string;
  service: string;
  port?: number;
  weight: number;
  failover?: string[];
}

export interface RouteRule {
  name?: string;
  matches: Array<{ path?: { type: string; value: string }; method?: string; headers?: Array<{ name: string; value: string }>; queryParams?: Array<{ name: string; value: string }> }>;
  backendRefs: BackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { attempts?: number; codes?: number[]; backoff?: string };
  sessionPersistence?: { key: Array<Record<string, string>> };
}

export interface RouteView {
  name: string;
  revision: number;
  updatedAt: string;
  hostnames: string[];
  authorization?: { unauthenticated?: true; identities?: string[] };
  rules: RouteRule[];
}

export interface ClusterView {
  name: string;
  endpoint: string;
  trustDomain: string;
  bundle?: { jwks?: { keys: Array<Record<string, unknown>> }; url?: string; secretId?: string; kubernetes?: { issuer: string; jwks?: { keys: Array<Record<string, unknown>> }; url?: string } };
  metrics?: unknown;
  health?: { path?: string; interval?: string; timeout?: string };
  updatedAt: string;
  status?: { health: ProbeStatus | null };
}

export type Phase = "Progressing" | "Paused" | "Succeeded" | "Failed" | "Aborted";

export interface AnalysisWindowView {
  requests: number;
  failures: number;
  successRate: number | null;
  latencyP99Ms: number | null;
}

export interface RolloutView {
  name: string;
  spec: {
    name: string;
    route: string;
    rule: string;
    stable: { cluster: string; service: string; port?: number };
    canary: { cluster: string; service: string; port?: number };
    steps: Array<{ setWeight: number } | { pause: { duration?: string } }>;
    analysis?: { interval: string; threshold: number; minRequests: number; successRate?: { min: number }; latencyP99Ms?: { max: number }; onNoData: string };
  };
  status: {
    phase: Phase;
    step: number;
    canaryWeight: number;
    message: string;
    failedChecks: number;
    lastAnalysis: { at: string; verdict: string; canary: AnalysisWindowView; stable: AnalysisWindowView; reasons: string[] } | null;
    nextAnalysisAt: string | null;
    routeRevision: number;
    pausedBy: string | null;
    weights: { stable: number; canary: number };
  };
  createdAt: string;
  updatedAt: string;
}

export const TERMINAL_PHASES: ReadonlySet<Phase> = new Set(["Succeeded", "Failed", "Aborted"]);

export const ruleName = (rule: RouteRule, index: number): string => rule.name ?? `rule-${index}`;
