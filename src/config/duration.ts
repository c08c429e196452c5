// Gateway API duration format (GEP-2257): one to four <integer><unit> parts, e.g. "800ms", "2s", "1m30s".
// Parsed once at validation time; the data plane only ever sees milliseconds.
const PART = /(\d{1,5})(h|ms|m|s)/y;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

/** Parses a duration into milliseconds, or returns undefined when the text is not a valid duration. */
export function parseDuration(text: string): number | undefined {
  if (text.length === 0 || text.length > 32) return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let parts = 0;
  const seen = new Set<string>();
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== start) return undefined;
    const unit = m[2] as string;
    if (seen.has(unit)) return undefined;
    seen.add(unit);
    total += Number(m[1]) * (UNIT_MS[unit] as number);
    parts += 1;
    if (parts > 4) return undefined;
  }
  return parts > 0 ? total : undefined;
}

/** Formats milliseconds back into the shortest duration text ("1500ms" -> "1s500ms"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const [unit, size] of Object.entries(UNIT_MS)) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
