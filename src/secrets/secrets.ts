// Secrets port and a cache in front of it: values are refreshed on an interval, and a failed
// refresh keeps serving the last value (a Secrets Manager blip must not take the gateway down).
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";

export type SecretStage = "AWSCURRENT" | "AWSPREVIOUS";

export interface SecretsProvider {
  /** The secret's string value at that stage, or null when the secret (or that stage) does not exist. */
  get(id: string, stage: SecretStage): Promise<string | null>;
}

export class SecretNotFoundError extends Error {
  constructor(readonly secretId: string) {
    super(`secret "${secretId}" was not found`);
    this.name = "SecretNotFoundError";
  }
}

interface Entry {
  value: string | null;
  fetchedAt: number;
  inflight: Promise<string | null> | null;
}

export class CachedSecrets {
  private readonly entries = new Map<string, Entry>();
  private readonly log: Logger;
  constructor(
    private readonly provider: SecretsProvider,
    private readonly opts: { refreshMs?: number; now?: () => number; log?: Logger } = {},
  ) {
    this.log = opts.log ?? silentLogger;
  }

  /**
   * The value, from cache when fresh. The first read of a secret waits for it (and throws when it
   * cannot be read); later reads never wait: a stale value is returned while a refresh runs.
   */
  async get(id: string, stage: SecretStage = "AWSCURRENT"): Promise<string | null> {
    const key = `${stage}:${id}`;
    const now = (this.opts.now ?? Date.now)();
    const e = this.entries.get(key);
    if (!e) {
      const entry: Entry = { value: null, fetchedAt: 0, inflight: null };
      this.entries.set(key, entry);
      try {
        entry.value = await this.fetch(id, stage, entry);
      } catch (err) {
        this.entries.delete(key);
        throw err;
      }
      return entry.value;
    }
    if (e.inflight && e.fetchedAt === 0) return e.inflight;
    if (now - e.fetchedAt > (this.opts.refreshMs ?? 300_000) && !e.inflight) {
      void this.fetch(id, stage, e).catch((err: unknown) => this.log.warn("secret refresh failed; keeping the cached value", { secretId: id, stage, error: errorMessage(err) }));
    }
    return e.value;
  }

  /** A value that must exist: throws SecretNotFoundError with the id when it does not. */
  async require(id: string): Promise<string> {
    const v = await this.get(id, "AWSCURRENT");
    if (v === null) throw new SecretNotFoundError(id);
    return v;
  }

  private fetch(id: string, stage: SecretStage, entry: Entry): Promise<string | null> {
    entry.inflight ??= this.provider
      .get(id, stage)
      .then((value) => {
        entry.value = value;
        entry.fetchedAt = (this.opts.now ?? Date.now)();
        return value;
      })
      .finally(() => {
        entry.inflight = null;
      });
    return entry.inflight;
  }
}

/** Secrets given directly (tests, and runtimes whose secrets arrive as environment bindings). */
export class StaticSecrets implements SecretsProvider {
  constructor(private readonly values: Record<string, { AWSCURRENT?: string; AWSPREVIOUS?: string }>) {}
  async get(id: string, stage: SecretStage): Promise<string | null> {
    return this.values[id]?.[stage] ?? null;
  }
}
