// Moves an instance's metric deltas to the store: one script call per flush. A flush that fails
// is retried later with the same id and content, so the store applies it exactly once; meanwhile
// new samples keep merging into the recorder, whose size is bounded by series, not by time.
import type { Store } from "../store/types.ts";
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";
import type { MetricBatch } from "./metric-batch.ts";
import type { MetricsRecorder } from "./recorder.ts";

export class MetricsFlusher {
  private pending: { id: string; batch: MetricBatch } | null = null;
  private running: Promise<boolean> | null = null;
  private again = false;
  flushes = 0;
  failures = 0;

  constructor(
    private readonly recorder: MetricsRecorder,
    private readonly store: Pick<Store, "applyMetricDeltas">,
    private readonly log: Logger = silentLogger,
  ) {}

  /**
   * True when everything recorded before the call reached the store. A call made while a flush runs
   * makes that flush go round once more, so it also covers samples recorded after it started.
   */
  flush(): Promise<boolean> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let ok: boolean;
      do {
        this.again = false;
        ok = await this.run();
      } while (ok && this.again);
      return ok;
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<boolean> {
    // A pending batch first (its first attempt failed), then whatever accumulated since.
    for (let round = 0; round < 2; round++) {
      if (!this.pending) {
        const batch = this.recorder.drain();
        if (Object.keys(batch.values).length === 0) return true;
        this.pending = { id: crypto.randomUUID(), batch };
      }
      try {
        await this.store.applyMetricDeltas(this.pending.id, this.pending.batch);
        this.pending = null;
        this.flushes += 1;
      } catch (err) {
        this.failures += 1;
        this.log.warn("metrics flush failed; will retry with the same batch", { error: errorMessage(err) });
        return false;
      }
    }
    return true;
  }

  /** True when a batch waits for the store. */
  get backlog(): boolean {
    return this.pending !== null;
  }
}
