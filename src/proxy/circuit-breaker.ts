// Failure accrual per backend (Linkerd's consecutive-failures breaker): after `maxFailures`
// consecutive failures the backend is ejected for a penalty that grows with each failed probe
// (with jitter), then a single probe request is let through; its success closes the breaker.
export interface BreakerOptions {
  maxFailures?: number;
  minPenaltyMs?: number;
  maxPenaltyMs?: number;
  jitterRatio?: number;
  now?: () => number;
  random?: () => number;
}

interface State {
  failures: number;
  /** Ejected until this time (0 = not ejected). */
  openUntil: number;
  /** How many penalties in a row: the next one is min * 2^ejections. */
  ejections: number;
  probing: boolean;
}

export type BreakerView = { state: "closed" | "open" | "half-open"; consecutiveFailures: number; openUntil: string | null };

export class CircuitBreakers {
  private readonly states = new Map<string, State>();
  private readonly o: Required<Omit<BreakerOptions, "now" | "random">>;
  private readonly now: () => number;
  private readonly random: () => number;
  /** Called when a backend is ejected or readmitted. */
  onChange?: (key: string, ejected: boolean) => void;

  constructor(opts: BreakerOptions = {}) {
    this.o = { maxFailures: opts.maxFailures ?? 7, minPenaltyMs: opts.minPenaltyMs ?? 1_000, maxPenaltyMs: opts.maxPenaltyMs ?? 60_000, jitterRatio: opts.jitterRatio ?? 0.5 };
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  /** Whether a request may go to `key` now. An ejected backend whose penalty is over admits one probe. */
  available(key: string): boolean {
    const s = this.states.get(key);
    if (!s || s.openUntil === 0) return true;
    return !s.probing && this.now() >= s.openUntil;
  }

  /** Marks the start of a request to `key` (the probe, when its penalty is over). */
  begin(key: string): void {
    const s = this.states.get(key);
    if (s && s.openUntil !== 0 && this.now() >= s.openUntil) s.probing = true;
  }

  /** A try ended without a verdict (the client went away): a probe in flight is released, nothing counted. */
  abandon(key: string): void {
    const s = this.states.get(key);
    if (s) s.probing = false;
  }

  success(key: string): void {
    const s = this.states.get(key);
    if (!s) return;
    const wasOpen = s.openUntil !== 0;
    this.states.delete(key);
    if (wasOpen) this.onChange?.(key, false);
  }

  failure(key: string): void {
    let s = this.states.get(key);
    if (!s) {
      s = { failures: 0, openUntil: 0, ejections: 0, probing: false };
      this.states.set(key, s);
    }
    s.failures += 1;
    const probeFailed = s.probing;
    s.probing = false;
    if (probeFailed || (s.openUntil === 0 && s.failures >= this.o.maxFailures)) {
      const base = Math.min(this.o.maxPenaltyMs, this.o.minPenaltyMs * 2 ** s.ejections);
      const jitter = base * this.o.jitterRatio * (this.random() * 2 - 1);
      const wasOpen = s.openUntil !== 0;
      s.openUntil = this.now() + Math.max(0, Math.min(this.o.maxPenaltyMs, base + jitter));
      s.ejections += 1;
      if (!wasOpen) this.onChange?.(key, true);
    }
  }

  view(key: string): BreakerView {
    const s = this.states.get(key);
    if (!s || s.openUntil === 0) return { state: "closed", consecutiveFailures: s?.failures ?? 0, openUntil: null };
    return { state: this.now() >= s.openUntil ? "half-open" : "open", consecutiveFailures: s.failures, openUntil: new Date(s.openUntil).toISOString() };
  }
}
