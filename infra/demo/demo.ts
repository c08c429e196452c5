// `npm run demo`: the gateway with the embedded store, two local upstreams standing for the
// clusters "east" and "west", and a 90/10 route, then the curl commands to try it.
import { fileURLToPath } from "node:url";
import { startNodeGateway } from "../../src/runtime/node.ts";
import { createLogger, type LogLevel } from "../../src/util/log.ts";
import { startEchoServer } from "./echo-server.ts";

const port = Number(process.env.PORT ?? 8080);
const token = process.env.ISTHMUS_ADMIN_TOKEN ?? "demo-admin-token";
const configPath = fileURLToPath(new URL("./isthmus.demo.yaml", import.meta.url));

const east = await startEchoServer("east", 9101);
const west = await startEchoServer("west", 9102);
const gw = await startNodeGateway({
  port,
  configPath,
  adminToken: token,
  log: createLogger((process.env.ISTHMUS_LOG_LEVEL as LogLevel | undefined) ?? "warn"),
});

const base = gw.url.replace("127.0.0.1", "localhost");
console.log(`
isthmus demo is running (embedded store, config ${configPath})
  gateway  ${gw.url}
  east     ${east.url}   (stands for cluster "east")
  west     ${west.url}   (stands for cluster "west")

Try it:
  # one request through the 90/10 route (see "cluster" in the answer)
  curl -s -H 'Host: checkout.demo' ${base}/cart

  # 100 requests: about 90 land on east, 10 on west
  for i in $(seq 100); do curl -s -H 'Host: checkout.demo' ${base}/ | grep -o '"cluster": "[a-z]*"'; done | sort | uniq -c

  # sticky: the same x-user-id always gets the same cluster
  for i in $(seq 5); do curl -s -H 'Host: checkout.demo' -H 'x-user-id: alice' ${base}/ | grep -o '"cluster": "[a-z]*"'; done

  # the admin API (token: ${token})
  curl -s -H 'Authorization: Bearer ${token}' ${base}/_isthmus/v1/routes/checkout
  curl -s -H 'Authorization: Bearer ${token}' '${base}/_isthmus/v1/explain?host=checkout.demo&path=/cart'

  # shift to 50/50 (If-Match makes the write conditional on the revision you saw)
  curl -s -X PUT -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' -H 'If-Match: "1"' \\
    ${base}/_isthmus/v1/routes/checkout \\
    -d '{"hostnames":["checkout.demo"],"authorization":{"unauthenticated":true},"rules":[{"name":"default","backendRefs":[{"cluster":"east","service":"checkout.shop.svc.cluster.local","port":8080,"weight":50},{"cluster":"west","service":"checkout.shop.svc.cluster.local","port":8080,"weight":50}]}]}'

  # history and rollback
  curl -s -H 'Authorization: Bearer ${token}' ${base}/_isthmus/v1/routes/checkout/revisions
  curl -s -X POST -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' ${base}/_isthmus/v1/routes/checkout/rollback -d '{"toRevision":1}'

Press Ctrl-C to stop.
`);

const stop = async () => {
  await gw.close();
  await Promise.all([east.close(), west.close()]);
  process.exit(0);
};
process.once("SIGINT", () => void stop());
process.once("SIGTERM", () => void stop());
