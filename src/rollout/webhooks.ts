// Flagger's webhook types: gates (confirm-rollout, pre-rollout, confirm-promotion) hold the rollout
// until they answer 2xx; `rollback` answering 2xx fails it; `event` receives every event.
import { parseDuration } from "../config/duration.ts";
import { errorMessage } from "../util/log.ts";
import type { RolloutEvent, RolloutRecord, WebhookType } from "./schema.ts";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface HookOutcome {
  ok: boolean;
  detail: string;
}

export async function callHooks(fetchFn: FetchLike, r: RolloutRecord, type: WebhookType, extra: Record<string, unknown> = {}): Promise<HookOutcome> {
  const hooks = (r.spec.webhooks ?? []).filter((h) => h.type === type);
  for (const h of hooks) {
    const body = JSON.stringify({ name: r.name, namespace: "", type, phase: r.status.phase, step: r.status.step, canaryWeight: r.status.canaryWeight, route: r.spec.route, rule: r.spec.rule, metadata: h.metadata ?? {}, ...extra });
    try {
      const res = await fetchFn(h.url, { method: "POST", body, headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(parseDuration(h.timeout) ?? 10_000), redirect: "manual" });
      await res.body?.cancel().catch(() => undefined);
      if (res.status < 200 || res.status >= 300) return { ok: false, detail: `${type} webhook ${h.name ?? h.url} answered HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, detail: `${type} webhook ${h.name ?? h.url} failed: ${errorMessage(err)}` };
    }
  }
  return { ok: true, detail: hooks.length > 0 ? `${type} webhook${hooks.length > 1 ? "s" : ""} passed` : "" };
}

export function hasHook(r: RolloutRecord, type: WebhookType): boolean {
  return (r.spec.webhooks ?? []).some((h) => h.type === type);
}

/** Sends each event to the rollout's `event` webhooks (notifications: failures are not the rollout's). */
export async function notifyEvents(fetchFn: FetchLike, r: RolloutRecord, events: readonly RolloutEvent[]): Promise<void> {
  if (events.length === 0 || !hasHook(r, "event")) return;
  for (const e of events) await callHooks(fetchFn, r, "event", { event: e });
}
