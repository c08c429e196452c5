// A unified diff of two small texts (resource documents of a few hundred lines): longest common
// subsequence by dynamic programming, then hunks with three lines of context, as `diff -u` prints them.

type Op = { kind: " " | "-" | "+"; line: string };

function edits(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: length of the LCS of a[i..] and b[j..]
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    const row = lcs[i] as Uint32Array;
    const next = lcs[i + 1] as Uint32Array;
    for (let j = m - 1; j >= 0; j--) row[j] = a[i] === b[j] ? (next[j + 1] as number) + 1 : Math.max(next[j] as number, row[j + 1] as number);
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ kind: " ", line: a[i] as string });
      i++;
      j++;
    } else if (i < n && (j === m || ((lcs[i + 1] as Uint32Array)[j] as number) >= ((lcs[i] as Uint32Array)[j + 1] as number))) ops.push({ kind: "-", line: a[i++] as string });
    else ops.push({ kind: "+", line: b[j++] as string });
  }
  return ops;
}

/** `--- from` / `+++ to` and the hunks; empty when the texts are equal. */
export function unifiedDiff(from: string, to: string, labels: { from: string; to: string }, context = 3): string[] {
  const a = from === "" ? [] : from.split("\n");
  const b = to === "" ? [] : to.split("\n");
  const ops = edits(a, b);
  if (ops.every((o) => o.kind === " ")) return [];
  const out = [`--- ${labels.from}`, `+++ ${labels.to}`];
  const changed = ops.map((o, k) => (o.kind !== " " ? k : -1)).filter((k) => k >= 0);
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, (changed[k] as number) - context);
    let end = Math.min(ops.length, (changed[k] as number) + context + 1);
    while (k + 1 < changed.length && (changed[k + 1] as number) - context <= end) {
      k++;
      end = Math.min(ops.length, (changed[k] as number) + context + 1);
    }
    k++;
    const hunk = ops.slice(start, end);
    // Line numbers (1-based) where the hunk starts in each text, and how many lines it spans there.
    const aLines = hunk.filter((o) => o.kind !== "+").length;
    const bLines = hunk.filter((o) => o.kind !== "-").length;
    const before = ops.slice(0, start);
    const aStart = before.filter((o) => o.kind !== "+").length + (aLines > 0 ? 1 : 0);
    const bStart = before.filter((o) => o.kind !== "-").length + (bLines > 0 ? 1 : 0);
    out.push(`@@ -${aStart},${aLines} +${bStart},${bLines} @@`);
    for (const o of hunk) out.push(`${o.kind}${o.line}`);
  }
  return out;
}

/** Pretty JSON with object keys sorted, so equal documents print the same and diffs stay small. */
export function stableJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (v && typeof v === "object" && !Array.isArray(v)) {
        const sorted: Record<string, unknown> = {};
        for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
        return sorted;
      }
      return v;
    },
    2,
  );
}
