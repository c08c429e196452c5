// `npm start`: the Node gateway configured from the environment (SPEC.md "Configuration").
import { parseDuration } from "../config/duration.ts";
import { createLogger, errorMessage, type LogLevel } from "../util/log.ts";
import { gatewayOptionsFromEnv } from "./env.ts";
import { startNodeGateway } from "./node.ts";

const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  console.error(`isthmus needs Node.js 22 or newer (this is ${process.version}). See README.md "Requirements".`);
  process.exit(1);
}

const env = process.env;
const log = createLogger((env.ISTHMUS_LOG_LEVEL as LogLevel | undefined) ?? "info");
const port = Number(env.PORT ?? 8080);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  log.error("PORT must be an integer 0..65535", { PORT: env.PORT });
  process.exit(1);
}
let fromEnv: ReturnType<typeof gatewayOptionsFromEnv>;
try {
  fromEnv = gatewayOptionsFromEnv(env);
} catch (err) {
  log.error(errorMessage(err));
  process.exit(1);
}
const secretsRefresh = env.ISTHMUS_SECRETS_REFRESH ? parseDuration(env.ISTHMUS_SECRETS_REFRESH) : undefined;
if (env.ISTHMUS_SECRETS_REFRESH && secretsRefresh === undefined) {
  log.error('ISTHMUS_SECRETS_REFRESH must be a duration such as "5m"', { value: env.ISTHMUS_SECRETS_REFRESH });
  process.exit(1);
}

try {
  const gw = await startNodeGateway({
    port,
    hostname: env.HOST,
    redisUrl: env.ISTHMUS_REDIS_URL || undefined,
    configPath: env.ISTHMUS_CONFIG || undefined,
    ...fromEnv,
    secretsRegion: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
    secretsRefreshMs: secretsRefresh,
    snapshotPath: env.ISTHMUS_SNAPSHOT_FILE || undefined,
    log,
  });
  const stop = (signal: string) => {
    log.info("shutting down", { signal });
    void gw.close().then(() => process.exit(0));
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
} catch (err) {
  log.error("isthmus failed to start", { error: errorMessage(err) });
  process.exit(1);
}
