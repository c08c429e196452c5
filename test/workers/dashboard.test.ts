// The dashboard on the Workers runtime: the JSX pages render inside workerd, sign-in over https
// sets a Secure cookie, and the live endpoints answer from the Worker's store (the real local Redis).
import { describe, expect, it } from "vitest";
import { createWorker } from "../../src/runtime/worker.ts";
import { ADMIN_TOKEN, isolatedEnv, send } from "./helpers.ts";

const UI = "https://gateway.test/_isthmus/ui";

describe("the dashboard in workerd", () => {
  it("signs in over https with a Secure cookie, then serves the page, the panels and the series", async () => {
    const handler = createWorker();
    const env = isolatedEnv("dashboard");
    const call = async (url: string, init: RequestInit = {}) => {
      const { res, settled } = await send(handler, env, new Request(url, { redirect: "manual", ...init }));
      const text = await res.text();
      await settled;
      return { res, text };
    };

    const anonymous = await call(UI, { headers: { accept: "text/html" } });
    expect(anonymous.res.status).toBe(303);
    expect(anonymous.res.headers.get("location")).toBe("/_isthmus/ui/login");

    const login = await call(`${UI}/login`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://gateway.test" }, body: `token=${encodeURIComponent(ADMIN_TOKEN)}` });
    expect(login.res.status).toBe(303);
    const cookie = login.res.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^isthmus_ui=[^;]+; Path=\/_isthmus\/ui; HttpOnly; Secure; SameSite=Strict$/);
    const session = { cookie: cookie.split(";")[0] as string };

    const page = await call(UI, { headers: { ...session, accept: "text/html" } });
    expect(page.res.status).toBe(200);
    expect(page.res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(page.text).toMatch(/^<!DOCTYPE html><html lang="en">/);
    expect(page.text).toContain('<main id="panels">');

    const panels = await call(`${UI}/api/panels`, { headers: session });
    expect(panels.res.status).toBe(200);
    expect(panels.text).toContain('id="clusters"');

    const series = await call(`${UI}/api/series`, { headers: session });
    expect(series.res.status).toBe(200);
    expect(JSON.parse(series.text)).toMatchObject({ t: expect.any(Array), routes: expect.any(Object), error: null });
  });
});
