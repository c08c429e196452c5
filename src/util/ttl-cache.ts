// A bounded cache with per-entry expiry. Map insertion order gives least-recently-set eviction;
// a hit re-inserts, so it is an LRU. Bounded so a flood of distinct keys cannot grow memory.
// Below half full nothing can be evicted soon, so a hit skips the re-insertion there (it is most
// of a hit's cost, on the request path); above it, every hit re-inserts as before.
export class TtlCache<V> {
  private readonly map = new Map<string, { value: V; expiresAt: number }>();
  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    if (this.map.size > this.maxEntries >>> 1) {
      this.map.delete(key);
      this.map.set(key, e);
    }
    return e.value;
  }

  set(key: string, value: V, expiresAt: number): void {
    if (expiresAt <= this.now()) return;
    this.map.delete(key);
    this.map.set(key, { value, expiresAt });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}
