// The dashboard in a real browser: Debian's Chromium driven by playwright-core, against the real
// Node gateway (memory store) in front of real upstreams. Every wait is for a DOM state with a
// deadline, never a sleep. Chromium is required: without it this file fails and says how to install it.
import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "dashboard-test-admin-token-0123456789";
const SERVICE = "checkout.shop";
const EAST = `east/${SERVICE}:8080`;
const WEST = `west/${SERVICE}:8080`;
const SCREENSHOT = "test-artifacts/dashboard.png";

let east: Upstream;
let west: Upstream;
let gw: TestGateway;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Every URL the browser asked for, sub-resources and fetches included. */
const requested: string[] = [];
/** Console errors (a CSP violation is one) and uncaught page errors. */
const pageErrors: string[] = [];

const shopRoute = (eastWeight: number, westWeight: number) => ({
  hostnames: ["shop.example"],
  authorization: { unauthenticated: true as const },
  rules: [
    {
      name: "main",
      backendRefs: [
        { cluster: "east", service: SERVICE, port: 8080, weight: eastWeight },
        { cluster: "west", service: SERVICE, port: 8080, weight: westWeight },
      ],
    },
  ],
});

const weightCell = (route: string, backend: string) => `[data-route="${route}"] [data-backend="${backend}"] .weight`;

/** Resolves once the element's text is `text` (the page keeps polling meanwhile). */
async function waitForText(selector: string, text: string, timeout = 15_000): Promise<void> {
  await page.waitForFunction(([sel, want]) => document.querySelector(sel as string)?.textContent?.trim() === want, [selector, text], { timeout, polling: 100 });
}

const MISSING_CHROMIUM = `Chromium is not installed at ${CHROMIUM}: the dashboard tests need Debian's Chromium. Install it with \`apt-get install -y chromium\` (after \`apt-get update\`).`;

/** Every test fails (none is skipped) when the browser is missing. */
function needChromium(): void {
  if (!existsSync(CHROMIUM)) throw new Error(MISSING_CHROMIUM);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return;
  [east, west] = await Promise.all([startUpstream("east"), startUpstream("west")]);
  gw = await startTestGateway({
    clusters: { east: east.url, west: west.url },
    routes: {
      shop: shopRoute(90, 10),
      checkout: {
        hostnames: ["checkout.example"],
        authorization: { unauthenticated: true },
        rules: [{ name: "main", backendRefs: [{ cluster: "east", service: SERVICE, port: 8080, weight: 100 }] }],
      },
    },
    adminToken: TOKEN,
  });
  const started = await gw.admin("POST", "/rollouts", {
    name: "checkout-v2",
    route: "checkout",
    rule: "main",
    stable: { cluster: "east", service: SERVICE, port: 8080 },
    canary: { cluster: "west", service: SERVICE, port: 8080 },
    // Stops at the pause (no duration: until resumed), so the timeline holds still for the checks.
    steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 50 }, { setWeight: 100 }],
    analysis: { interval: "1s", threshold: 3, minRequests: 5, successRate: { min: 0.9 }, onNoData: "pass" },
  });
  expect(started.status).toBe(201);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  context.on("request", (r) => requested.push(r.url()));
  page = await context.newPage();
  page.on("console", (m) => {
    // The two 401s the first test provokes on purpose are logged by Chromium as failed loads.
    if (m.type() === "error" && !m.text().includes("status of 401")) pageErrors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
}, 60_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await gw?.close();
  await Promise.all([east?.close(), west?.close()]);
});

describe("dashboard in Chromium", () => {
  it("sends a browser without a session to the sign-in form, and refuses a wrong token", async () => {
    needChromium();
    await page.goto(`${gw.url}/_isthmus/ui`);
    expect(page.url()).toBe(`${gw.url}/_isthmus/ui/login`);
    await page.fill("#token", "not-the-token");
    const [refused] = await Promise.all([page.waitForResponse((r) => r.request().method() === "POST"), page.click("button[type=submit]")]);
    expect(refused.status()).toBe(401);
    expect(await page.textContent("#login-error")).toContain("not a valid admin token");
    expect(page.url()).toBe(`${gw.url}/_isthmus/ui/login`);
    expect(await context.cookies()).toEqual([]);
    // Without a session the live endpoints answer 401, not data.
    const api = await page.evaluate(async () => (await fetch("/_isthmus/ui/api/panels")).status);
    expect(api).toBe(401);
  });

  it("signs in and shows the clusters and a route's weights", async () => {
    needChromium();
    await page.fill("#token", TOKEN);
    await Promise.all([page.waitForURL(`${gw.url}/_isthmus/ui`), page.click("button[type=submit]")]);
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "isthmus_ui", path: "/_isthmus/ui", httpOnly: true, sameSite: "Strict", secure: false });

    expect(await page.locator("[data-cluster]").evaluateAll((els) => els.map((e) => e.getAttribute("data-cluster")))).toEqual(["east", "west"]);
    // Probes run every 500 ms: both clusters turn alive with a latency and no error.
    for (const c of ["east", "west"]) await waitForText(`[data-cluster="${c}"] .pill`, "alive");
    expect(await page.textContent('[data-cluster="east"] .last-error')).toBe("none");
    expect(await page.textContent('[data-cluster="east"] .latency')).toMatch(/^\d+ ms$/);

    expect(await page.textContent(weightCell("shop", EAST))).toBe("90");
    expect(await page.textContent(weightCell("shop", WEST))).toBe("10");
    expect(await page.textContent(`[data-route="shop"] [data-backend="${EAST}"] .share`)).toBe("90%");
    expect(await page.locator(`[data-route="shop"] svg.weightbar rect.seg`).count()).toBe(2);
    expect(Number(await page.getAttribute(`[data-route="shop"] svg.weightbar rect[data-backend="${EAST}"]`, "width"))).toBeCloseTo(90, 3);
  });

  it("reflects a weight change made through the admin API without a reload", async () => {
    needChromium();
    const navigations: string[] = [];
    page.on("framenavigated", (f) => {
      if (f === page.mainFrame()) navigations.push(f.url());
    });
    await page.evaluate(() => ((window as unknown as { stillThisDocument: boolean }).stillThisDocument = true));
    const before = Number(await page.textContent('[data-route="shop"] .rev'));

    const put = await gw.admin("PUT", "/routes/shop", shopRoute(20, 80));
    expect(put.status).toBe(200);

    await waitForText(weightCell("shop", EAST), "20");
    await waitForText(weightCell("shop", WEST), "80");
    expect(Number(await page.textContent('[data-route="shop"] .rev'))).toBeGreaterThan(before);
    expect(Number(await page.getAttribute(`[data-route="shop"] svg.weightbar rect[data-backend="${WEST}"]`, "width"))).toBeCloseTo(80, 3);
    expect(await page.evaluate(() => (window as unknown as { stillThisDocument?: boolean }).stillThisDocument)).toBe(true);
    expect(navigations).toEqual([]);
  });

  it("follows the rollout's steps, and the split it writes, live", async () => {
    needChromium();
    const card = '[data-rollout="checkout-v2"]';
    await page.waitForSelector(card);
    expect(await page.locator(`${card} .step`).count()).toBe(4);
    // The controller sets 20% and stops at the pause step: step 1 done, step 2 current.
    await page.waitForFunction((sel) => document.querySelector(`${sel} .step[data-step="1"]`)?.classList.contains("current") ?? false, card, { timeout: 15_000, polling: 100 });
    expect(await page.getAttribute(`${card} .step[data-step="0"]`, "class")).toContain("done");
    await waitForText(`${card} .canary-weight`, "20%");
    await waitForText(weightCell("checkout", WEST), "20");
    expect(await page.textContent(`[data-route="checkout"] .rule .pill`)).toBe("rollout checkout-v2");
  });

  it("charts golden metrics per route and per cluster from live traffic", async () => {
    needChromium();
    // Traffic until the charts show it: each response is awaited, so this is paced by the gateway.
    let done = false;
    const traffic = (async () => {
      let n = 0;
      while (!done) {
        const res = await gw.request("shop.example", `/item/${n++}`);
        await res.body.dump();
      }
      return n;
    })();
    try {
      const rpsShown = (kind: string, name: string) =>
        page.waitForFunction(
          ([k, n]) => {
            const fig = document.querySelector(`[data-series-kind="${k}"][data-series-name="${n}"] figure[data-metric="rps"]`);
            return fig !== null && Number(fig.getAttribute("data-points") ?? "0") > 0 && /^[\d.]+\/s$/.test(fig.querySelector(".value")?.textContent ?? "") && Number.parseFloat(fig.querySelector(".value")?.textContent ?? "0") > 0;
          },
          [kind, name],
          { timeout: 20_000, polling: 100 },
        );
      await rpsShown("route", "shop");
      await rpsShown("cluster", "east");
      await rpsShown("cluster", "west");
      // A few points more, so the screenshot shows lines rather than dots.
      await page.waitForFunction(() => Number(document.querySelector('[data-series-kind="route"][data-series-name="shop"] figure[data-metric="rps"]')?.getAttribute("data-points") ?? "0") >= 3, undefined, { timeout: 20_000, polling: 100 });
    } finally {
      done = true;
      expect(await traffic).toBeGreaterThan(0);
    }
    const fig = '[data-series-name="shop"][data-series-kind="route"]';
    expect(await page.textContent(`${fig} figure[data-metric="successRate"] .value`)).toBe("100%");
    expect(await page.textContent(`${fig} figure[data-metric="p99Ms"] .value`)).toMatch(/^[\d.]+ ms$/);
    expect(await page.locator(`${fig} figure[data-metric="rps"] svg path.line`).count()).toBe(1);

    mkdirSync("test-artifacts", { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
  }, 45_000);

  it("asked no host but the gateway, and hit no CSP violation or script error", () => {
    needChromium();
    const origin = new URL(gw.url).origin;
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((u) => new URL(u).origin !== origin)).toEqual([]);
    // The pages, the stylesheet, icon and script, and the two polled endpoints: nothing else.
    const paths = new Set(requested.map((u) => new URL(u).pathname));
    const allowed = ["/_isthmus/ui", "/_isthmus/ui/login", "/_isthmus/ui/app.css", "/_isthmus/ui/app.js", "/_isthmus/ui/favicon.svg", "/_isthmus/ui/api/panels", "/_isthmus/ui/api/series"];
    expect([...paths].filter((p) => !allowed.includes(p))).toEqual([]);
    for (const p of ["/_isthmus/ui", "/_isthmus/ui/app.css", "/_isthmus/ui/app.js", "/_isthmus/ui/api/panels", "/_isthmus/ui/api/series"]) expect(paths).toContain(p);
    expect(pageErrors).toEqual([]);
  });

  it("signs out: the cookie is gone and the dashboard sends the browser back to sign in", async () => {
    needChromium();
    await Promise.all([page.waitForURL(`${gw.url}/_isthmus/ui/login`), page.click(".logout button")]);
    expect(await context.cookies()).toEqual([]);
    await page.goto(`${gw.url}/_isthmus/ui`);
    expect(page.url()).toBe(`${gw.url}/_isthmus/ui/login`);
  });
});
