// The CDK stack, asserted on its synthesized CloudFormation template (aws-cdk-lib/assertions):
// network placement, least-privilege secret access, TLS to the cache, the schedule, the alarms,
// the runtime and the Function URL. Synthesis is offline and needs no AWS credentials; bundling is
// skipped (context aws:cdk:bundling-stacks: []) except in the last suite, which bundles with the
// local esbuild and loads the bundle in a plain Node process.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { App } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { InvokeMode } from "aws-cdk-lib/aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IsthmusStack, type IsthmusStackProps } from "../../cdk/lib/isthmus-stack.ts";

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json };

/** The feature flags of cdk.json, so the template asserted is the one `npx cdk synth` produces. */
const CDK_JSON_CONTEXT = (JSON.parse(readFileSync(path.join(import.meta.dirname, "..", "..", "cdk.json"), "utf8")) as { context?: Json }).context ?? {};

/** Every app synthesizes under one temporary directory, removed at the end (not one stray directory per app). */
const OUT_ROOT = mkdtempSync(path.join(tmpdir(), "isthmus-cdk-test-"));
afterAll(() => rmSync(OUT_ROOT, { recursive: true, force: true }));

function synth(props: IsthmusStackProps = {}, bundle = false, outdir?: string): { stack: IsthmusStack; template: Template; app: App } {
  const app = new App({ outdir: outdir ?? mkdtempSync(path.join(OUT_ROOT, "app-")), context: { ...CDK_JSON_CONTEXT, ...(bundle ? {} : { "aws:cdk:bundling-stacks": [] }) } });
  const stack = new IsthmusStack(app, "Isthmus", props);
  return { stack, template: Template.fromStack(stack), app };
}

const byType = (template: Template, type: string): Array<[string, Resource]> => Object.entries(template.findResources(type)) as Array<[string, Resource]>;

function only(template: Template, type: string): [string, Resource] {
  const all = byType(template, type);
  expect(all, type).toHaveLength(1);
  return all[0] as [string, Resource];
}

describe("IsthmusStack (default settings)", () => {
  const { stack, template } = synth();
  const g = stack.gateway;
  const [fnId, fn] = only(template, "AWS::Lambda::Function");

  it("is environment-agnostic, so synthesis needs no account, region or credentials", () => {
    expect(stack.environment).toBe("aws://unknown-account/unknown-region");
  });

  it("runs the function on Node.js 22, arm64, with the streaming handler", () => {
    expect(fn.Properties.Runtime).toBe("nodejs22.x");
    expect(fn.Properties.Architectures).toEqual(["arm64"]);
    expect(fn.Properties.Handler).toBe("index.streamingHandler");
  });

  it("puts the function in the VPC's private subnets (egress through NAT), behind its own security group", () => {
    const vpcConfig = fn.Properties.VpcConfig as { SubnetIds: unknown[]; SecurityGroupIds: unknown[] };
    expect(g.vpc.privateSubnets.length).toBe(2);
    expect(vpcConfig.SubnetIds).toEqual(g.vpc.privateSubnets.map((s) => stack.resolve(s.subnetId)));
    expect(vpcConfig.SecurityGroupIds).toEqual([stack.resolve(g.functionSecurityGroup.securityGroupId)]);
    // Those subnets are private: their default route goes to a NAT gateway, not the internet gateway.
    const assoc = byType(template, "AWS::EC2::SubnetRouteTableAssociation").map(([, r]) => r.Properties);
    const routes = byType(template, "AWS::EC2::Route").map(([, r]) => r.Properties);
    for (const subnetRef of vpcConfig.SubnetIds) {
      const table = assoc.find((a) => JSON.stringify(a.SubnetId) === JSON.stringify(subnetRef))?.RouteTableId;
      const defaultRoute = routes.find((r) => JSON.stringify(r.RouteTableId) === JSON.stringify(table) && r.DestinationCidrBlock === "0.0.0.0/0");
      expect(defaultRoute?.NatGatewayId, JSON.stringify(subnetRef)).toBeDefined();
      expect(defaultRoute?.GatewayId).toBeUndefined();
    }
  });

  it("lets the function read exactly the two secrets (GetSecretValue, DescribeSecret), and nothing else", () => {
    const roleRef = (fn.Properties.Role as { "Fn::GetAtt": [string, string] })["Fn::GetAtt"][0];
    const policies = byType(template, "AWS::IAM::Policy").filter(([, p]) => JSON.stringify(p.Properties.Roles).includes(roleRef));
    const statements = policies.flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Json[] }).Statement);
    const secretStatements = statements.filter((s) => [s.Action].flat().some((a) => String(a).startsWith("secretsmanager:")));
    expect(secretStatements).toHaveLength(1);
    const st = secretStatements[0] as Json;
    expect(st.Effect).toBe("Allow");
    expect([st.Action].flat().sort()).toEqual(["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]);
    const resources = [st.Resource].flat();
    const expected = [g.signingKeySecret.secretArn, g.adminTokenSecret.secretArn].map((a) => stack.resolve(a));
    expect(resources).toHaveLength(2);
    expect(resources).toEqual(expect.arrayContaining(expected));
    // No wildcard anywhere in the function's inline policies.
    for (const s of statements) for (const r of [s.Resource].flat()) expect(JSON.stringify(r)).not.toContain("*");
    // The managed policies are the standard Lambda ones (logs, VPC network interfaces): no secret access.
    const role = template.findResources("AWS::IAM::Role")[roleRef] as Resource;
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toMatch(/AWSLambdaBasicExecutionRole.*AWSLambdaVPCAccessExecutionRole/);
    expect(role.Properties.ManagedPolicyArns as unknown[]).toHaveLength(2);
    // The secrets are the ones the function is told about.
    const env = (fn.Properties.Environment as { Variables: Json }).Variables;
    expect(env.ISTHMUS_SIGNING_KEY_SECRET_ID).toEqual(stack.resolve(g.signingKeySecret.secretArn));
    expect(env.ISTHMUS_ADMIN_TOKEN_SECRET_ID).toEqual(stack.resolve(g.adminTokenSecret.secretArn));
  });

  it("creates the admin token (generated) and a signing-key secret that holds a placeholder until the user puts a key in", () => {
    template.resourceCountIs("AWS::SecretsManager::Secret", 2);
    template.hasResourceProperties("AWS::SecretsManager::Secret", { GenerateSecretString: Match.objectLike({ PasswordLength: 48, ExcludePunctuation: true }) });
    template.hasResource("AWS::SecretsManager::Secret", { Properties: { SecretString: Match.stringLikeRegexp("placeholder") }, DeletionPolicy: "Retain" });
  });

  it("talks to the cache over TLS only (rediss://), and the cache admits the function's security group alone", () => {
    const [cacheId, cache] = only(template, "AWS::ElastiCache::ReplicationGroup");
    expect(cache.Properties).toMatchObject({ Engine: "valkey", TransitEncryptionEnabled: true, TransitEncryptionMode: "required", AtRestEncryptionEnabled: true, NumCacheClusters: 2, AutomaticFailoverEnabled: true, MultiAZEnabled: true });
    const url = (fn.Properties.Environment as { Variables: Json }).Variables.ISTHMUS_REDIS_URL as { "Fn::Join": [string, unknown[]] };
    const parts = url["Fn::Join"][1];
    expect(parts[0]).toBe("rediss://");
    expect(parts[1]).toEqual({ "Fn::GetAtt": [cacheId, "PrimaryEndPoint.Address"] });
    expect(cache.Properties.SecurityGroupIds).toEqual([stack.resolve(g.cacheSecurityGroup.securityGroupId)]);
    // Inbound to the cache: one rule, port 6379, from the function's security group; no CIDR at all.
    const ingress = byType(template, "AWS::EC2::SecurityGroupIngress").map(([, r]) => r.Properties);
    expect(ingress).toHaveLength(1);
    expect(ingress[0]).toMatchObject({ IpProtocol: "tcp", FromPort: 6379, ToPort: 6379, SourceSecurityGroupId: stack.resolve(g.functionSecurityGroup.securityGroupId), GroupId: stack.resolve(g.cacheSecurityGroup.securityGroupId) });
    const [, cacheSg] = byType(template, "AWS::EC2::SecurityGroup").find(([id]) => id === (stack.resolve(g.cacheSecurityGroup.securityGroupId) as { "Fn::GetAtt": [string] })["Fn::GetAtt"][0]) as [string, Resource];
    expect(cacheSg.Properties.SecurityGroupIngress).toBeUndefined();
  });

  it("exposes a public Function URL in RESPONSE_STREAM mode (auth NONE: the gateway authenticates every request)", () => {
    const [, url] = only(template, "AWS::Lambda::Url");
    expect(url.Properties).toMatchObject({ AuthType: "NONE", InvokeMode: "RESPONSE_STREAM", TargetFunctionArn: { "Fn::GetAtt": [fnId, "Arn"] } });
  });

  it("invokes the function every minute from an EventBridge schedule, with the Scheduled Event as input", () => {
    const [ruleId, rule] = only(template, "AWS::Events::Rule");
    expect(rule.Properties.ScheduleExpression).toBe("rate(1 minute)");
    const targetsOf = rule.Properties.Targets as Json[];
    expect(targetsOf).toHaveLength(1);
    expect(targetsOf[0]).toMatchObject({ Arn: { "Fn::GetAtt": [fnId, "Arn"] } });
    // No Input/InputPath: the function recognises the event by source "aws.events" and detail-type "Scheduled Event".
    expect(targetsOf[0]?.Input).toBeUndefined();
    template.hasResourceProperties("AWS::Lambda::Permission", { Principal: "events.amazonaws.com", SourceArn: { "Fn::GetAtt": [ruleId, "Arn"] }, FunctionName: { "Fn::GetAtt": [fnId, "Arn"] } });
  });

  it("alarms on the error rate (function errors and Function URL 5xx per invocation) and on p99 duration", () => {
    template.resourceCountIs("AWS::CloudWatch::Alarm", 2);
    const alarms = byType(template, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties);
    const errorRate = alarms.find((a) => a.Metrics !== undefined) as Json;
    const metrics = errorRate.Metrics as Array<{ Id: string; Expression?: string; MetricStat?: { Metric: { MetricName: string; Namespace: string; Dimensions: Json[] }; Stat: string } }>;
    const names = Object.fromEntries(metrics.filter((m) => m.MetricStat).map((m) => [m.Id, m.MetricStat!.Metric.MetricName]));
    expect(names).toEqual({ invocations: "Invocations", errors: "Errors", url5xx: "Url5xxCount" });
    for (const m of metrics.filter((x) => x.MetricStat)) {
      expect(m.MetricStat!.Metric.Namespace).toBe("AWS/Lambda");
      expect(m.MetricStat!.Stat).toBe("Sum");
      expect(m.MetricStat!.Metric.Dimensions).toEqual([{ Name: "FunctionName", Value: { Ref: fnId } }]);
    }
    expect(metrics.find((m) => m.Expression)?.Expression).toMatch(/errors.*url5xx.*\/ invocations/);
    expect(errorRate).toMatchObject({ Threshold: 5, ComparisonOperator: "GreaterThanThreshold", TreatMissingData: "notBreaching" });

    const latency = alarms.find((a) => a.MetricName === "Duration") as Json;
    expect(latency).toMatchObject({ Namespace: "AWS/Lambda", ExtendedStatistic: "p99", Threshold: 3000, Dimensions: [{ Name: "FunctionName", Value: { Ref: fnId } }] });
  });

  it("outputs what an operator needs: the URL, both secret ARNs and the cache endpoint", () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(Object.keys(outputs)).toEqual(expect.arrayContaining(["GatewayUrl", "SigningKeySecretArn", "AdminTokenSecretArn", "CacheEndpoint", "FunctionName"]));
    expect(outputs.SigningKeySecretArn?.Value).toEqual(stack.resolve(g.signingKeySecret.secretArn));
    expect(JSON.stringify(outputs.CacheEndpoint?.Value)).toContain("PrimaryEndPoint.Address");
    expect(JSON.stringify(outputs.GatewayUrl?.Value)).toContain("FunctionUrl");
  });
});

describe("IsthmusStack options", () => {
  it("BUFFERED mode uses the buffered handler and a BUFFERED Function URL", () => {
    const { template } = synth({ gateway: { invokeMode: InvokeMode.BUFFERED } });
    template.hasResourceProperties("AWS::Lambda::Function", { Handler: "index.handler" });
    template.hasResourceProperties("AWS::Lambda::Url", { InvokeMode: "BUFFERED", AuthType: "NONE" });
  });

  it("an existing signing-key secret is used instead of a new one, and granted by its exact ARN", () => {
    const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:isthmus/signing-key-AbCdEf";
    const { template } = synth({ signingKeySecretArn: arn });
    template.resourceCountIs("AWS::SecretsManager::Secret", 1);
    template.hasResourceProperties("AWS::Lambda::Function", { Environment: { Variables: Match.objectLike({ ISTHMUS_SIGNING_KEY_SECRET_ID: arn }) } });
    const statements = byType(template, "AWS::IAM::Policy").flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Json[] }).Statement);
    const resources = statements.flatMap((s) => [s.Resource].flat());
    expect(resources).toContain(arn);
    expect(JSON.stringify(resources)).not.toContain("*");
  });

  it("an alarm email subscribes to both alarms through one SNS topic", () => {
    const { template } = synth({ alarmEmail: "oncall@example.com" });
    template.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "oncall@example.com" });
    for (const [, a] of byType(template, "AWS::CloudWatch::Alarm")) expect((a.Properties.AlarmActions as unknown[]).length).toBe(1);
  });

  it("audience, issuer and a bundled config file reach the function's environment", () => {
    const { template } = synth({ gateway: { audience: "mesh", issuer: "https://gw.example.com", configFile: "infra/isthmus.yaml" } });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: Match.objectLike({ ISTHMUS_AUDIENCE: "mesh", ISTHMUS_ISSUER: "https://gw.example.com", ISTHMUS_CONFIG: "/var/task/isthmus-config.yaml" }) },
    });
  });
});

describe("the bundle NodejsFunction builds (local esbuild, ESM)", () => {
  let dir: string;
  let assetDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "isthmus-cdk-"));
    const configFile = path.join(dir, "gateway.yaml");
    await writeFile(configFile, "clusters: {}\nroutes: {}\n");
    const { app } = synth({ gateway: { configFile } }, true, path.join(dir, "cdk.out"));
    const assembly = app.synth();
    const assets = readdirSync(assembly.directory).filter((d) => d.startsWith("asset."));
    expect(assets).toHaveLength(1);
    assetDir = path.join(assembly.directory, assets[0] as string);
  }, 60_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("holds index.mjs with its source map, and the config file next to it", () => {
    expect(existsSync(path.join(assetDir, "index.mjs"))).toBe(true);
    expect(existsSync(path.join(assetDir, "index.mjs.map"))).toBe(true);
    expect(existsSync(path.join(assetDir, "isthmus-config.yaml"))).toBe(true);
  });

  it("loads in a plain Node process (CommonJS dependencies resolved through the require banner) and serves through both handlers", async () => {
    const script = `
      globalThis.awslambda = { streamifyResponse: (f) => f, HttpResponseStream: { from: (s, meta) => { s.meta = meta; return s; } } };
      const { Writable } = await import("node:stream");
      const m = await import(${JSON.stringify(path.join(assetDir, "index.mjs"))});
      const event = (p) => ({ version: "2.0", routeKey: "$default", rawPath: p, rawQueryString: "", headers: { host: "x.lambda-url.eu-west-1.on.aws" },
        requestContext: { domainName: "x.lambda-url.eu-west-1.on.aws", http: { method: "GET", path: p, sourceIp: "192.0.2.1" } }, isBase64Encoded: false });
      const buffered = await m.handler(event("/_isthmus/healthz"));
      const chunks = [];
      const sink = new Writable({ write(c, _e, cb) { chunks.push(Buffer.from(c)); cb(); } });
      await m.streamingHandler(event("/_isthmus/readyz"), sink, {});
      console.log(JSON.stringify({ exports: Object.keys(m).sort(), buffered: buffered.statusCode, streamed: sink.meta?.statusCode, streamedBody: Buffer.concat(chunks).toString() }));
      process.exit(0);
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: tmpdir(),
      env: { PATH: process.env.PATH, ISTHMUS_LOG_LEVEL: "error", ISTHMUS_CONFIG: path.join(assetDir, "isthmus-config.yaml") },
      timeout: 30_000,
    });
    const out = JSON.parse(stdout.trim().split("\n").at(-1) as string) as { exports: string[]; buffered: number; streamed: number; streamedBody: string };
    expect(out.exports).toEqual(expect.arrayContaining(["handler", "streamingHandler"]));
    expect(out.buffered).toBe(200);
    expect(out.streamed).toBe(200);
    expect(out.streamedBody).toContain("ready");
  });
});
