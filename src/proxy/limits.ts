// Load limits: requests in flight per upstream cluster and in total. Past a limit the gateway
// answers 503 at once rather than queueing (memory stays flat under overload).
export interface LimitOptions {
  maxInFlightPerCluster?: number;
  maxInFlight?: number;
  /** Largest request body forwarded; a larger one gets 413. */
  maxBodyBytes?: number;
}

export class Limits {
  private readonly perCluster = new Map<string, number>();
  private total = 0;
  readonly maxBodyBytes: number;
  rejected = 0;

  constructor(private readonly opts: LimitOptions = {}) {
    this.maxBodyBytes = opts.maxBodyBytes ?? 1024 ** 3;
  }

  acquire(cluster: string): boolean {
    const n = this.perCluster.get(cluster) ?? 0;
    if (n >= (this.opts.maxInFlightPerCluster ?? 1_000) || this.total >= (this.opts.maxInFlight ?? 10_000)) {
      this.rejected += 1;
      return false;
    }
    this.perCluster.set(cluster, n + 1);
    this.total += 1;
    return true;
  }

  release(cluster: string): void {
    const n = this.perCluster.get(cluster) ?? 0;
    if (n <= 0) return;
    if (n === 1) this.perCluster.delete(cluster);
    else this.perCluster.set(cluster, n - 1);
    this.total -= 1;
  }

  inFlight(cluster?: string): number {
    return cluster === undefined ? this.total : (this.perCluster.get(cluster) ?? 0);
  }
}
