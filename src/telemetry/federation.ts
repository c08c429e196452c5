// Pushes each cluster its slice of the fleet-wide metrics by Prometheus remote write: only the
// series it took part in, with a `gateway` external label. Clusters are pushed in parallel and
// independently: one that is down (or slow) costs only its own retries.
import type { RoutingTable } from "../routing/table.ts";
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";
import { involves, toSamples } from "./exposition.ts";
import type { MetricBatch } from "./metric-batch.ts";
import { encodeWriteRequest, postRemoteWrite, snappy, type FetchLike } from "./remote-write.ts";

export interface PushResult {
  cluster: string;
  ok: boolean;
  attempts: number;
  samples: number;
  error?: string;
}

export interface FederationOptions {
  gatewayName: string;
  attempts?: number;
  timeoutMs?: number;
  backoffMs?: number;
  now?: () => number;
  log?: Logger;
  sleep?: (ms: number) => Promise<void>;
}

export class MetricsFederation {
  readonly lastResults = new Map<string, PushResult & { at: string }>();
  private readonly log: Logger;

  constructor(
    private readonly fetchFn: FetchLike,
    private readonly opts: FederationOptions,
  ) {
    this.log = opts.log ?? silentLogger;
  }

  /** Pushes every cluster with a remote-write URL its slice of `batches`. */
  async pushAll(table: RoutingTable, batches: MetricBatch[]): Promise<PushResult[]> {
    const targets = [...table.clusters.values()].filter((c) => c.spec.metrics?.remoteWrite?.url);
    const now = (this.opts.now ?? Date.now)();
    const results = await Promise.all(
      targets.map(async (c) => {
        const samples = batches.flatMap((b) => toSamples(b, (s) => involves(s, c.name)));
        const result = await this.pushOne(c.name, c.spec.metrics?.remoteWrite?.url as string, samples, now);
        this.lastResults.set(c.name, { ...result, at: new Date(now).toISOString() });
        return result;
      }),
    );
    return results;
  }

  private async pushOne(cluster: string, url: string, samples: ReturnType<typeof toSamples>, now: number): Promise<PushResult> {
    if (samples.length === 0) return { cluster, ok: true, attempts: 0, samples: 0 };
    const body = snappy(encodeWriteRequest(samples, now, { gateway: this.opts.gatewayName }));
    const attempts = this.opts.attempts ?? 3;
    const sleep = this.opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    let error = "";
    let made = 0;
    for (let i = 1; i <= attempts; i++) {
      made = i;
      try {
        await postRemoteWrite(this.fetchFn, url, body, this.opts.timeoutMs ?? 5000);
        return { cluster, ok: true, attempts: i, samples: samples.length };
      } catch (err) {
        error = errorMessage(err);
        // A 4xx other than 429 will not get better by retrying (e.g. out-of-order samples).
        if (/HTTP 4(?!29)\d\d/.test(error)) break;
        if (i < attempts) await sleep((this.opts.backoffMs ?? 250) * 2 ** (i - 1) * (0.5 + Math.random()));
      }
    }
    this.log.warn("remote write failed", { cluster, url, error });
    return { cluster, ok: false, attempts: made, samples: samples.length, error };
  }
}
