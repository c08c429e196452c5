// The request body as the https: path (undici) takes it: a size-capped body, once undici gives it up
// (an early answer, an abort), must stop its source at once, not when the source's next chunk comes.
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { capped } from "../../src/proxy/request-body.ts";
import { toNodeBody } from "../../src/runtime/node-upstream.ts";
import { TIMED_OUT, within } from "../helpers/waiting.ts";

describe("node-upstream: request bodies for undici", () => {
  it("a size-capped body destroyed midway destroys its source at once", async () => {
    const source = new Readable({ read() {} });
    source.push(Buffer.from("first"));
    const body = toNodeBody(capped(source, 1_000_000, () => undefined));
    if (!(body instanceof Readable)) throw new Error("expected a Readable");
    const first = await new Promise<Buffer>((resolve) => body.once("data", resolve));
    expect(first.toString()).toBe("first");
    // The source sends nothing more: only being stopped ends it.
    body.destroy();
    expect(source.destroyed).toBe(true);
    // And the wrapper itself closes, its generator no longer waiting on the source.
    expect(await within(new Promise<void>((resolve) => body.once("close", () => resolve())), 5_000)).not.toBe(TIMED_OUT);
  });

  it("a size-capped body read to its end is relayed whole", async () => {
    const source = Readable.from([Buffer.from("a"), Buffer.from("b")]);
    const body = toNodeBody(capped(source, 10, () => undefined));
    if (!(body instanceof Readable)) throw new Error("expected a Readable");
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("ab");
    expect(source.readableEnded).toBe(true);
  });
});
