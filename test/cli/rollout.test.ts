// isthmus rollout start / get / promote / pause / resume / abort / retry, and `rollout get --watch`
// in non-TTY mode (one line per change, exit 0 on Succeeded, 1 on Aborted), run as the real binary
// against a real gateway whose own controller drives the rollouts.
import { spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningGateway } from "../../src/runtime/node.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";
import { admin, BIN, buildConfigWith, cli, json, startCli, startGateway, tempDir, TOKEN, until } from "./helpers.ts";

const hasScript = spawnSync("script", ["--version"]).status === 0;

let gw: RunningGateway;
let east: Upstream;
let west: Upstream;
let files: Awaited<ReturnType<typeof tempDir>>;

const STABLE = { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 };
const CANARY = { cluster: "west", service: "checkout-v2.shop.svc.cluster.local", port: 8080 };

const route = (host: string) => ({ hostnames: [host], authorization: { unauthenticated: true as const }, rules: [{ name: "default", backendRefs: [{ ...STABLE, weight: 100 }] }] });

beforeAll(async () => {
  east = await startUpstream("east");
  west = await startUpstream("west");
  files = await tempDir();
  gw = await startGateway(buildConfigWith({ east: { endpoint: east.url, trustDomain: "east.example" }, west: { endpoint: west.url, trustDomain: "west.example" } }, { checkout: route("checkout.shop"), search: route("search.shop"), tty: route("tty.shop") }));
});

afterAll(async () => {
  await gw?.close();
  await east?.close();
  await west?.close();
  await files?.close();
});

interface RolloutJson {
  name: string;
  status: { phase: string; step: number; canaryWeight: number; message: string; weights: { stable: number; canary: number } };
}

const phaseOf = async (name: string) => (await admin<RolloutJson>(gw, "GET", `/rollouts/${name}`)).body.status;
const waitPhase = (name: string, phase: string) => until(`${name} ${phase}`, async () => ((await phaseOf(name)).phase === phase ? true : undefined), 15_000);

describe("rollouts", () => {
  it("start, get, promote through a pause, and --watch until Succeeded (exit 0)", async () => {
    const file = await files.file(
      "checkout-v2.yaml",
      `name: checkout-v2
route: checkout
rule: default
stable: { cluster: east, service: checkout.shop.svc.cluster.local, port: 8080 }
canary: { cluster: west, service: checkout-v2.shop.svc.cluster.local, port: 8080 }
steps:
  - setWeight: 20
  - pause: {}
  - setWeight: 60
  - pause: { duration: 500ms }
  - setWeight: 100
`,
    );
    const started = await cli(["rollout", "start", "-f", file], { url: gw.url });
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toContain("rollout/checkout-v2 started: route checkout, rule default, 5 steps, east/checkout.shop.svc.cluster.local:8080 -> west/checkout-v2.shop.svc.cluster.local:8080");

    await waitPhase("checkout-v2", "Paused");
    const got = await cli(["rollout", "get", "checkout-v2"], { url: gw.url });
    expect(got.code).toBe(0);
    expect(got.stdout).toContain("rollout/checkout-v2   Paused   route checkout, rule default");
    expect(got.stdout).toContain("steps     ████░░░░░░░░░░░░░░░░ step 2/5 pause until promoted");
    expect(got.stdout).toMatch(/stable east\/checkout\.shop\.svc\.cluster\.local:8080\s+████████████████░░░░ 80%/);
    expect(got.stdout).toMatch(/canary west\/checkout-v2\.shop\.svc\.cluster\.local:8080\s+████░░░░░░░░░░░░░░░░ 20%/);
    expect(got.stdout).toContain("analysis  none configured");
    expect(got.stdout).toContain("message   step 2/5: paused until promoted");
    expect(json<RolloutJson>(await cli(["rollout", "get", "checkout-v2", "--json"], { url: gw.url })).status.weights).toEqual({ stable: 80, canary: 20 });

    const listed = await cli(["rollouts"], { url: gw.url });
    expect(listed.stdout).toMatch(/^checkout-v2\s+checkout\s+default\s+Paused\s+2\/5 pause until promoted\s+20%/m);

    // Watch (stdout is a pipe: one line per change) while the rollout is promoted past its pause.
    const watch = startCli(["rollout", "get", "checkout-v2", "--watch", "--interval", "100ms"], { url: gw.url });
    await until("the watch printed its first line", async () => (watch.stdout().includes("\n") ? true : undefined));
    const promoted = await cli(["rollout", "promote", "checkout-v2"], { url: gw.url });
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toMatch(/^rollout\/checkout-v2 promoted: Progressing, step 3\/5 setWeight 60, canary 20%/);

    const w = await watch.done;
    expect(w.code, w.stderr).toBe(0);
    const lines = w.stdout.trim().split("\n");
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const l of lines) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\S+Z rollout\/checkout-v2 (Paused|Progressing|Succeeded) step .* canary \d+% stable \d+%: /);
    expect(lines[0]).toContain("Paused step 2/5 pause until promoted canary 20% stable 80%");
    expect(lines.some((l) => l.includes("canary 60% stable 40%"))).toBe(true);
    expect(lines.at(-1)).toContain("Succeeded step 5/5 done canary 100% stable 0%: promoted: the canary takes all traffic");
    expect(w.stdout).not.toContain("\x1b[");

    const route = await admin<{ rules: Array<{ backendRefs: Array<{ cluster: string; weight: number }> }> }>(gw, "GET", "/routes/checkout");
    expect(route.body.rules[0]?.backendRefs.map((b) => `${b.cluster}:${b.weight}`)).toEqual(["east:0", "west:100"]);

    // A watch of a finished rollout exits at once with its verdict.
    const again = await cli(["rollout", "get", "checkout-v2", "--watch"], { url: gw.url });
    expect(again.code).toBe(0);
    expect(again.stdout.trim().split("\n")).toHaveLength(1);
  });

  it.skipIf(!hasScript)("--watch on a terminal draws the view in place (through script(1), a real pty)", async () => {
    const spec = { name: "tty-v2", route: "tty", rule: "default", stable: STABLE, canary: CANARY, steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 100 }] };
    expect((await admin(gw, "POST", "/rollouts", spec)).status).toBe(201);
    await waitPhase("tty-v2", "Paused");
    const command = `${process.execPath} ${BIN} rollout get tty-v2 --watch --interval 100ms`;
    const run = spawn("script", ["-qec", command, "/dev/null"], { env: { PATH: process.env.PATH ?? "", ISTHMUS_URL: gw.url, ISTHMUS_ADMIN_TOKEN: TOKEN, TERM: "xterm", COLUMNS: "200" }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    run.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => run.once("close", resolve));
    await until("the first frame", async () => (out.includes("Ctrl-C to stop") ? true : undefined));
    expect((await admin(gw, "POST", "/rollouts/tty-v2/promote", {})).status).toBe(200);
    expect(await exited).toBe(0);
    expect(out).toContain("\x1b[?25l"); // cursor hidden while drawing
    // eslint-disable-next-line no-control-regex
    expect(out).toMatch(/\x1b\[\d+A\r\x1b\[0J/); // back to the top of the last frame, cleared, redrawn
    expect(out).toContain("\x1b[32mSucceeded\x1b[0m");
    expect(out).toContain("finished: Succeeded");
    expect(out).toContain("\x1b[?25h"); // and shown again
  });

  it("pause, resume, abort (watch exits 1), a verb that does not fit the phase (409), and retry", async () => {
    const spec = { name: "search-v2", route: "search", rule: "default", stable: STABLE, canary: { ...CANARY, service: "search-v2.shop.svc.cluster.local" }, steps: [{ setWeight: 30 }, { pause: {} }, { pause: { duration: "1m" } }, { setWeight: 100 }] };
    const file = await files.file("search-v2.json", JSON.stringify(spec));
    expect((await cli(["rollout", "start", "-f", file], { url: gw.url })).code).toBe(0);
    await waitPhase("search-v2", "Paused");

    const resumed = await cli(["rollout", "resume", "search-v2"], { url: gw.url });
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain("rollout/search-v2 resumed: Progressing");
    await until("the timed pause", async () => ((await phaseOf("search-v2")).message.includes("pause for 1m") ? true : undefined));
    const paused = await cli(["rollout", "pause", "search-v2"], { url: gw.url });
    expect(paused.code).toBe(0);
    expect(paused.stdout).toContain("rollout/search-v2 paused: Paused");

    const watch = startCli(["rollout", "get", "search-v2", "--watch", "--interval", "100ms"], { url: gw.url });
    await until("the watch printed its first line", async () => (watch.stdout().includes("\n") ? true : undefined));
    const aborted = await cli(["rollout", "abort", "search-v2"], { url: gw.url });
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toContain("rollout/search-v2 aborted: Aborted");
    expect(aborted.stdout).toContain("canary 0%");
    const w = await watch.done;
    expect(w.code).toBe(1);
    expect(w.stdout.trim().split("\n").at(-1)).toMatch(/rollout\/search-v2 Aborted .* canary 0% stable 100%/);

    // Resuming an aborted rollout is a conflict: the problem is printed with the phase, exit 1.
    const conflict = await cli(["rollout", "resume", "search-v2"], { url: gw.url });
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain("error: Conflict (HTTP 409, POST /_isthmus/v1/rollouts/search-v2/resume): cannot resume a rollout that is Aborted");
    expect(conflict.stderr).toContain("  phase: Aborted");

    const retried = await cli(["rollout", "retry", "search-v2", "--json"], { url: gw.url });
    expect(retried.code).toBe(0);
    expect(json<RolloutJson>(retried).status.phase).toBe("Progressing");
    await waitPhase("search-v2", "Paused");
    const full = await cli(["rollout", "promote", "search-v2", "--full"], { url: gw.url });
    expect(full.code).toBe(0);
    await waitPhase("search-v2", "Succeeded");
  });

  it("a rollout file the gateway refuses: field paths, exit 1; an unknown rollout: 404", async () => {
    const file = await files.file("bad.yaml", `name: bad\nroute: checkout\nrule: default\nstable: { cluster: east, service: x.shop }\ncanary: { cluster: west, service: y.shop }\nsteps: [{ setWeight: 150 }]\n`);
    const r = await cli(["rollout", "start", "-f", file], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: Invalid request (HTTP 400, POST /_isthmus/v1/rollouts)");
    expect(r.stderr).toContain("  steps[0]");
    const missing = await cli(["rollout", "get", "ghost", "--watch"], { url: gw.url });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('rollout "ghost" does not exist');
  });
});
