// isthmus clusters / routes / route get / apply (and --dry-run), usage errors and API errors, run as
// the real binary against a real gateway on the shared Redis with real upstreams.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningGateway } from "../../src/runtime/node.ts";
import { refusedPort, startUpstream, type Upstream } from "../helpers/upstream.ts";
import { admin, buildConfigWith, cli, json, startGateway, tempDir, TOKEN, until } from "./helpers.ts";

let gw: RunningGateway;
let east: Upstream;
let west: Upstream;
let files: Awaited<ReturnType<typeof tempDir>>;

const SVC = "checkout.shop.svc.cluster.local";

beforeAll(async () => {
  east = await startUpstream("east");
  west = await startUpstream("west");
  files = await tempDir();
  gw = await startGateway(
    buildConfigWith(
      { east: { endpoint: east.url, trustDomain: "east.example" }, west: { endpoint: west.url, trustDomain: "west.example" } },
      {
        checkout: {
          hostnames: ["checkout.shop"],
          authorization: { unauthenticated: true },
          rules: [{ name: "default", backendRefs: [{ cluster: "east", service: SVC, port: 8080, weight: 90 }, { cluster: "west", service: SVC, port: 8080, weight: 10 }] }],
        },
      },
    ),
  );
});

afterAll(async () => {
  await gw?.close();
  await east?.close();
  await west?.close();
  await files?.close();
});

describe("reading", () => {
  it("clusters: a table with endpoint, trust domain, alive, latency and last error", async () => {
    // Wait until both probes have answered, so ALIVE is known.
    const r = await until("both probes answered", async () => {
      const out = await cli(["clusters"], { url: gw.url });
      return out.stdout.includes("unknown") ? undefined : out;
    });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+ENDPOINT\s+TRUST-DOMAIN\s+ALIVE\s+LATENCY\s+LAST-ERROR$/);
    expect(lines[1]).toMatch(new RegExp(`^east\\s+${east.url.replace(/\./g, "\\.")}\\s+east\\.example\\s+yes\\s+\\d+(\\.\\d)?ms\\s+-$`));
    expect(lines[2]).toMatch(/^west\s+http:\/\/127\.0\.0\.1:\d+\s+west\.example\s+yes\s+/);
  });

  it("clusters --json: the admin API's items, with health", async () => {
    const r = await cli(["clusters", "--json"], { url: gw.url });
    expect(r.code).toBe(0);
    const body = json<{ items: Array<{ name: string; status: { health: { alive: boolean } } }> }>(r);
    expect(body.items.map((c) => c.name)).toEqual(["east", "west"]);
    expect(r.stdout).not.toContain("\x1b[");
  });

  it("routes: name, hosts, rules and revision", async () => {
    const r = await cli(["routes"], { url: gw.url });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual([expect.stringMatching(/^NAME\s+HOSTS\s+RULES\s+REVISION$/), expect.stringMatching(/^checkout\s+checkout\.shop\s+1\s+1$/)]);
  });

  it("route get: each backend's weight as a bar with its share", async () => {
    const r = await cli(["route", "get", "checkout"], { url: gw.url });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("route/checkout  revision 1");
    expect(r.stdout).toContain("authorization: anyone (unauthenticated)");
    expect(r.stdout).toContain("rule default");
    expect(r.stdout).toContain(`east  ██████████████████░░ 90%   ${SVC}:8080  weight 90`);
    expect(r.stdout).toContain(`west  ██░░░░░░░░░░░░░░░░░░ 10%   ${SVC}:8080  weight 10`);
  });

  it("route get of a missing route: the API's problem, exit 1", async () => {
    const r = await cli(["route", "get", "nope"], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: Not found (HTTP 404, GET /_isthmus/v1/routes/nope): route "nope" does not exist');
    const j = await cli(["route", "get", "nope", "--json"], { url: gw.url });
    expect(j.code).toBe(1);
    expect(json<{ error: { status: number } }>(j).error.status).toBe(404);
  });

  it("a wrong admin token: 401 with a hint, exit 1", async () => {
    const r = await cli(["routes"], { url: gw.url, token: "wrong" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("HTTP 401");
    expect(r.stderr).toContain("hint: the gateway refused the admin token");
  });

  it("--url and --token override the environment", async () => {
    const r = await cli(["routes", "--url", gw.url, "--token", TOKEN], { url: `http://127.0.0.1:${await refusedPort()}`, token: "wrong" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("checkout");
  });

  it("an unreachable gateway: the network reason, exit 1", async () => {
    const port = await refusedPort();
    const r = await cli(["routes"], { url: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the gateway at http://127.0.0.1:${port}: connect ECONNREFUSED`);
  });
});

describe("usage errors exit 2", () => {
  it.each([
    [[], /usage: isthmus COMMAND/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["route"], /did you mean one of: route get/],
    [["route", "get"], /"route get" needs NAME/],
    [["routes", "--full"], /"routes" does not take --full/],
    [["routes", "extra"], /unexpected argument "extra"/],
    [["routes", "--bogus"], /Unknown option '--bogus'/],
    [["stat", "--window", "soon"], /--window "soon" is not a duration/],
  ])("isthmus %j", async (args, message) => {
    const r = await cli(args, { url: gw.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("no ISTHMUS_URL", async () => {
    const r = await cli(["routes"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("set ISTHMUS_URL or pass --url");
  });

  it("--help is not an error", async () => {
    const r = await cli(["rollout", "get", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("usage: isthmus rollout get NAME [--watch]");
  });
});

describe("apply", () => {
  const doc = () => `
clusters:
  east:
    endpoint: ${east.url}
    trustDomain: east.example
  central:
    endpoint: ${west.url}/central
    trustDomain: central.example
routes:
  checkout:
    hostnames: [checkout.shop]
    authorization: { unauthenticated: true }
    rules:
      - name: default
        backendRefs:
          - { cluster: east, service: ${SVC}, port: 8080, weight: 80 }
          - { cluster: west, service: ${SVC}, port: 8080, weight: 20 }
  search:
    hostnames: [search.shop]
    rules:
      - backendRefs: [{ cluster: central, service: search.shop.svc.cluster.local }]
`;

  it("--dry-run prints a diff per resource and writes nothing; apply writes; a second apply is all unchanged", async () => {
    const file = await files.file("shop.yaml", doc());
    const before = await admin<{ revision: number }>(gw, "GET", "/routes/checkout");

    const dry = await cli(["apply", "-f", file, "--dry-run"], { url: gw.url });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("cluster/east unchanged");
    expect(dry.stdout).toContain("cluster/central created (dry run)");
    expect(dry.stdout).toContain("route/checkout changed (dry run)");
    expect(dry.stdout).toContain(`--- route/checkout (gateway, revision ${before.body.revision})`);
    expect(dry.stdout).toContain(`+++ route/checkout (${file})`);
    expect(dry.stdout).toMatch(/^-\s+"weight": 90$/m);
    expect(dry.stdout).toMatch(/^\+\s+"weight": 80$/m);
    expect(dry.stdout).toContain("route/search created (dry run)");
    expect(dry.stdout).toContain("--- route/search (absent)");
    expect(dry.stdout).toContain("dry run, nothing written: would create 2, change 1, unchanged 1");
    // Nothing was written.
    expect((await admin<{ revision: number }>(gw, "GET", "/routes/checkout")).body.revision).toBe(before.body.revision);
    expect((await admin(gw, "GET", "/routes/search")).status).toBe(404);
    expect((await admin(gw, "GET", "/clusters/central")).status).toBe(404);

    const first = await cli(["apply", "-f", file], { url: gw.url });
    expect(first.code).toBe(0);
    expect(first.stdout.trim().split("\n")).toEqual([
      "cluster/east unchanged",
      "cluster/central created",
      `route/checkout changed (revision ${before.body.revision + 1})`,
      "route/search created (revision 1)",
      "created 2, changed 1, unchanged 1",
    ]);
    const after = await admin<{ rules: Array<{ backendRefs: Array<{ weight: number }> }>; revision: number }>(gw, "GET", "/routes/checkout");
    expect(after.body.rules[0]?.backendRefs.map((b) => b.weight)).toEqual([80, 20]);

    const second = await cli(["apply", "-f", file, "--json"], { url: gw.url });
    expect(second.code).toBe(0);
    const items = json<{ items: Array<{ kind: string; name: string; outcome: string }> }>(second).items;
    expect(items.map((i) => `${i.kind}/${i.name} ${i.outcome}`)).toEqual(["cluster/east unchanged", "cluster/central unchanged", "route/checkout unchanged", "route/search unchanged"]);
    expect((await admin<{ revision: number }>(gw, "GET", "/routes/checkout")).body.revision).toBe(after.body.revision);
    const revisions = await admin<{ items: unknown[] }>(gw, "GET", "/routes/checkout/revisions");
    expect(revisions.body.items).toHaveLength(after.body.revision);

    const dryAgain = await cli(["apply", "-f", file, "--dry-run"], { url: gw.url });
    expect(dryAgain.stdout).toContain("would create 0, change 0, unchanged 4");
    expect(dryAgain.stdout).not.toContain("---");
  });

  it("JSON files and stdin work too", async () => {
    const ping = { routes: { ping: { hostnames: ["ping.shop"], authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "east", service: "ping.shop" }] }] } } };
    const file = await files.file("one.json", JSON.stringify(ping));
    const r = await cli(["apply", "-f", file], { url: gw.url });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("route/ping created (revision 1)");
    const piped = await cli(["apply", "-f", "-"], { url: gw.url, input: JSON.stringify(ping) });
    expect(piped.code).toBe(0);
    expect(piped.stdout).toContain("route/ping unchanged");
  });

  it("an invalid file: every problem with its path, nothing written, exit 1", async () => {
    const file = await files.file(
      "bad.yaml",
      `routes:
  broken:
    hostnames: [broken.shop]
    rules:
      - backendRefs:
          - { cluster: east, service: x.shop, weight: 5000, wieght: 1 }
`,
    );
    const r = await cli(["apply", "-f", file], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("routes.broken.rules[0].backendRefs[0].weight: must be 0..1000");
    expect(r.stderr).toContain('routes.broken.rules[0].backendRefs[0].wieght: unknown field "wieght"');
    expect((await admin(gw, "GET", "/routes/broken")).status).toBe(404);
  });

  it("a route naming a cluster nobody has: refused before anything is written", async () => {
    const file = await files.file(
      "unknown.yaml",
      `clusters:
  north: { endpoint: "${east.url}", trustDomain: north.example }
routes:
  lost:
    rules: [{ backendRefs: [{ cluster: nowhere, service: x.shop }] }]
`,
    );
    const r = await cli(["apply", "-f", file], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('routes.lost.rules[0].backendRefs[0].cluster: unknown cluster "nowhere" (not in this file, not on the gateway)');
    expect((await admin(gw, "GET", "/clusters/north")).status).toBe(404);
  });

  it("the gateway's refusal is printed with the problem's field paths, exit 1", async () => {
    // A second cluster claiming east's trust domain: 409 from the store, with the path trustDomain.
    const file = await files.file("clash.yaml", `clusters:\n  copy: { endpoint: "${east.url}", trustDomain: east.example }\n`);
    const r = await cli(["apply", "-f", file], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: cluster/copy: Conflict (HTTP 409, PUT /_isthmus/v1/clusters/copy)");
    expect(r.stderr).toContain('  trustDomain: already used by cluster "east"');
    expect(r.stdout).toContain("1 failed");
  });

  it("a missing file, and no -f", async () => {
    const r = await cli(["apply", "-f", "/nonexistent/x.yaml"], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot read /nonexistent/x.yaml: ENOENT");
    const u = await cli(["apply"], { url: gw.url });
    expect(u.code).toBe(2);
    expect(u.stderr).toContain("apply needs -f FILE");
  });
});
