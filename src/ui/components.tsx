/** @jsxImportSource hono/jsx */
// The dashboard's markup, server-rendered with Hono's JSX. Everything is escaped by the JSX
// runtime; no inline script or style (the Content-Security-Policy forbids both): widths and colours
// are SVG attributes and stylesheet classes. The client script (assets.ts) swaps in the panels
// again when they change and draws the charts into the [data-chart] placeholders.
import type { FC, PropsWithChildren } from "hono/jsx";
import type { AnalysisWindow, RolloutRecord, RolloutStep } from "../rollout/schema.ts";
import type { BackendModel, ClusterModel, DashboardModel, RolloutModel, RouteModel, RuleModel } from "./model.ts";
import { UI_BASE } from "./paths.ts";

const clock = (iso: string | null | undefined): string => (iso ? `${iso.slice(11, 19)} UTC` : "never");
const pct = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(digits)}%`);
const ms = (x: number | null | undefined): string => (x === null || x === undefined ? "—" : `${Math.round(x)} ms`);

export const Layout: FC<PropsWithChildren<{ title: string; script?: boolean }>> = ({ title, script, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{title}</title>
      <link rel="icon" type="image/svg+xml" href={`${UI_BASE}/favicon.svg`} />
      <link rel="stylesheet" href={`${UI_BASE}/app.css`} />
      {script ? <script src={`${UI_BASE}/app.js`} defer></script> : null}
    </head>
    <body>{children}</body>
  </html>
);

export const LoginPage: FC<{ error?: string | null; disabled?: boolean }> = ({ error, disabled }) => (
  <Layout title="isthmus · sign in">
    <main class="login">
      <h1>
        <Logo /> isthmus
      </h1>
      <p class="muted">The dashboard needs the gateway's admin token (ISTHMUS_ADMIN_TOKEN), or an admin JWT with the isthmus:read scope.</p>
      {disabled ? (
        <p class="alert" role="alert">
          The admin API is disabled on this gateway: set ISTHMUS_ADMIN_TOKEN.
        </p>
      ) : null}
      {error ? (
        <p class="alert" role="alert" id="login-error">
          {error}
        </p>
      ) : null}
      <form method="post" action={`${UI_BASE}/login`} class="login-form">
        <label for="token">Admin token</label>
        <input type="password" id="token" name="token" autocomplete="current-password" required autofocus spellcheck={false} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  </Layout>
);

export const DashboardPage: FC<{ model: DashboardModel }> = ({ model }) => (
  <Layout title="isthmus · dashboard" script>
    <header class="top">
      <h1>
        <Logo /> isthmus
      </h1>
      <span id="status" class="status" role="status" aria-live="polite">
        loaded {clock(model.generatedAt)}
      </span>
      <form method="post" action={`${UI_BASE}/logout`} class="logout">
        <button type="submit" class="link">
          Sign out
        </button>
      </form>
    </header>
    <main id="panels">
      <Panels model={model} />
    </main>
  </Layout>
);

/** The live part of the page: the client fetches it again and swaps it in when it changed. */
export const Panels: FC<{ model: DashboardModel }> = ({ model }) => (
  <>
    <section id="overview" class="overview">
      <Pill kind={model.store.reachable ? "ok" : "bad"}>{model.store.reachable ? "store reachable" : "store unreachable"}</Pill>
      <span>
        routing table v{model.table.version}, built {clock(model.table.builtAt)}
      </span>
      {model.store.reachable ? null : <span class="error">{model.store.lastError ?? "no answer"}: serving the last good table</span>}
      {model.table.warnings.length > 0 ? (
        <ul class="warnings">
          {model.table.warnings.map((w) => (
            <li>{w}</li>
          ))}
        </ul>
      ) : null}
    </section>
    <section id="clusters">
      <h2>Clusters</h2>
      {model.clusters.length === 0 ? <p class="muted">No clusters registered.</p> : null}
      <div class="grid">
        {model.clusters.map((c) => (
          <ClusterCard cluster={c} />
        ))}
      </div>
    </section>
    <section id="routes">
      <h2>Routes</h2>
      {model.routes.length === 0 ? <p class="muted">No routes.</p> : null}
      <div class="grid wide">
        {model.routes.map((r) => (
          <RouteCard route={r} />
        ))}
      </div>
    </section>
    <section id="rollouts">
      <h2>Rollouts</h2>
      {model.rolloutsError ? <p class="alert">Rollouts could not be read: {model.rolloutsError}</p> : null}
      {model.rollouts.length === 0 && !model.rolloutsError ? <p class="muted">No rollouts.</p> : null}
      <div class="grid wide">
        {model.rollouts.map((r) => (
          <RolloutCard rollout={r} />
        ))}
      </div>
    </section>
  </>
);

const Logo: FC = () => (
  <svg class="logo" viewBox="0 0 24 24" aria-hidden="true">
    <path d="M2 8h6c2 0 3 2 4 4s2 4 4 4h6M2 16h6c2 0 3-2 4-4s2-4 4-4h6" />
  </svg>
);

const Pill: FC<PropsWithChildren<{ kind: "ok" | "bad" | "warn" | "idle" | "info" }>> = ({ kind, children }) => <span class={`pill ${kind}`}>{children}</span>;

const HealthPill: FC<{ health: ClusterModel["health"] }> = ({ health }) => {
  if (!health || health.alive === null) return <Pill kind="idle">probing</Pill>;
  return health.alive ? <Pill kind="ok">alive</Pill> : <Pill kind="bad">down</Pill>;
};

const ClusterCard: FC<{ cluster: ClusterModel }> = ({ cluster: c }) => {
  const h = c.health;
  return (
    <article class="card cluster" data-cluster={c.name}>
      <header>
        <h3>{c.name}</h3>
        <HealthPill health={h} />
      </header>
      <dl class="facts">
        <dt>endpoint</dt>
        <dd class="mono">{c.endpoint}</dd>
        <dt>trust domain</dt>
        <dd class="mono">{c.trustDomain}</dd>
        <dt>probe latency</dt>
        <dd class="latency">{ms(h?.lastLatencyMs)}</dd>
        <dt>last probe</dt>
        <dd>
          {clock(h?.lastProbeAt)}
          {h && h.consecutiveFailures > 0 ? `, ${h.consecutiveFailures} failure(s) in a row` : ""}
        </dd>
        <dt>last error</dt>
        <dd class={h?.lastError ? "error last-error" : "muted last-error"}>{h?.lastError ?? "none"}</dd>
      </dl>
      <Charts kind="cluster" name={c.name} />
    </article>
  );
};

const RouteCard: FC<{ route: RouteModel }> = ({ route: r }) => (
  <article class="card route" data-route={r.name}>
    <header>
      <h3>{r.name}</h3>
      <span class="revision" title="route revision served by this instance">
        rev <span class="rev">{r.revision}</span>
      </span>
    </header>
    <p class="mono hosts">{r.hostnames.length > 0 ? r.hostnames.join(", ") : "* (any host)"}</p>
    {r.rules.length === 0 ? <p class="muted">No rule has a match.</p> : null}
    {r.rules.map((rule) => (
      <RuleBlock rule={rule} />
    ))}
    <Charts kind="route" name={r.name} />
  </article>
);

const RuleBlock: FC<{ rule: RuleModel }> = ({ rule }) => (
  <div class="rule" data-rule={rule.name}>
    <div class="rule-head">
      <span class="mono">{rule.name}</span>
      {rule.rollout ? <Pill kind="info">rollout {rule.rollout}</Pill> : null}
      {rule.totalWeight === 0 ? <Pill kind="bad">all weights 0</Pill> : null}
    </div>
    <WeightBar backends={rule.backends} />
    <table class="backends">
      <tbody>
        {rule.backends.map((b, i) => (
          <tr class="backend" data-backend={b.id}>
            <td>
              <svg class={`swatch c${i % 8}`} viewBox="0 0 10 10" aria-hidden="true">
                <rect width="10" height="10" rx="2" />
              </svg>
            </td>
            <td class="mono">
              {b.cluster}
              {b.unknownCluster ? <Pill kind="bad">not registered</Pill> : null}
              {b.role ? <Pill kind={b.role === "canary" ? "warn" : "idle"}>{b.role}</Pill> : null}
            </td>
            <td class="mono muted">
              {b.service}
              {b.port === undefined ? "" : `:${b.port}`}
              {b.failover.length > 0 ? ` (failover: ${b.failover.join(", ")})` : ""}
            </td>
            <td class="num">
              weight <span class="weight">{b.weight}</span>
            </td>
            <td class="num share">{pct(b.share, 0)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  </div>
);

/** The split as one stacked bar; each segment's width is its share (an SVG attribute, not a style). */
const WeightBar: FC<{ backends: BackendModel[] }> = ({ backends }) => {
  let x = 0;
  const label = backends.map((b) => `${b.cluster} ${pct(b.share, 0)}`).join(", ");
  return (
    <svg class="weightbar" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label={`split: ${label}`}>
      <rect class="track" width="100" height="6" />
      {backends.map((b, i) => {
        const w = b.share * 100;
        const seg = (
          <rect class={`seg c${i % 8}`} x={x.toFixed(3)} width={w.toFixed(3)} height="6" data-backend={b.id}>
            <title>
              {b.cluster}/{b.service}: weight {b.weight} ({pct(b.share, 1)})
            </title>
          </rect>
        );
        x += w;
        return seg;
      })}
    </svg>
  );
};

const METRICS = [
  { metric: "rps", label: "req/s" },
  { metric: "successRate", label: "success" },
  { metric: "p99Ms", label: "p99" },
] as const;

/** Placeholders the client script fills from /api/series. */
const Charts: FC<{ kind: "route" | "cluster"; name: string }> = ({ kind, name }) => (
  <div class="charts" data-series-kind={kind} data-series-name={name}>
    {METRICS.map((m) => (
      <figure class="chart" data-metric={m.metric}>
        <figcaption>
          {m.label} <span class="value">—</span>
        </figcaption>
        <svg class="spark" viewBox="0 0 200 40" preserveAspectRatio="none" data-chart="" role="img" aria-label={`${name} ${m.label}, last minutes`}></svg>
      </figure>
    ))}
  </div>
);

const PHASE_KIND: Record<RolloutRecord["status"]["phase"], "ok" | "bad" | "warn" | "idle" | "info"> = {
  Progressing: "info",
  Paused: "warn",
  Succeeded: "ok",
  Failed: "bad",
  Aborted: "idle",
};

const stepText = (s: RolloutStep): string => ("setWeight" in s ? `weight ${s.setWeight}%` : s.pause.duration ? `pause ${s.pause.duration}` : "pause until resumed");

const RolloutCard: FC<{ rollout: RolloutModel }> = ({ rollout: { record: r, events } }) => {
  const st = r.status;
  const spec = r.spec;
  const a = st.lastAnalysis;
  const backend = (b: RolloutRecord["spec"]["stable"]): string => `${b.cluster}/${b.service}${b.port === undefined ? "" : `:${b.port}`}`;
  return (
    <article class="card rollout" data-rollout={r.name}>
      <header>
        <h3>{r.name}</h3>
        <span class="phase">
          <Pill kind={PHASE_KIND[st.phase]}>{st.phase}</Pill>
        </span>
      </header>
      <p class="mono">
        {spec.route} / {spec.rule}: {backend(spec.stable)} → {backend(spec.canary)}
      </p>
      <p>
        canary weight <strong class="canary-weight">{st.canaryWeight}%</strong>
        {st.pausedBy ? ` · paused by ${st.pausedBy}` : ""}
        {st.message ? ` · ${st.message}` : ""}
      </p>
      <ol class="steps" aria-label="steps">
        {spec.steps.map((s, i) => {
          const state = i < st.step ? "done" : i === st.step && (st.phase === "Progressing" || st.phase === "Paused") ? "current" : "pending";
          return (
            <li class={`step ${state}`} data-step={String(i)} aria-current={state === "current" ? "step" : undefined}>
              <span class="n">{i + 1}</span> {stepText(s)}
            </li>
          );
        })}
      </ol>
      {spec.analysis ? (
        <div class="analysis">
          <h4>
            Analysis{" "}
            {a ? <Pill kind={a.verdict === "pass" ? "ok" : a.verdict === "fail" ? "bad" : "idle"}>{a.verdict}</Pill> : <Pill kind="idle">not yet</Pill>}
          </h4>
          <p class="muted">
            every {spec.analysis.interval}; failed checks {st.failedChecks}/{spec.analysis.threshold}; passed this step {st.passedSinceStep}
            {st.nextAnalysisAt ? `; next ${clock(st.nextAnalysisAt)}` : ""}
            {spec.analysis.successRate ? `; success ≥ ${pct(spec.analysis.successRate.min, 2)}` : ""}
            {spec.analysis.latencyP99Ms ? `; p99 ≤ ${spec.analysis.latencyP99Ms.max} ms` : ""}
          </p>
          {a ? (
            <table class="windows">
              <thead>
                <tr>
                  <th></th>
                  <th>requests</th>
                  <th>success</th>
                  <th>p99</th>
                </tr>
              </thead>
              <tbody>
                <WindowRow label="canary" w={a.canary} />
                <WindowRow label="stable" w={a.stable} />
              </tbody>
            </table>
          ) : null}
          {a && a.reasons.length > 0 ? (
            <ul class="reasons">
              {a.reasons.map((x) => (
                <li>{x}</li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
      {events.length > 0 ? (
        <ol class="events" reversed>
          {[...events].reverse().map((e) => (
            <li>
              <time datetime={e.at}>{clock(e.at)}</time> <span class="mono">{e.type}</span> {e.message}
            </li>
          ))}
        </ol>
      ) : null}
    </article>
  );
};

const WindowRow: FC<{ label: string; w: AnalysisWindow }> = ({ label, w }) => (
  <tr>
    <th>{label}</th>
    <td class="num">{w.requests}</td>
    <td class="num">{pct(w.successRate, 2)}</td>
    <td class="num">{ms(w.latencyP99Ms)}</td>
  </tr>
);
