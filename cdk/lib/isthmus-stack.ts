// The ready-made isthmus stack: the IsthmusGateway construct and the outputs an operator needs.
// Environment-agnostic (no account or region in the code), so `npx cdk synth` works offline; the
// CLI's credentials choose where `npx cdk deploy` goes.
import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type { Construct } from "constructs";
import { IsthmusGateway, type IsthmusGatewayProps } from "./isthmus-gateway.ts";

export interface IsthmusStackProps extends StackProps {
  gateway?: IsthmusGatewayProps;
  /** ARN of an existing signing-key secret (complete ARN, with its 6-character suffix) instead of a new one. */
  signingKeySecretArn?: string;
  /** Email address subscribed to the alarms (confirm the subscription mail). */
  alarmEmail?: string;
}

export class IsthmusStack extends Stack {
  readonly gateway: IsthmusGateway;

  constructor(scope: Construct, id: string, props: IsthmusStackProps = {}) {
    super(scope, id, { description: "isthmus: serverless multi-cluster mesh gateway (Lambda, Function URL, ElastiCache Valkey, Secrets Manager)", ...props });

    let alarmTopic: sns.ITopic | undefined = props.gateway?.alarmTopic;
    if (!alarmTopic && props.alarmEmail) {
      const topic = new sns.Topic(this, "Alarms", { displayName: "isthmus alarms" });
      topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
      alarmTopic = topic;
    }
    const signingKeySecret = props.signingKeySecretArn ? secretsmanager.Secret.fromSecretCompleteArn(this, "ExistingSigningKey", props.signingKeySecretArn) : props.gateway?.signingKeySecret;

    this.gateway = new IsthmusGateway(this, "Gateway", {
      ...props.gateway,
      ...(signingKeySecret ? { signingKeySecret } : {}),
      ...(alarmTopic ? { alarmTopic } : {}),
    });
    const g = this.gateway;

    new CfnOutput(this, "GatewayUrl", { value: g.functionUrl.url, description: "The gateway's public URL (Function URL; the gateway authenticates every request)" });
    new CfnOutput(this, "FunctionName", { value: g.function.functionName, description: "The gateway function (logs: /aws/lambda/<name> log group below)" });
    new CfnOutput(this, "LogGroupName", { value: g.function.logGroup.logGroupName });
    new CfnOutput(this, "SigningKeySecretArn", { value: g.signingKeySecret.secretArn, description: "Put the gateway's private JWK here: aws secretsmanager put-secret-value --secret-id <arn> --secret-string file://signing-key.jwk.json" });
    new CfnOutput(this, "AdminTokenSecretArn", { value: g.adminTokenSecret.secretArn, description: "The admin API token: aws secretsmanager get-secret-value --secret-id <arn> --query SecretString --output text" });
    new CfnOutput(this, "CacheEndpoint", { value: g.cacheEndpoint, description: "ElastiCache Valkey primary endpoint (TLS only, reachable from the function only)" });
    new CfnOutput(this, "ErrorRateAlarmName", { value: g.errorRateAlarm.alarmName });
    new CfnOutput(this, "LatencyAlarmName", { value: g.latencyAlarm.alarmName });
  }
}
