// A local stand-in for AWS Secrets Manager, for tests that drive the real SDK client
// (`createAwsSecrets({ endpoint: fake.endpoint, region: "us-east-1" })`): a node:http server on
// 127.0.0.1 speaking the JSON 1.1 protocol for GetSecretValue, so the SDK's serialiser, SigV4
// signer, retry strategy and error mapping all run for real.
//
// - `put(id, value)` is a rotation: the new version becomes AWSCURRENT, the old AWSCURRENT
//   becomes AWSPREVIOUS (and the old AWSPREVIOUS loses its stage), as Secrets Manager does.
// - A missing secret, or a stage no version carries, answers HTTP 400 ResourceNotFoundException.
// - `failNext(n)` / `setDown(true)` answer HTTP 500 InternalServiceError (the SDK retries 5xx:
//   with createAwsSecrets' maxAttempts 2, one failing `get` costs two requests).
// - Requests without an `Authorization: AWS4-HMAC-SHA256 ...` header are refused (403) and counted
//   in `unsigned`, so a test can assert the client really signed.
//
// The SDK reads its credentials from the default chain; `useFakeAwsCredentials()` sets the
// environment variables it needs (and disables the EC2 metadata lookup) and gives back a restore.
import { EventEmitter } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type FakeStage = "AWSCURRENT" | "AWSPREVIOUS";

/** One GetSecretValue (or other) call as the fake saw it. */
export interface SecretsCall {
  target: string;
  secretId: string | undefined;
  versionStage: string | undefined;
  versionId: string | undefined;
  /** The HTTP status the fake answered with (-1: held without an answer, see setHanging). */
  status: number;
  /** The `__type` of the error answered, if any. */
  errorType?: string;
  headers: IncomingHttpHeaders;
}

/** Which calls a failure applies to; default all. */
export type CallFilter = (call: { secretId: string | undefined; versionStage: string | undefined }) => boolean;

export interface SecretsManagerFake {
  /** The `endpoint` to give the SDK client. */
  readonly endpoint: string;
  readonly region: "us-east-1";
  /** Every call received, oldest first. */
  readonly calls: readonly SecretsCall[];
  /** Calls that reached GetSecretValue handling (after the signature check), whatever the answer. */
  readonly getCalls: number;
  /** Requests refused for lack of a SigV4 Authorization header. */
  readonly unsigned: number;
  /** Emits "call" with each SecretsCall once it is answered. */
  readonly events: EventEmitter<{ call: [SecretsCall] }>;
  /** Stores a new version as AWSCURRENT (a rotation when the secret exists). Returns the VersionId. */
  put(id: string, value: string): string;
  /** Removes the secret and all its versions. */
  delete(id: string): void;
  /** The value at a stage, as the fake holds it. */
  peek(id: string, stage?: FakeStage): string | undefined;
  /** The next `n` matching calls answer 500 InternalServiceError. */
  failNext(n: number, filter?: CallFilter): void;
  /** While down, every matching call answers 500 InternalServiceError. */
  setDown(down: boolean, filter?: CallFilter): void;
  /** While hanging, GetSecretValue calls are accepted and never answered (released by close()). */
  setHanging(hanging: boolean): void;
  /** Calls received for `id` (optionally at `stage`). */
  callsFor(id: string, stage?: FakeStage): number;
  /** Resolves once `predicate` holds for the calls seen so far (checked at once and after every call). */
  waitForCalls(predicate: (calls: readonly SecretsCall[]) => boolean): Promise<void>;
  resetCalls(): void;
  close(): Promise<void>;
}

interface Version {
  id: string;
  value: string;
  stages: Set<FakeStage>;
  created: number;
}

const ACCOUNT = "123456789012";
const JSON_11 = "application/x-amz-json-1.1";

export async function startSecretsManagerFake(initial: Record<string, string> = {}): Promise<SecretsManagerFake> {
  const secrets = new Map<string, { arn: string; versions: Version[] }>();
  const calls: SecretsCall[] = [];
  const events = new EventEmitter<{ call: [SecretsCall] }>();
  events.setMaxListeners(0);
  let unsigned = 0;
  let getCalls = 0;
  let versionSeq = 0;
  let failBudget = 0;
  let failFilter: CallFilter = () => true;
  let down: CallFilter | null = null;
  let hanging = false;
  const held = new Set<ServerResponse>();

  const arnOf = (id: string) => `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:${id}-${"AbCdEf"}`;
  const find = (secretId: string) => {
    const direct = secrets.get(secretId);
    if (direct) return { name: secretId, secret: direct };
    for (const [name, s] of secrets) if (s.arn === secretId) return { name, secret: s };
    return undefined;
  };

  const put = (id: string, value: string): string => {
    let s = secrets.get(id);
    if (!s) {
      s = { arn: arnOf(id), versions: [] };
      secrets.set(id, s);
    }
    for (const v of s.versions) {
      if (v.stages.has("AWSPREVIOUS")) v.stages.delete("AWSPREVIOUS");
      if (v.stages.has("AWSCURRENT")) {
        v.stages.delete("AWSCURRENT");
        v.stages.add("AWSPREVIOUS");
      }
    }
    versionSeq += 1;
    const version: Version = { id: `00000000-0000-4000-8000-${String(versionSeq).padStart(12, "0")}`, value, stages: new Set(["AWSCURRENT"]), created: Date.now() };
    s.versions.push(version);
    // Secrets Manager keeps versions without a stage only for a while: the fake keeps a few.
    s.versions = s.versions.filter((v) => v.stages.size > 0 || v === version).slice(-10);
    return version.id;
  };
  for (const [id, value] of Object.entries(initial)) put(id, value);

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"] ?? "");
      let body: Record<string, unknown>;
      try {
        const text = Buffer.concat(chunks).toString("utf8");
        body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        body = {};
      }
      const secretId = typeof body.SecretId === "string" ? body.SecretId : undefined;
      const versionStage = typeof body.VersionStage === "string" ? body.VersionStage : undefined;
      const versionId = typeof body.VersionId === "string" ? body.VersionId : undefined;
      const call: SecretsCall = { target, secretId, versionStage, versionId, status: 0, headers: req.headers };

      const answer = (status: number, payload: unknown, errorType?: string) => {
        call.status = status;
        if (errorType) call.errorType = errorType;
        const text = JSON.stringify(payload);
        res.writeHead(status, { "content-type": JSON_11, "content-length": Buffer.byteLength(text), "x-amzn-requestid": `req-${calls.length + 1}` });
        res.end(text);
        calls.push(call);
        events.emit("call", call);
      };
      const error = (status: number, type: string, message: string) => answer(status, { __type: type, message, Message: message }, type);

      const auth = String(req.headers.authorization ?? "");
      if (!auth.startsWith("AWS4-HMAC-SHA256 ") || !/Credential=[^/]+\/\d{8}\/[a-z0-9-]+\/secretsmanager\/aws4_request/.test(auth)) {
        unsigned += 1;
        return error(403, "MissingAuthenticationTokenException", "Missing or malformed SigV4 Authorization header");
      }
      if (req.method !== "POST" || !String(req.headers["content-type"] ?? "").startsWith(JSON_11)) {
        return error(400, "SerializationException", `expected POST with ${JSON_11}`);
      }
      if (target !== "secretsmanager.GetSecretValue") return error(400, "UnknownOperationException", `operation ${target} is not supported by the fake`);
      getCalls += 1;
      if (hanging) {
        held.add(res);
        res.on("close", () => held.delete(res));
        call.status = -1;
        calls.push(call);
        events.emit("call", call);
        return;
      }

      const subject = { secretId, versionStage };
      if (down && down(subject)) return error(500, "InternalServiceError", "The fake is down");
      if (failBudget > 0 && failFilter(subject)) {
        failBudget -= 1;
        return error(500, "InternalServiceError", "Injected failure");
      }
      if (!secretId) return error(400, "InvalidParameterException", "SecretId is required");
      const found = find(secretId);
      if (!found) return error(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
      const stage = versionStage ?? (versionId ? undefined : "AWSCURRENT");
      const version = found.secret.versions.find((v) => (versionId === undefined || v.id === versionId) && (stage === undefined || v.stages.has(stage as FakeStage)));
      if (!version) return error(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: " + String(stage ?? versionId));
      answer(200, {
        ARN: found.secret.arn,
        Name: found.name,
        SecretString: version.value,
        VersionId: version.id,
        VersionStages: [...version.stages],
        CreatedDate: version.created / 1000,
      });
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    calls,
    get getCalls() {
      return getCalls;
    },
    get unsigned() {
      return unsigned;
    },
    events,
    put,
    delete(id) {
      secrets.delete(id);
    },
    peek(id, stage = "AWSCURRENT") {
      return secrets.get(id)?.versions.find((v) => v.stages.has(stage))?.value;
    },
    failNext(n, filter = () => true) {
      failBudget = n;
      failFilter = filter;
    },
    setDown(d, filter = () => true) {
      down = d ? filter : null;
    },
    setHanging(h) {
      hanging = h;
    },
    callsFor(id, stage) {
      return calls.filter((c) => c.secretId === id && (stage === undefined || c.versionStage === stage)).length;
    },
    waitForCalls(predicate) {
      return new Promise<void>((resolve) => {
        if (predicate(calls)) return resolve();
        const on = () => {
          if (!predicate(calls)) return;
          events.off("call", on);
          resolve();
        };
        events.on("call", on);
      });
    },
    resetCalls() {
      calls.length = 0;
      getCalls = 0;
      unsigned = 0;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const r of held) r.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

const FAKE_ENV = {
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  AWS_REGION: "us-east-1",
  AWS_EC2_METADATA_DISABLED: "true",
} as const;
const CLEARED_ENV = ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"] as const;

/**
 * Gives the SDK's default credential chain static test credentials (the environment provider
 * comes first in the chain), so no shared config file, SSO or instance metadata is consulted.
 * Returns a function that restores the previous environment.
 */
export function useFakeAwsCredentials(): () => void {
  const saved = new Map<string, string | undefined>();
  for (const k of [...Object.keys(FAKE_ENV), ...CLEARED_ENV]) saved.set(k, process.env[k]);
  Object.assign(process.env, FAKE_ENV);
  for (const k of CLEARED_ENV) delete process.env[k];
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
