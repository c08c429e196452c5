// AWS Secrets Manager through the official SDK. The endpoint follows the SDK's own settings
// (AWS_REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER, ...), so tests point it at a local fake.
import { GetSecretValueCommand, ResourceNotFoundException, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SecretsProvider, SecretStage } from "./secrets.ts";

export interface AwsSecretsOptions {
  region?: string;
  endpoint?: string;
  /** Every call is bounded. */
  timeoutMs?: number;
  client?: SecretsManagerClient;
}

export function createAwsSecrets(opts: AwsSecretsOptions = {}): SecretsProvider {
  const client = opts.client ?? new SecretsManagerClient({ region: opts.region ?? "us-east-1", ...(opts.endpoint ? { endpoint: opts.endpoint } : {}), maxAttempts: 2 });
  return {
    async get(id: string, stage: SecretStage): Promise<string | null> {
      try {
        const out = await client.send(new GetSecretValueCommand({ SecretId: id, VersionStage: stage }), { abortSignal: AbortSignal.timeout(opts.timeoutMs ?? 5000) });
        if (out.SecretString !== undefined) return out.SecretString;
        if (out.SecretBinary) return new TextDecoder().decode(out.SecretBinary);
        return null;
      } catch (err) {
        // A missing secret, or a stage with no version (no AWSPREVIOUS before the first rotation).
        if (err instanceof ResourceNotFoundException) return null;
        throw err;
      }
    },
  };
}
