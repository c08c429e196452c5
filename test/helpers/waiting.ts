// Waiting on events in tests without timed assertions.

export const TIMED_OUT = Symbol("timed out");

/**
 * Resolves with the promise's value, or with TIMED_OUT after `ms`. Not a timed assertion: a
 * generous safety valve that turns "the event never came" into a clear failure instead of a hang.
 */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<typeof TIMED_OUT>((resolve) => (t = setTimeout(() => resolve(TIMED_OUT), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/** A promise and the function that resolves it. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
