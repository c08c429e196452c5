// IsthmusGateway: the isthmus gateway on AWS Lambda, as one construct users can put in their own
// CDK app (cdk/lib/isthmus-stack.ts is the ready-made stack around it).
//
//   Function URL (public, InvokeMode RESPONSE_STREAM) -> Lambda (Node 22, arm64, in private subnets)
//     -> ElastiCache Valkey (TLS, reachable from the function's security group only)
//     -> Secrets Manager (the signing key and the admin token: exactly these two, read only)
//     -> the clusters' gateways, bundle URLs and Prometheus remote-write endpoints (through NAT)
//   EventBridge rate(1 minute) -> the same function: config, secrets, routing sync, probes,
//     metric flush and push, rollout ticks
//   CloudWatch alarms: error rate (function errors + Function URL 5xx) and p99 duration.
//
// The Function URL has auth type NONE on purpose: the gateway authenticates every request itself
// (JWT-SVIDs on the data plane, the admin token or admin JWTs on /_isthmus/v1). IAM auth would
// require SigV4 from every workload, which mesh clients do not speak.
import path from "node:path";
import { Duration, RemovalPolicy, SecretValue } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";

/** The repository root (this file is cdk/lib/isthmus-gateway.ts). */
const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");

/**
 * What the signing-key secret holds until you put your key in. Never change this text: CloudFormation
 * rewrites a secret's value only when the template's value changes, and a change here would
 * overwrite the key you put in.
 */
export const SIGNING_KEY_PLACEHOLDER = JSON.stringify({
  placeholder: "Put the gateway's signing key here: a private JWK (EC P-256 recommended). See docs/deploy-aws.md.",
});

export interface IsthmusGatewayProps {
  /** A VPC with PRIVATE_WITH_EGRESS subnets in at least two AZs. Default: a new VPC (2 AZs, public and private subnets, NAT). */
  readonly vpc?: ec2.IVpc;
  /** NAT gateways of the VPC created here (1 is cheaper; one per AZ survives an AZ outage). Default 1. */
  readonly natGateways?: number;
  /** Bring your own signing-key secret (a private JWK). Default: a new secret holding a placeholder you replace. */
  readonly signingKeySecret?: secretsmanager.ISecret;
  /** Bring your own admin-token secret. Default: a new secret with a generated 48-character token. */
  readonly adminTokenSecret?: secretsmanager.ISecret;
  /** ISTHMUS_AUDIENCE: the audience callers' JWT-SVIDs must carry. Default "isthmus". */
  readonly audience?: string;
  /** ISTHMUS_ISSUER: `iss` of the tokens the gateway signs. Default "isthmus" (use the gateway's public URL or name). */
  readonly issuer?: string;
  /** ISTHMUS_GATEWAY_NAME: the `gateway` external label of pushed metrics. */
  readonly gatewayName?: string;
  /** A declarative config file (JSON/YAML) bundled with the function and applied at cold start (ISTHMUS_CONFIG). */
  readonly configFile?: string;
  /** Cache node type. Default cache.t4g.micro. */
  readonly cacheNodeType?: string;
  /** Read replicas (each in another AZ, with automatic failover). Default 1. */
  readonly cacheReplicas?: number;
  /** Valkey engine version. Default "8.0". */
  readonly cacheEngineVersion?: string;
  /** Daily cache snapshots kept (the store holds clusters, routes and rollouts). Default 7. */
  readonly cacheSnapshotRetentionDays?: number;
  /** RESPONSE_STREAM (default; handler `streamingHandler`) or BUFFERED (handler `handler`). */
  readonly invokeMode?: lambda.InvokeMode;
  /** Function memory (MB); CPU scales with it. Default 1024. */
  readonly memorySize?: number;
  /** Function timeout: the longest request, stream included. Default 60 s. */
  readonly timeout?: Duration;
  /** How often the schedule runs the background tasks. Default 1 minute (EventBridge's minimum). */
  readonly scheduleRate?: Duration;
  /** Error-rate alarm threshold, percent of invocations. Default 5. */
  readonly errorRateThresholdPercent?: number;
  /** p99 duration alarm threshold, milliseconds. Default 3000 (raise it if you stream long responses). */
  readonly latencyP99ThresholdMs?: number;
  /** Where alarms notify. Default: no action (the alarms still show in CloudWatch). */
  readonly alarmTopic?: sns.ITopic;
  /** Log retention. Default one month. */
  readonly logRetention?: logs.RetentionDays;
  /** Extra environment variables (e.g. ISTHMUS_LOG_LEVEL, ISTHMUS_METRICS_FLUSH, ISTHMUS_ADMIN_OIDC_*). */
  readonly environment?: Record<string, string>;
  /** The Lambda entry file. Default this repository's src/runtime/lambda.ts. */
  readonly entry?: string;
  /** The project root and lock file for bundling. Default this repository. */
  readonly projectRoot?: string;
  readonly depsLockFilePath?: string;
}

export class IsthmusGateway extends Construct {
  readonly vpc: ec2.IVpc;
  readonly function: NodejsFunction;
  readonly functionUrl: lambda.FunctionUrl;
  readonly functionSecurityGroup: ec2.SecurityGroup;
  readonly cacheSecurityGroup: ec2.SecurityGroup;
  readonly cache: elasticache.CfnReplicationGroup;
  /** host:port of the cache's primary endpoint. */
  readonly cacheEndpoint: string;
  /** ISTHMUS_REDIS_URL as the function gets it (rediss://: TLS). */
  readonly redisUrl: string;
  readonly signingKeySecret: secretsmanager.ISecret;
  readonly adminTokenSecret: secretsmanager.ISecret;
  readonly schedule: events.Rule;
  readonly errorRateAlarm: cloudwatch.Alarm;
  readonly latencyAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: IsthmusGatewayProps = {}) {
    super(scope, id);

    // ------------------------------------------------------------ network
    // Private subnets with egress through NAT, not isolated subnets with VPC endpoints: the gateway
    // must reach arbitrary HTTPS endpoints on the internet (cluster gateways, SPIFFE bundle URLs,
    // OIDC JWKS, Prometheus remote write, webhooks), which endpoints cannot provide.
    this.vpc =
      props.vpc ??
      new ec2.Vpc(this, "Vpc", {
        maxAzs: 2,
        natGateways: props.natGateways ?? 1,
        subnetConfiguration: [
          { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          { name: "private", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        ],
      });
    const privateSubnets = this.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS });

    this.functionSecurityGroup = new ec2.SecurityGroup(this, "FunctionSecurityGroup", {
      vpc: this.vpc,
      description: "isthmus gateway function: outbound to the cache, Secrets Manager and the clusters",
      allowAllOutbound: true,
    });
    this.cacheSecurityGroup = new ec2.SecurityGroup(this, "CacheSecurityGroup", {
      vpc: this.vpc,
      description: "isthmus store: admits the gateway function only",
      allowAllOutbound: false,
    });
    this.cacheSecurityGroup.addIngressRule(this.functionSecurityGroup, ec2.Port.tcp(6379), "isthmus gateway function");

    // ------------------------------------------------------------ store
    // A node-based Valkey replication group with cluster mode disabled and TLS required. Not
    // ElastiCache Serverless: that is cluster-mode only, and the store uses a standalone ioredis
    // client with Lua scripts (src/store/redis.ts). One replica in another AZ with automatic failover.
    const replicas = props.cacheReplicas ?? 1;
    const subnetGroup = new elasticache.CfnSubnetGroup(this, "CacheSubnets", {
      description: "isthmus store: private subnets",
      subnetIds: privateSubnets.subnetIds,
    });
    this.cache = new elasticache.CfnReplicationGroup(this, "Cache", {
      replicationGroupDescription: "isthmus store: clusters, routes, rollouts, metric totals",
      engine: "valkey",
      engineVersion: props.cacheEngineVersion ?? "8.0",
      cacheNodeType: props.cacheNodeType ?? "cache.t4g.micro",
      numCacheClusters: 1 + replicas,
      automaticFailoverEnabled: replicas > 0,
      multiAzEnabled: replicas > 0,
      transitEncryptionEnabled: true,
      transitEncryptionMode: "required",
      atRestEncryptionEnabled: true,
      port: 6379,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [this.cacheSecurityGroup.securityGroupId],
      snapshotRetentionLimit: props.cacheSnapshotRetentionDays ?? 7,
      autoMinorVersionUpgrade: true,
    });
    // The store is the source of truth of the routing configuration: a stack deletion keeps a final snapshot.
    this.cache.applyRemovalPolicy(RemovalPolicy.SNAPSHOT);
    this.cacheEndpoint = `${this.cache.attrPrimaryEndPointAddress}:${this.cache.attrPrimaryEndPointPort}`;
    this.redisUrl = `rediss://${this.cacheEndpoint}`;

    // ------------------------------------------------------------ secrets
    this.signingKeySecret =
      props.signingKeySecret ??
      new secretsmanager.Secret(this, "SigningKey", {
        description: "isthmus gateway signing key: a private JWK (put yours in; see docs/deploy-aws.md)",
        // Not a secret: a placeholder the gateway refuses (it has no private key), loudly, until replaced.
        secretStringValue: SecretValue.unsafePlainText(SIGNING_KEY_PLACEHOLDER),
        removalPolicy: RemovalPolicy.RETAIN,
      });
    this.adminTokenSecret =
      props.adminTokenSecret ??
      new secretsmanager.Secret(this, "AdminToken", {
        description: "isthmus admin API bearer token (generated)",
        generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
      });

    // ------------------------------------------------------------ function
    const invokeMode = props.invokeMode ?? lambda.InvokeMode.RESPONSE_STREAM;
    const projectRoot = props.projectRoot ?? REPO_ROOT;
    const configFile = props.configFile ? path.resolve(props.configFile) : undefined;
    const logGroup = new logs.LogGroup(this, "Logs", { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });

    this.function = new NodejsFunction(this, "Function", {
      description: "isthmus multi-cluster mesh gateway",
      entry: props.entry ?? path.join(REPO_ROOT, "src", "runtime", "lambda.ts"),
      handler: invokeMode === lambda.InvokeMode.RESPONSE_STREAM ? "streamingHandler" : "handler",
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 1024,
      timeout: props.timeout ?? Duration.seconds(60),
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [this.functionSecurityGroup],
      logGroup,
      projectRoot,
      depsLockFilePath: props.depsLockFilePath ?? path.join(projectRoot, "package-lock.json"),
      environment: {
        ISTHMUS_REDIS_URL: this.redisUrl,
        ISTHMUS_SIGNING_KEY_SECRET_ID: this.signingKeySecret.secretArn,
        ISTHMUS_ADMIN_TOKEN_SECRET_ID: this.adminTokenSecret.secretArn,
        ISTHMUS_AUDIENCE: props.audience ?? "isthmus",
        ISTHMUS_ISSUER: props.issuer ?? "isthmus",
        ...(props.gatewayName ? { ISTHMUS_GATEWAY_NAME: props.gatewayName } : {}),
        ...(configFile ? { ISTHMUS_CONFIG: "/var/task/isthmus-config" + path.extname(configFile) } : {}),
        NODE_OPTIONS: "--enable-source-maps",
        ...props.environment,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: "node22",
        mainFields: ["module", "main"],
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // CommonJS dependencies (ioredis, undici, the AWS SDK) call require(): give the ESM bundle one.
        banner: "import { createRequire as __isthmusCreateRequire } from 'node:module'; const require = __isthmusCreateRequire(import.meta.url);",
        // Bundle everything, the AWS SDK included: the versions tested here, not the runtime's.
        externalModules: [],
        ...(configFile
          ? {
              commandHooks: {
                beforeBundling: () => [],
                beforeInstall: () => [],
                afterBundling: (_input: string, outputDir: string) => [`cp "${configFile}" "${outputDir}/isthmus-config${path.extname(configFile)}"`],
              },
            }
          : {}),
      },
    });
    // Least privilege: GetSecretValue and DescribeSecret on these two secrets, nothing else.
    this.signingKeySecret.grantRead(this.function);
    this.adminTokenSecret.grantRead(this.function);

    this.functionUrl = this.function.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE, invokeMode });

    // ------------------------------------------------------------ background work
    this.schedule = new events.Rule(this, "Schedule", {
      description: "isthmus background tasks: config, secrets, routing sync, probes, metrics flush and push, rollouts",
      schedule: events.Schedule.rate(props.scheduleRate ?? Duration.minutes(1)),
      // The default target input is the Scheduled Event itself: the function recognises it by source and detail-type.
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });

    // ------------------------------------------------------------ alarms
    const period = Duration.minutes(1);
    const fn = this.function;
    const errorRate = new cloudwatch.MathExpression({
      // Function errors (a failed start, a scheduled run that threw) plus the 5xx the Function URL
      // answered (the gateway's own 502/503/504, and function errors seen by callers, which then
      // count twice and make the alarm err on the side of firing), per invocation.
      expression: "IF(invocations > 0, 100 * (FILL(errors, 0) + FILL(url5xx, 0)) / invocations, 0)",
      usingMetrics: {
        invocations: fn.metricInvocations({ period, statistic: "Sum" }),
        errors: fn.metricErrors({ period, statistic: "Sum" }),
        url5xx: new cloudwatch.Metric({ namespace: "AWS/Lambda", metricName: "Url5xxCount", dimensionsMap: { FunctionName: fn.functionName }, period, statistic: "Sum" }),
      },
      label: "isthmus error rate (%)",
      period,
    });
    this.errorRateAlarm = new cloudwatch.Alarm(this, "ErrorRateAlarm", {
      alarmDescription: `isthmus: more than ${props.errorRateThresholdPercent ?? 5}% of invocations failed or answered 5xx (3 of the last 5 minutes)`,
      metric: errorRate,
      threshold: props.errorRateThresholdPercent ?? 5,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.latencyAlarm = new cloudwatch.Alarm(this, "LatencyAlarm", {
      alarmDescription: `isthmus: p99 invocation duration above ${props.latencyP99ThresholdMs ?? 3000} ms (3 of the last 5 minutes)`,
      metric: fn.metricDuration({ period, statistic: "p99" }),
      threshold: props.latencyP99ThresholdMs ?? 3000,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    if (props.alarmTopic) {
      for (const alarm of [this.errorRateAlarm, this.latencyAlarm]) {
        alarm.addAlarmAction(new SnsAction(props.alarmTopic));
        alarm.addOkAction(new SnsAction(props.alarmTopic));
      }
    }
  }
}
