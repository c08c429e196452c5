// Keeps the gateway's signing key ring current: from Secrets Manager (AWSCURRENT signs,
// AWSPREVIOUS stays published) with rotation picked up on refresh, or an ephemeral key.
import type { CachedSecrets } from "../secrets/secrets.ts";
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";
import { ephemeralSigningKey, publicJwkFromText, signingKeyFromJwkText, type SigningKeyRing } from "./signing-keys.ts";

export class SigningKeyManager {
  private currentText: string | null = null;
  private previousText: string | null = null;

  private constructor(
    private ring: SigningKeyRing,
    private readonly secrets: CachedSecrets | null,
    private readonly secretId: string | null,
    private readonly log: Logger,
  ) {}

  /** Throws a clear error when a configured secret is missing or not a usable private JWK. */
  static async create(opts: { secrets?: CachedSecrets; secretId?: string; log?: Logger }): Promise<SigningKeyManager> {
    const log = opts.log ?? silentLogger;
    if (!opts.secretId || !opts.secrets) {
      log.warn(
        "NO SIGNING KEY CONFIGURED (ISTHMUS_SIGNING_KEY_SECRET_ID is unset): using an ephemeral key. Tokens this gateway signs cannot be verified after a restart or by other instances; configure a key for anything but a demo.",
      );
      return new SigningKeyManager({ current: await ephemeralSigningKey(), previous: null, origin: "ephemeral" }, null, null, log);
    }
    const m = new SigningKeyManager(null as unknown as SigningKeyRing, opts.secrets, opts.secretId, log);
    const text = await opts.secrets.require(opts.secretId).catch((err: unknown) => {
      throw new Error(`ISTHMUS_SIGNING_KEY_SECRET_ID: cannot read signing key secret "${opts.secretId}": ${errorMessage(err)}`, { cause: err });
    });
    const current = await signingKeyFromJwkText(text, `secret "${opts.secretId}"`).catch((err: unknown) => {
      throw new Error(`ISTHMUS_SIGNING_KEY_SECRET_ID: ${errorMessage(err)}`, { cause: err });
    });
    m.ring = { current, previous: null, origin: "secret" };
    m.currentText = text;
    await m.refresh();
    return m;
  }

  get(): SigningKeyRing {
    return this.ring;
  }

  /** Re-reads the secret (served from cache, refreshed in the background) and swaps keys if it rotated. */
  async refresh(): Promise<void> {
    if (!this.secrets || !this.secretId) return;
    try {
      const [cur, prev] = await Promise.all([this.secrets.get(this.secretId, "AWSCURRENT"), this.secrets.get(this.secretId, "AWSPREVIOUS")]);
      if (cur !== null && cur !== this.currentText) {
        const current = await signingKeyFromJwkText(cur, `secret "${this.secretId}"`);
        this.log.info("signing key rotated", { kid: current.kid, previousKid: this.ring.current.kid });
        // The key that signed until now stays published, whatever AWSPREVIOUS says at this moment:
        // tokens it signed are still live at the destinations.
        this.ring = { ...this.ring, current, previous: this.ring.current.publicJwk };
        this.currentText = cur;
      }
      if (prev !== null && prev !== this.previousText) {
        try {
          const previous = await publicJwkFromText(prev);
          if (previous.kid !== this.ring.current.kid) this.ring = { ...this.ring, previous };
        } catch (err) {
          this.log.warn("AWSPREVIOUS of the signing key secret is not a usable public key; not publishing it", { error: errorMessage(err) });
        }
        this.previousText = prev;
      }
    } catch (err) {
      this.log.warn("signing key refresh failed; keeping the current keys", { error: errorMessage(err) });
    }
  }
}
