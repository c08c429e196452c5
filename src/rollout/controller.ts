// Advances rollouts on a tick. One leader at a time (a store lease), and every transition is a
// compare-and-set on the rollout's version, atomic with the route revision it writes: two
// controllers, or a crashed one resuming, take each step exactly once.
import { parseDuration } from "../config/duration.ts";
import { PreconditionFailedError, RolloutConflictError, type Store } from "../store/types.ts";
import type { MetricBatch } from "../telemetry/metric-batch.ts";
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";
import { analyse, countersOf, delta, windowOf } from "./analysis.ts";
import type { RolloutEvent, RolloutRecord, RolloutStatus } from "./schema.ts";
import { callHooks, hasHook, notifyEvents, type FetchLike } from "./webhooks.ts";
import { withCanaryWeight } from "./weights.ts";

export interface ControllerDeps {
  store: Store;
  /** Fleet-wide metric totals (this instance's deltas flushed first). */
  totals: () => Promise<MetricBatch>;
  fetch: FetchLike;
  instanceId: string;
  log?: Logger;
  now?: () => Date;
  /** Called after the controller wrote a route, so the local table follows at once. */
  afterRouteWrite?: () => Promise<void>;
  leaseMs?: number;
}

const ACTIVE = new Set(["Progressing", "Paused"]);
const ACTOR = "controller";

export class RolloutController {
  private readonly log: Logger;
  ticks = 0;

  constructor(private readonly deps: ControllerDeps) {
    this.log = deps.log ?? silentLogger;
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** One pass over the active rollouts, if this instance holds the controller lease. */
  async tick(): Promise<void> {
    const { store } = this.deps;
    if (!(await store.tryLock("rollout-controller", this.deps.instanceId, this.deps.leaseMs ?? 10_000).catch(() => false))) return;
    this.ticks += 1;
    const active = (await store.listRollouts()).filter((r) => ACTIVE.has(r.status.phase));
    if (active.length === 0) return;
    const totals = await this.deps.totals();
    for (const r of active) {
      try {
        await this.advance(r, totals);
      } catch (err) {
        if (err instanceof RolloutConflictError || err instanceof PreconditionFailedError) continue; // someone else moved it: next tick re-reads
        this.log.warn("rollout tick failed", { rollout: r.name, error: errorMessage(err) });
      }
    }
  }

  /** Decides and writes at most one transition for `r`. */
  async advance(r: RolloutRecord, totals: MetricBatch): Promise<void> {
    if (r.status.phase !== "Progressing" && r.status.phase !== "Paused") return;
    // A paused rollout does not move forward, but a canary that breaks meanwhile still rolls back.
    const paused = r.status.phase === "Paused";
    const now = this.now();
    const spec = r.spec;
    const s: RolloutStatus = structuredClone(r.status);
    const events: RolloutEvent[] = [];
    const event = (type: string, message: string) => events.push({ at: now.toISOString(), actor: ACTOR, type, message, phase: s.phase, step: s.step, canaryWeight: s.canaryWeight, routeRevision: s.routeRevision });

    // Gates before any traffic moves.
    for (const gate of ["confirm-rollout", "pre-rollout"] as const) {
      if (!paused && s.step === 0 && !s.stepApplied && hasHook(r, gate) && s.gates[gate] === undefined) {
        const out = await callHooks(this.deps.fetch, r, gate);
        if (!out.ok) return this.hold(r, s, `waiting: ${out.detail}`);
        s.gates[gate] = 0;
        event("GatePassed", out.detail);
      }
    }
    if (hasHook(r, "rollback")) {
      const out = await callHooks(this.deps.fetch, r, "rollback");
      if (out.ok) return this.fail(r, s, events, "rollback webhook asked to roll back");
    }

    // Analysis, and the fast abort, from the fleet-wide counters.
    const canaryNow = countersOf(totals, r.name, "canary");
    const stableNow = countersOf(totals, r.name, "stable");
    if (!s.checkpoint) s.checkpoint = { at: now.toISOString(), canary: canaryNow, stable: stableNow };
    const windowCanary = delta(canaryNow, s.checkpoint.canary);
    if (spec.fastAbort) {
      // Its own short window, so earlier healthy traffic cannot dilute a canary that just broke.
      const fast = s.fastCheckpoint ?? { at: now.toISOString(), canary: canaryNow };
      const recent = delta(canaryNow, fast.canary);
      if (recent.requests >= spec.fastAbort.minRequests && recent.failures / recent.requests >= spec.fastAbort.errorRate) {
        const w = windowOf(recent);
        return this.fail(r, s, events, `fast abort: canary error rate ${(1 - (w.successRate ?? 1)).toFixed(3)} over ${recent.requests} requests is at or above ${spec.fastAbort.errorRate}`);
      }
      const windowMs = parseDuration(spec.fastAbort.window) ?? 10_000;
      s.fastCheckpoint = now.getTime() - Date.parse(fast.at) >= windowMs || !s.fastCheckpoint ? { at: now.toISOString(), canary: canaryNow } : fast;
    }
    const a = spec.analysis;
    if (a && (!s.nextAnalysisAt || now.getTime() >= Date.parse(s.nextAnalysisAt))) {
      if (s.nextAnalysisAt) {
        const result = analyse(a, windowCanary, delta(stableNow, s.checkpoint.stable), now);
        s.lastAnalysis = result;
        const verdict = result.verdict === "nodata" ? (a.onNoData === "hold" ? "hold" : a.onNoData) : result.verdict;
        if (verdict === "fail") {
          s.failedChecks += 1;
          event("AnalysisFailed", `${result.reasons.join("; ")} (${s.failedChecks}/${a.threshold})`);
          if (s.failedChecks >= a.threshold) {
            s.checkpoint = { at: now.toISOString(), canary: canaryNow, stable: stableNow };
            return this.fail(r, s, events, `analysis failed ${s.failedChecks} times: ${result.reasons.join("; ")}`);
          }
        } else if (verdict === "pass") {
          s.passedSinceStep += 1;
          event("AnalysisPassed", `success rate ${result.canary.successRate ?? "n/a"}, p99 ${result.canary.latencyP99Ms === null ? "n/a" : Math.round(result.canary.latencyP99Ms) + " ms"} over ${result.canary.requests} requests`);
        } else {
          s.message = `holding: ${result.reasons.join("; ")} (onNoData: hold)`;
          event("AnalysisHold", s.message);
        }
      }
      s.checkpoint = { at: now.toISOString(), canary: canaryNow, stable: stableNow };
      s.nextAnalysisAt = new Date(now.getTime() + (parseDuration(a.interval) ?? 10_000)).toISOString();
    }
    const analysed = !a || s.passedSinceStep > 0;
    if (paused) return this.save(r, s, events);

    // Steps.
    const step = spec.steps[s.step];
    if (!step) return this.succeed(r, s, events);
    if ("setWeight" in step) {
      if (!s.stepApplied) {
        if (step.setWeight === 100 && hasHook(r, "confirm-promotion") && s.gates["confirm-promotion"] !== s.step) {
          const out = await callHooks(this.deps.fetch, r, "confirm-promotion");
          if (!out.ok) return this.hold(r, s, `waiting: ${out.detail}`, events);
          s.gates["confirm-promotion"] = s.step;
        }
        s.canaryWeight = step.setWeight;
        s.stepApplied = true;
        s.stepStartedAt = now.toISOString();
        s.passedSinceStep = 0;
        // A new weight starts a new window: the next analysis judges only traffic at this weight.
        s.checkpoint = { at: now.toISOString(), canary: canaryNow, stable: stableNow };
        if (a) s.nextAnalysisAt = new Date(now.getTime() + (parseDuration(a.interval) ?? 10_000)).toISOString();
        s.message = `step ${s.step + 1}/${spec.steps.length}: canary weight ${step.setWeight}`;
        events.push({ at: now.toISOString(), actor: ACTOR, type: "WeightSet", message: `canary weight set to ${step.setWeight}`, phase: s.phase, step: s.step, canaryWeight: s.canaryWeight });
        return this.write(r, s, events, step.setWeight);
      }
      if (!analysed) return this.save(r, s, events);
      return this.nextStep(r, s, events, now);
    }
    // A pause.
    if (!s.stepApplied) {
      s.stepApplied = true;
      s.stepStartedAt = now.toISOString();
      s.passedSinceStep = 0;
      if (step.pause.duration === undefined) {
        s.phase = "Paused";
        s.pausedBy = "step";
        s.message = `step ${s.step + 1}/${spec.steps.length}: paused until promoted`;
        event("Paused", s.message);
        return this.save(r, s, events);
      }
      s.message = `step ${s.step + 1}/${spec.steps.length}: pause for ${step.pause.duration}`;
      event("PauseStarted", s.message);
      return this.save(r, s, events);
    }
    const elapsed = now.getTime() - Date.parse(s.stepStartedAt);
    if (elapsed < (parseDuration(step.pause.duration ?? "0s") ?? 0) || !analysed) return this.save(r, s, events);
    return this.nextStep(r, s, events, now);
  }

  private async nextStep(r: RolloutRecord, s: RolloutStatus, events: RolloutEvent[], now: Date): Promise<void> {
    s.step += 1;
    s.stepApplied = false;
    s.passedSinceStep = 0;
    s.stepStartedAt = now.toISOString();
    if (s.step >= r.spec.steps.length) return this.succeed(r, s, events);
    return this.save(r, s, events);
  }

  private async succeed(r: RolloutRecord, s: RolloutStatus, events: RolloutEvent[]): Promise<void> {
    if (s.canaryWeight !== 100 && hasHook(r, "confirm-promotion") && s.gates["confirm-promotion"] !== s.step) {
      const out = await callHooks(this.deps.fetch, r, "confirm-promotion");
      if (!out.ok) return this.hold(r, s, `waiting: ${out.detail}`, events);
    }
    s.phase = "Succeeded";
    s.canaryWeight = 100;
    s.message = "promoted: the canary takes all traffic";
    events.push({ at: this.now().toISOString(), actor: ACTOR, type: "Succeeded", message: s.message, phase: s.phase, step: s.step, canaryWeight: 100 });
    return this.write(r, s, events, 100);
  }

  private async fail(r: RolloutRecord, s: RolloutStatus, events: RolloutEvent[], why: string): Promise<void> {
    s.phase = "Failed";
    s.canaryWeight = 0;
    s.message = why;
    events.push({ at: this.now().toISOString(), actor: ACTOR, type: "Failed", message: `${why}; canary weight set to 0`, phase: s.phase, step: s.step, canaryWeight: 0 });
    return this.write(r, s, events, 0);
  }

  private async hold(r: RolloutRecord, s: RolloutStatus, message: string, events: RolloutEvent[] = []): Promise<void> {
    if (s.message === message && events.length === 0) return;
    s.message = message;
    events.push({ at: this.now().toISOString(), actor: ACTOR, type: "Held", message, phase: s.phase, step: s.step, canaryWeight: s.canaryWeight, routeRevision: s.routeRevision });
    return this.save(r, s, events);
  }

  private async save(r: RolloutRecord, s: RolloutStatus, events: RolloutEvent[]): Promise<void> {
    // Nothing moved: no write (a write would make every instance reload its table).
    if (events.length === 0 && JSON.stringify(s) === JSON.stringify(r.status)) return;
    const next: RolloutRecord = { ...r, status: s, updatedAt: this.now().toISOString() };
    await this.deps.store.updateRollout(r.name, r.version, next, events);
    await this.notify(next, events);
  }

  /** Writes the route with the canary at `weight`, atomically with the rollout's state. */
  private async write(r: RolloutRecord, s: RolloutStatus, events: RolloutEvent[], weight: number): Promise<void> {
    const route = await this.deps.store.getRoute(r.spec.route);
    if (!route) {
      s.phase = "Failed";
      s.message = `route ${r.spec.route} no longer exists`;
      return this.save(r, s, events);
    }
    const next: RolloutRecord = { ...r, status: s, updatedAt: this.now().toISOString() };
    await this.deps.store.updateRollout(r.name, r.version, next, events, { spec: withCanaryWeight(route.spec, r.spec, weight), ifMatch: route.revision, actor: `rollout:${r.name}` });
    await this.deps.afterRouteWrite?.();
    this.log.info("rollout step", { rollout: r.name, phase: s.phase, step: s.step, canaryWeight: weight });
    await this.notify(next, events);
  }

  private async notify(r: RolloutRecord, events: RolloutEvent[]): Promise<void> {
    await notifyEvents(this.deps.fetch, r, events);
  }
}
