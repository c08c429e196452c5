// One trust bundle's keys, kept fresh: loaded at registration, refreshed on the bundle's
// spiffe_refresh_hint, refetched (at most once per cooldown) when a token names an unknown kid,
// and never lost: a failed or garbage refresh keeps the last good key set.
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";
import { oidcKeySet, svidKeySet, type KeySet } from "./jwks.ts";

export interface LoadedBundle {
  jwks: unknown;
  /** Seconds until the next refresh (SPIFFE bundle endpoint `spiffe_refresh_hint`). */
  refreshHintS?: number;
  /** SPIFFE `spiffe_sequence`: a lower sequence than the one held is stale and ignored. */
  sequence?: number;
}

export type BundleLoader = () => Promise<LoadedBundle>;

export interface KeySourceOptions {
  kind: "jwt-svid" | "oidc";
  /** Inline bundles never refresh. */
  refreshes: boolean;
  defaultRefreshS?: number;
  unknownKidCooldownMs?: number;
  now?: () => number;
  log?: Logger;
}

export interface KeySourceStatus {
  source: string;
  loaded: boolean;
  keys: number;
  loadedAt: string | null;
  nextRefreshAt: string | null;
  lastError: string | null;
  sequence: number | null;
  fetches: number;
}

const MIN_REFRESH_S = 1;
const MAX_REFRESH_S = 86_400;

export class KeySource {
  private keys: KeySet | null = null;
  private inflight: Promise<void> | null = null;
  private loadedAt = 0;
  private nextRefreshAt = 0;
  private lastAttemptAt = -Infinity;
  private lastError: string | null = null;
  private sequence: number | null = null;
  private fetches = 0;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(
    readonly describe: string,
    private readonly loader: BundleLoader,
    private readonly opts: KeySourceOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLogger;
  }

  /** The current key set, waiting for the first load if none has completed yet. */
  async current(): Promise<KeySet | null> {
    if (this.keys) {
      this.refreshIfDue();
      return this.keys;
    }
    // Never loaded: try again only when the retry time or the cooldown has passed, so requests
    // naming a bundle whose endpoint is down do not each become a fetch.
    const cooldown = this.opts.unknownKidCooldownMs ?? 30_000;
    if (this.inflight) await this.inflight;
    else if (this.lastAttemptAt === -Infinity || this.now() >= this.nextRefreshAt || this.now() - this.lastAttemptAt >= cooldown) await this.refresh();
    return this.keys;
  }

  /** The keys held now, without loading or refreshing anything. */
  peek(): KeySet | null {
    return this.keys;
  }

  /** Starts a background refresh when the refresh hint has passed. Never blocks. */
  refreshIfDue(): void {
    if (this.opts.refreshes && this.now() >= this.nextRefreshAt && !this.inflight) void this.refresh();
  }

  /**
   * A token names a kid we do not hold: refetch, but at most once per cooldown, so a flood of
   * made-up kids costs at most one fetch per cooldown. Returns the (possibly new) key set.
   */
  async afterUnknownKid(): Promise<KeySet | null> {
    if (this.opts.refreshes && this.now() - this.lastAttemptAt >= (this.opts.unknownKidCooldownMs ?? 30_000)) await this.refresh();
    else if (this.inflight) await this.inflight;
    return this.keys;
  }

  refresh(): Promise<void> {
    this.inflight ??= this.load().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  status(): KeySourceStatus {
    const iso = (t: number) => (t > 0 && Number.isFinite(t) ? new Date(t).toISOString() : null);
    return {
      source: this.describe,
      loaded: this.keys !== null,
      keys: this.keys?.size ?? 0,
      loadedAt: iso(this.loadedAt),
      nextRefreshAt: this.opts.refreshes ? iso(this.nextRefreshAt) : null,
      lastError: this.lastError,
      sequence: this.sequence,
      fetches: this.fetches,
    };
  }

  private async load(): Promise<void> {
    this.lastAttemptAt = this.now();
    this.fetches += 1;
    try {
      const bundle = await this.loader();
      if (this.sequence !== null && bundle.sequence !== undefined && bundle.sequence < this.sequence) {
        throw new Error(`stale bundle: spiffe_sequence ${bundle.sequence} is older than the held ${this.sequence}`);
      }
      const keys = this.opts.kind === "jwt-svid" ? svidKeySet(bundle.jwks) : oidcKeySet(bundle.jwks);
      if (keys.size === 0) throw new Error(this.opts.kind === "jwt-svid" ? 'bundle has no keys with use "jwt-svid" and a kid' : "JWKS has no signing keys with a kid");
      this.keys = keys;
      this.sequence = bundle.sequence ?? this.sequence;
      this.loadedAt = this.now();
      this.lastError = null;
      const hint = clamp(bundle.refreshHintS ?? this.opts.defaultRefreshS ?? 300);
      this.nextRefreshAt = this.loadedAt + hint * 1000;
    } catch (err) {
      this.lastError = errorMessage(err);
      // Retry sooner than the hint, but not in a tight loop.
      this.nextRefreshAt = this.now() + Math.min(clamp(this.opts.defaultRefreshS ?? 300), 30) * 1000;
      this.log.warn(this.keys ? "bundle refresh failed; keeping the last good keys" : "bundle could not be loaded", { source: this.describe, error: this.lastError });
    }
  }
}

function clamp(s: number): number {
  if (!Number.isFinite(s)) return 300;
  return Math.min(MAX_REFRESH_S, Math.max(MIN_REFRESH_S, s));
}
