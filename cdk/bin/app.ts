// The CDK app (cdk.json at the repository root: `npx cdk synth`, `npx cdk deploy` from there).
// Settings come from context, e.g. `npx cdk deploy -c isthmus:issuer=https://gw.example.com`:
//
//   isthmus:stackName            stack name (default "Isthmus")
//   isthmus:audience             ISTHMUS_AUDIENCE (default "isthmus")
//   isthmus:issuer               ISTHMUS_ISSUER (default "isthmus")
//   isthmus:gatewayName          ISTHMUS_GATEWAY_NAME
//   isthmus:configFile           a declarative config file bundled and applied at cold start
//   isthmus:signingKeySecretArn  an existing signing-key secret (complete ARN) instead of a new one
//   isthmus:alarmEmail           subscribe this address to the alarms
//   isthmus:natGateways          NAT gateways of the new VPC (default 1)
//   isthmus:invokeMode           RESPONSE_STREAM (default) or BUFFERED
//   isthmus:cacheNodeType        default cache.t4g.micro
import { App } from "aws-cdk-lib";
import { InvokeMode } from "aws-cdk-lib/aws-lambda";
import { IsthmusStack } from "../lib/isthmus-stack.ts";

const app = new App();
const ctx = (key: string): string | undefined => {
  const v: unknown = app.node.tryGetContext(`isthmus:${key}`);
  return v === undefined || v === null || v === "" ? undefined : String(v);
};
const num = (key: string): number | undefined => {
  const v = ctx(key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`context isthmus:${key} must be a whole number (got "${v}")`);
  return n;
};
const invokeMode = ctx("invokeMode");
if (invokeMode !== undefined && invokeMode !== "RESPONSE_STREAM" && invokeMode !== "BUFFERED") throw new Error(`context isthmus:invokeMode must be RESPONSE_STREAM or BUFFERED (got "${invokeMode}")`);

new IsthmusStack(app, ctx("stackName") ?? "Isthmus", {
  signingKeySecretArn: ctx("signingKeySecretArn"),
  alarmEmail: ctx("alarmEmail"),
  gateway: {
    audience: ctx("audience"),
    issuer: ctx("issuer"),
    gatewayName: ctx("gatewayName"),
    configFile: ctx("configFile"),
    natGateways: num("natGateways"),
    cacheNodeType: ctx("cacheNodeType"),
    invokeMode: invokeMode === "BUFFERED" ? InvokeMode.BUFFERED : InvokeMode.RESPONSE_STREAM,
  },
});
app.synth();
