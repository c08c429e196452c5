// Retry budget per backend cluster (Linkerd's design: retries may add at most `ratio` of the
// requests plus a small floor per second, over a sliding window), so a failing backend cannot
// multiply the load on itself or on the other cluster.
export interface RetryBudgetOptions {
  /** Retries allowed as a fraction of requests in the window. */
  ratio?: number;
  /** Retries always allowed per second, whatever the request count. */
  minPerSecond?: number;
  /** Window length in seconds. */
  windowS?: number;
  now?: () => number;
}

interface Window {
  /** Per-second slots: [second, requests, retries]. */
  slots: Array<[number, number, number]>;
  firstSecond: number;
}

export class RetryBudgets {
  private readonly windows = new Map<string, Window>();
  private readonly ratio: number;
  private readonly minPerSecond: number;
  private readonly windowS: number;
  private readonly now: () => number;

  constructor(opts: RetryBudgetOptions = {}) {
    this.ratio = opts.ratio ?? 0.2;
    this.minPerSecond = opts.minPerSecond ?? 10;
    this.windowS = opts.windowS ?? 10;
    this.now = opts.now ?? Date.now;
  }

  /** A first try was sent to `key`: it earns retry credit. */
  request(key: string): void {
    this.slot(key)[1] += 1;
  }

  /** Takes one retry from `key`'s budget; false when the budget is spent. */
  tryRetry(key: string): boolean {
    const w = this.window(key);
    const sec = Math.floor(this.now() / 1000);
    let requests = 0;
    let retries = 0;
    for (const [s, req, ret] of w.slots) {
      if (s > sec - this.windowS) {
        requests += req;
        retries += ret;
      }
    }
    const seconds = Math.min(this.windowS, sec - w.firstSecond + 1);
    if (retries + 1 > this.ratio * requests + this.minPerSecond * seconds) return false;
    this.slot(key)[2] += 1;
    return true;
  }

  private window(key: string): Window {
    let w = this.windows.get(key);
    if (!w) {
      w = { slots: [], firstSecond: Math.floor(this.now() / 1000) };
      this.windows.set(key, w);
    }
    return w;
  }

  private slot(key: string): [number, number, number] {
    const w = this.window(key);
    const sec = Math.floor(this.now() / 1000);
    let last = w.slots[w.slots.length - 1];
    if (!last || last[0] !== sec) {
      last = [sec, 0, 0];
      w.slots.push(last);
      while (w.slots.length > 0 && (w.slots[0] as [number, number, number])[0] <= sec - this.windowS) w.slots.shift();
    }
    return last;
  }
}
