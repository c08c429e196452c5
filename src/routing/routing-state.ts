// Holds the live routing table and keeps it in step with the store: change notifications
// (pub/sub) trigger a reload at once, a periodic version check is the safety net, and when the
// store is unreachable the last good table keeps serving (fail static).
import type { Store, ChangeEvent, StoreSnapshot } from "../store/types.ts";
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";
import { compileTable } from "./compile.ts";
import type { RoutingTable } from "./table.ts";

export interface StoreHealth {
  reachable: boolean;
  /** When the store last answered. */
  lastOkAt: string | null;
  /** Since when it has been unreachable, if it is. */
  downSince: string | null;
  lastError: string | null;
  /** The store lost its data (version went backwards, no routes): the last good table is being kept. */
  storeReset: boolean;
}

export interface RoutingStateOptions {
  /** Safety-net poll of the store version; 0 disables the timer (Workers/Lambda call checkNow()). */
  checkIntervalMs?: number;
  /**
   * A full reload at least this often, even when the version did not move: the version bump is a
   * notification sent after the atomic write, and a process can die between the two.
   */
  fullResyncIntervalMs?: number;
  log?: Logger;
  now?: () => Date;
}

export const EMPTY_TABLE: RoutingTable = compileTable({ version: 0, clusters: [], routes: [] }, new Date(0));

export class RoutingState {
  private table: RoutingTable = EMPTY_TABLE;
  private loadedOnce = false;
  private provisionalTable = false;
  /** The store snapshot the current table was compiled from (null for an installed table). */
  lastSnapshot: StoreSnapshot | null = null;
  private readonly reachableListeners = new Set<() => void>();
  private lastFullLoad = 0;
  private reloading: Promise<void> | null = null;
  private again = false;
  private timer: ReturnType<typeof setInterval> | null = null;
  private unsubscribe: (() => Promise<void>) | null = null;
  private readonly swapListeners = new Set<(t: RoutingTable) => void>();
  private readonly log: Logger;
  readonly health: StoreHealth = { reachable: false, lastOkAt: null, downSince: null, lastError: null, storeReset: false };

  constructor(
    private readonly store: Store,
    private readonly opts: RoutingStateOptions = {},
  ) {
    this.log = opts.log ?? silentLogger;
  }

  /** The table to route with: a plain property read, no store round trip. */
  get current(): RoutingTable {
    return this.table;
  }

  /** True once a table has been loaded from the store (or installed from config) at least once. */
  get loaded(): boolean {
    return this.loadedOnce;
  }

  /** Loads the first table, subscribes to changes and starts the safety-net timer. Never throws. */
  async start(): Promise<void> {
    try {
      this.unsubscribe = await this.store.subscribe((e) => this.onChange(e));
    } catch (err) {
      this.log.warn("could not subscribe to store changes; relying on version checks", { error: errorMessage(err) });
    }
    await this.reload();
    const every = this.opts.checkIntervalMs ?? 2000;
    if (every > 0) {
      this.timer = setInterval(() => void this.checkNow(), every);
      this.timer.unref?.();
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.unsubscribe?.().catch(() => undefined);
    this.unsubscribe = null;
    await this.reloading?.catch(() => undefined);
  }

  onSwap(listener: (t: RoutingTable) => void): () => void {
    this.swapListeners.add(listener);
    return () => this.swapListeners.delete(listener);
  }

  /** Compares the store version with the table's and reloads when they differ. */
  async checkNow(): Promise<void> {
    try {
      const v = await this.store.version();
      this.markOk();
      const stale = Date.now() - this.lastFullLoad > (this.opts.fullResyncIntervalMs ?? 30_000);
      if (v !== this.table.version || !this.loadedOnce || stale) await this.reload();
    } catch (err) {
      this.markDown(err);
    }
  }

  /** Reloads the whole table. Concurrent calls coalesce: at most one load runs, and one more follows if asked meanwhile. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      try {
        do {
          this.again = false;
          await this.loadOnce();
        } while (this.again);
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }

  /**
   * Installs a provisional table built elsewhere (ISTHMUS_CONFIG while the store is unreachable at
   * start). It stays until the store holds routes: an empty store never replaces it.
   */
  install(table: RoutingTable): void {
    this.swap(table);
    this.provisionalTable = true;
  }

  /** True while the table in use is the provisional one from install(). */
  get provisional(): boolean {
    return this.provisionalTable;
  }

  /** Called each time the store answers after being unreachable (or for the first time). */
  onStoreReachable(listener: () => void): () => void {
    this.reachableListeners.add(listener);
    return () => this.reachableListeners.delete(listener);
  }

  private onChange(e: ChangeEvent): void {
    if (e.kind === "resync" || e.version !== this.table.version) void this.reload();
  }

  private async loadOnce(): Promise<void> {
    try {
      const snap = await this.store.snapshot();
      this.markOk();
      this.lastFullLoad = Date.now();
      if (this.provisionalTable && snap.routes.length === 0) return;
      if (this.loadedOnce && snap.version < this.table.version) {
        // The version went backwards: the store was flushed or replaced. An empty store is
        // treated as a wipe, not as "delete every route": keep serving the last good table
        // until routes are written again.
        if (snap.routes.length === 0 && this.table.routes.size > 0) {
          if (!this.health.storeReset) this.log.error("store version went backwards and the store is empty; keeping the last good routing table", { from: this.table.version, to: snap.version });
          this.health.storeReset = true;
          return;
        }
      }
      this.health.storeReset = false;
      const table = compileTable(snap, this.opts.now?.() ?? new Date());
      for (const w of table.warnings) if (!this.table.warnings.includes(w)) this.log.warn(w);
      this.lastSnapshot = snap;
      this.swap(table);
      this.provisionalTable = false;
    } catch (err) {
      this.markDown(err);
    }
  }

  private swap(table: RoutingTable): void {
    const prev = this.table;
    this.table = table;
    this.loadedOnce = true;
    if (prev.version !== table.version) this.log.debug("routing table swapped", { version: table.version, routes: table.routes.size });
    for (const l of this.swapListeners) l(table);
  }

  private markOk(): void {
    const now = (this.opts.now?.() ?? new Date()).toISOString();
    const wasDown = !this.health.reachable;
    if (!this.health.reachable && this.health.downSince) this.log.info("store reachable again", { downSince: this.health.downSince });
    this.health.reachable = true;
    this.health.lastOkAt = now;
    this.health.downSince = null;
    this.health.lastError = null;
    if (wasDown) for (const l of this.reachableListeners) l();
  }

  private markDown(err: unknown): void {
    const msg = errorMessage(err);
    if (this.health.reachable || this.health.downSince === null) {
      this.log.warn("store unreachable; serving the last good routing table", { error: msg, tableVersion: this.table.version });
      this.health.downSince = (this.opts.now?.() ?? new Date()).toISOString();
    }
    this.health.reachable = false;
    this.health.lastError = msg;
  }
}
