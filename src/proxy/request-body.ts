// Request bodies on the data plane: bounded in size, streamed by default, held in memory only
// when small and a retry may need to send them again.
import { readBounded, TooLargeError } from "../util/read-bounded.ts";
import type { BodySource } from "./upstream.ts";

/** Bodies up to this size are held for retries (Linkerd does not retry bodies over 64 KiB either). */
export const RETRY_BODY_LIMIT = 64 * 1024;

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/** Reads a body to the end, failing with BodyTooLargeError once it passes `limit` bytes. */
export async function readAll(body: BodySource, limit: number): Promise<Uint8Array> {
  try {
    return await readBounded(body, limit);
  } catch (err) {
    if (err instanceof TooLargeError) throw new BodyTooLargeError(limit);
    throw err;
  }
}

/** What a body wrapped by `capped` reads from: an upstream client that abandons the body stops this, at once. */
const BODY_SOURCE: unique symbol = Symbol("isthmus.bodySource");

/** A capped body: its chunks, and the source they come from. */
export type CappedBody = AsyncGenerator<Uint8Array> & { readonly [BODY_SOURCE]: BodySource };

/**
 * Streams a body through, failing the stream (and so the upstream exchange) once it passes `limit`.
 * The generator cannot be stopped while it waits for its source's next chunk (its return() queues
 * behind that wait), so the source goes with it: a Node upstream client that gives the body up
 * destroys the source itself (a Node stream, as the Node server's bodies are), and a stalled sender
 * does not hold the exchange until its next chunk. A web stream source stays locked by the generator.
 */
export function capped(body: BodySource, limit: number, onExceeded: () => void): CappedBody {
  return Object.assign(cappedChunks(body, limit, onExceeded), { [BODY_SOURCE]: body });
}

/** The source a `capped` body reads from; undefined for any other body. */
export function cappedSource(body: object): BodySource | undefined {
  return (body as Partial<CappedBody>)[BODY_SOURCE];
}

async function* cappedChunks(body: BodySource, limit: number, onExceeded: () => void): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) {
      onExceeded();
      throw new BodyTooLargeError(limit);
    }
    yield chunk;
  }
}
