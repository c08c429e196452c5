// Reading the gateway's Prometheus text exposition (format 0.0.4) on the client side: samples,
// deltas between two scrapes, and quantiles from histogram buckets (histogram_quantile's rule).

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/;

export function parsePrometheusText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const value = parseValue(m[4] as string);
    if (value === null) continue;
    out.push({ name: m[1] as string, labels: m[3] ? parseLabels(m[3]) : {}, value });
  }
  return out;
}

function parseValue(s: string): number | null {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  const n = Number(s);
  return Number.isNaN(n) ? null : n;
}

/** `a="1",b="x\"y"`: label pairs with the exposition format's escapes (\\, \", \n). */
function parseLabels(body: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    while (body[i] === "," || body[i] === " ") i++;
    const eq = body.indexOf("=", i);
    if (eq < 0) break;
    const name = body.slice(i, eq).trim();
    i = eq + 1;
    if (body[i] !== '"') break;
    i++;
    let v = "";
    while (i < body.length && body[i] !== '"') {
      if (body[i] === "\\" && i + 1 < body.length) {
        const n = body[i + 1];
        v += n === "n" ? "\n" : (n as string);
        i += 2;
      } else v += body[i++];
    }
    i++;
    labels[name] = v;
  }
  return labels;
}

export const sampleKey = (s: PromSample): string =>
  `${s.name}{${Object.keys(s.labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(s.labels[k])}`)
    .join(",")}}`;

/**
 * Counter deltas between two scrapes, per sample. A series that went down was reset (an instance
 * restart on a single-instance store): its new value is the delta, as Prometheus' increase() does.
 */
export function deltas(before: PromSample[], after: PromSample[]): PromSample[] {
  const prev = new Map(before.map((s) => [sampleKey(s), s.value]));
  return after.map((s) => {
    const p = prev.get(sampleKey(s)) ?? 0;
    return { ...s, value: s.value >= p ? s.value - p : s.value };
  });
}

/**
 * The q-quantile of a histogram from its cumulative buckets (`le` bounds, +Inf last), interpolated
 * linearly within the bucket that holds the rank; the first bucket starts at 0. A rank in the +Inf
 * bucket answers the highest finite bound. null when the histogram holds no observations.
 */
export function histogramQuantile(q: number, buckets: Array<{ le: number; count: number }>): number | null {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total <= 0 || sorted.length === 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank && b.count > prevCount) {
      if (b.le === Infinity) return prevLe;
      return prevLe + (b.le - prevLe) * ((rank - prevCount) / (b.count - prevCount));
    }
    prevLe = b.le === Infinity ? prevLe : b.le;
    prevCount = b.count;
  }
  return prevLe;
}
