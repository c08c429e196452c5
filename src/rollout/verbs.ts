// The operator's verbs (Argo Rollouts' promote / pause / resume / abort / retry), each one atomic
// transition. A verb that does not fit the phase is a conflict (409).
import { PreconditionFailedError, RolloutConflictError, type Store } from "../store/types.ts";
import type { RolloutEvent, RolloutRecord, RolloutStatus } from "./schema.ts";
import { claimRule } from "./rule-claim.ts";
import { withCanaryWeight } from "./weights.ts";

export type Verb = "promote" | "pause" | "resume" | "abort" | "retry";

export class VerbConflictError extends Error {
  constructor(
    readonly verb: Verb,
    readonly phase: string,
  ) {
    super(`cannot ${verb} a rollout that is ${phase}`);
    this.name = "VerbConflictError";
  }
}

export function initialStatus(now: Date, canaryWeight: number, routeRevision: number): RolloutStatus {
  return {
    phase: "Progressing",
    step: 0,
    canaryWeight,
    stepStartedAt: now.toISOString(),
    stepApplied: false,
    message: "starting",
    failedChecks: 0,
    passedSinceStep: 0,
    lastAnalysis: null,
    nextAnalysisAt: null,
    checkpoint: null,
    fastCheckpoint: null,
    gates: {},
    routeRevision,
    pausedBy: null,
  };
}

/** Applies a verb, retrying a few times when the controller moves the rollout at the same moment. */
export async function applyVerb(
  store: Store,
  name: string,
  verb: Verb,
  actor: string,
  opts: { full?: boolean },
  now: () => Date,
  afterRouteWrite?: () => Promise<void>,
  onEvents?: (r: RolloutRecord, events: RolloutEvent[]) => void,
): Promise<RolloutRecord | null> {
  for (let i = 0; i < 5; i++) {
    const r = await store.getRollout(name);
    if (!r) return null;
    try {
      // Retrying takes the rule back: another rollout may have started on it since.
      if (verb === "retry" && (r.status.phase === "Failed" || r.status.phase === "Aborted")) await claimRule(store, r.spec.route, r.spec.rule, r.name);
      const out = await once(store, r, verb, actor, opts, now());
      if (out.wroteRoute) await afterRouteWrite?.();
      onEvents?.(out.record, out.events);
      return out.record;
    } catch (err) {
      if (err instanceof RolloutConflictError || err instanceof PreconditionFailedError) continue;
      throw err;
    }
  }
  throw new RolloutConflictError(name);
}

async function once(store: Store, r: RolloutRecord, verb: Verb, actor: string, opts: { full?: boolean }, now: Date): Promise<{ record: RolloutRecord; wroteRoute: boolean; events: RolloutEvent[] }> {
  const s: RolloutStatus = structuredClone(r.status);
  const phase = s.phase;
  const events: RolloutEvent[] = [];
  // Events of a verb that writes the route get that write's revision (filled in by the store).
  const event = (type: string, message: string) => events.push({ at: now.toISOString(), actor, type, message, phase: s.phase, step: s.step, canaryWeight: s.canaryWeight });
  let weight: number | null = null;
  switch (verb) {
    case "pause":
      if (phase !== "Progressing") throw new VerbConflictError(verb, phase);
      s.phase = "Paused";
      s.pausedBy = "user";
      s.message = `paused by ${actor}`;
      event("Paused", s.message);
      break;
    case "resume":
      if (phase !== "Paused") throw new VerbConflictError(verb, phase);
      s.phase = "Progressing";
      // Resuming a pause step moves past it, as a promote would; a user pause continues where it was.
      if (s.pausedBy === "step") {
        s.step += 1;
        s.stepApplied = false;
        s.passedSinceStep = 0;
      }
      s.pausedBy = null;
      s.stepStartedAt = now.toISOString();
      s.message = `resumed by ${actor}`;
      event("Resumed", s.message);
      break;
    case "promote":
      if (phase !== "Progressing" && phase !== "Paused") throw new VerbConflictError(verb, phase);
      s.phase = "Progressing";
      s.pausedBy = null;
      if (opts.full) {
        s.phase = "Succeeded";
        s.canaryWeight = 100;
        s.step = r.spec.steps.length;
        s.message = `promoted fully by ${actor}`;
        weight = 100;
        event("Succeeded", s.message);
      } else {
        s.step += 1;
        s.stepApplied = false;
        s.passedSinceStep = 0;
        s.stepStartedAt = now.toISOString();
        s.message = `promoted to step ${s.step + 1} by ${actor}`;
        event("Promoted", s.message);
      }
      break;
    case "abort":
      if (phase !== "Progressing" && phase !== "Paused") throw new VerbConflictError(verb, phase);
      s.phase = "Aborted";
      s.canaryWeight = 0;
      s.pausedBy = null;
      s.message = `aborted by ${actor}`;
      weight = 0;
      event("Aborted", `${s.message}; canary weight set to 0`);
      break;
    case "retry":
      if (phase !== "Failed" && phase !== "Aborted") throw new VerbConflictError(verb, phase);
      Object.assign(s, initialStatus(now, 0, s.routeRevision));
      s.message = `retried by ${actor}`;
      event("Retried", s.message);
      break;
  }
  const next: RolloutRecord = { ...r, status: s, updatedAt: now.toISOString() };
  if (weight === null) return { record: await store.updateRollout(r.name, r.version, next, events), wroteRoute: false, events };
  const route = await store.getRoute(r.spec.route);
  if (!route) return { record: await store.updateRollout(r.name, r.version, next, events), wroteRoute: false, events };
  const record = await store.updateRollout(r.name, r.version, next, events, { spec: withCanaryWeight(route.spec, r.spec, weight), ifMatch: route.revision, actor: `${actor} (rollout ${r.name})` });
  return { record, wroteRoute: true, events };
}
