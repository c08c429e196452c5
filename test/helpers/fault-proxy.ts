// A TCP fault proxy for integration tests (toxiproxy and netem are not available here): listens on
// 127.0.0.1 (a free port) in front of a target (an upstream, Redis, ...) and relays bytes both ways,
// with a toxic that can be switched at run time by calling a function:
//   pass       relay as is
//   latency    delay every chunk (both directions) by `ms` (+ up to `jitterMs`), order kept
//   drop       accept new connections and close them at once (FIN); existing ones go on
//   refuse     stop listening: new connections are refused (ECONNREFUSED); existing ones go on
//   reset      new connections are reset (RST) on accept, and every existing one is reset now
//   blackhole  accept and read, never forward and never answer (existing connections too)
// Leaving `blackhole` closes the connections that lost bytes to it (their streams are corrupt).
// `disconnect()` cuts the open connections (with `refuse`: the target went down). Counts
// connections; `close()` tears everything down.
import { EventEmitter } from "node:events";
import net from "node:net";

export type Toxic =
  | { kind: "pass" }
  | { kind: "latency"; ms: number; jitterMs?: number }
  | { kind: "drop" }
  | { kind: "refuse" }
  | { kind: "reset" }
  | { kind: "blackhole" };

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: the proxy's address, for HTTP targets. */
  readonly url: string;
  readonly port: number;
  /** Connections accepted (dropped, reset and blackholed ones included). */
  readonly connections: number;
  /** Connections open now. */
  readonly active: number;
  readonly toxic: Toxic;
  /** Emits "connection" on every accepted connection. */
  readonly events: EventEmitter<{ connection: [] }>;
  set(toxic: Toxic): Promise<void>;
  pass(): Promise<void>;
  latency(ms: number, jitterMs?: number): Promise<void>;
  drop(): Promise<void>;
  refuse(): Promise<void>;
  reset(): Promise<void>;
  blackhole(): Promise<void>;
  /** Cuts every open connection now: FIN, or RST when `rst`. The toxic stays as it is. */
  disconnect(rst?: boolean): void;
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  upstream: net.Socket | null;
  /** Bytes were swallowed by a blackhole: the streams are no longer in step. */
  tainted: boolean;
  timers: Set<NodeJS.Timeout>;
}

/** `target`: a URL (`http://127.0.0.1:1234`, `redis://...`) or a port on 127.0.0.1. */
export async function startFaultProxy(target: string | number): Promise<FaultProxy> {
  const dest = typeof target === "number" ? { host: "127.0.0.1", port: target } : { host: new URL(target).hostname, port: Number(new URL(target).port) };
  let toxic: Toxic = { kind: "pass" };
  let accepted = 0;
  let closed = false;
  const links = new Set<Link>();
  const events = new EventEmitter<{ connection: [] }>();

  const kill = (l: Link, rst: boolean) => {
    for (const t of l.timers) clearTimeout(t);
    if (rst) l.client.resetAndDestroy();
    else l.client.destroy();
    l.upstream?.destroy();
  };

  /** Relays one direction: the toxic is read per chunk, so a switch applies to open connections too. */
  const relay = (from: net.Socket, to: net.Socket, l: Link) => {
    const queue: Array<{ at: number; chunk: Buffer | null }> = [];
    let timer: NodeJS.Timeout | undefined;
    const send = (chunk: Buffer | null) => {
      if (to.destroyed) return;
      if (chunk === null) return void to.end();
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    };
    const pump = () => {
      if (timer) l.timers.delete(timer);
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && (queue[0] as { at: number }).at <= now) send((queue.shift() as { chunk: Buffer | null }).chunk);
      if (queue.length > 0) l.timers.add((timer = setTimeout(pump, (queue[0] as { at: number }).at - now)));
    };
    const push = (chunk: Buffer | null) => {
      const t = toxic;
      const delay = t.kind === "latency" ? t.ms + Math.random() * (t.jitterMs ?? 0) : 0;
      if (delay <= 0 && queue.length === 0) return send(chunk);
      queue.push({ at: Math.max(performance.now() + delay, queue.at(-1)?.at ?? 0), chunk });
      if (!timer) l.timers.add((timer = setTimeout(pump, Math.max(0, (queue[0] as { at: number }).at - performance.now()))));
    };
    from.on("data", (chunk: Buffer) => {
      if (toxic.kind === "blackhole") l.tainted = true;
      else push(chunk);
    });
    from.on("end", () => push(null));
  };

  const onConnection = (client: net.Socket) => {
    accepted++;
    client.on("error", () => undefined);
    events.emit("connection");
    const t = toxic;
    if (t.kind === "drop") return void client.destroy();
    if (t.kind === "reset") return void client.resetAndDestroy();
    const l: Link = { client, upstream: null, tainted: false, timers: new Set() };
    links.add(l);
    client.once("close", (hadError) => {
      links.delete(l);
      for (const timer of l.timers) clearTimeout(timer);
      if (hadError) l.upstream?.resetAndDestroy();
      else if (!client.readableEnded) l.upstream?.destroy();
    });
    if (t.kind === "blackhole") {
      l.tainted = true;
      client.resume(); // read and discard; no upstream at all
      return;
    }
    const up = net.connect({ host: dest.host, port: dest.port, allowHalfOpen: true });
    l.upstream = up;
    up.on("error", () => undefined);
    up.once("close", (hadError) => {
      if (hadError) client.resetAndDestroy();
      else if (!up.readableEnded) client.destroy();
    });
    relay(client, up, l);
    relay(up, client, l);
  };

  let listener: net.Server | null = null;
  let port = 0;
  const listen = async (): Promise<void> => {
    // Re-listening on the same port after `refuse`: retry briefly should the kernel still hold it.
    for (let attempt = 1; ; attempt++) {
      const srv = net.createServer({ allowHalfOpen: true }, onConnection);
      try {
        await new Promise<void>((resolve, reject) => {
          srv.once("error", reject);
          srv.listen(port, "127.0.0.1", () => resolve());
        });
        listener = srv;
        port = (srv.address() as net.AddressInfo).port;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 40) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  };
  const unlisten = (): Promise<void> => {
    const srv = listener;
    listener = null;
    // close() stops accepting at once; its callback waits for connections we track ourselves.
    if (srv) srv.close();
    return Promise.resolve();
  };
  await listen();

  const set = async (next: Toxic): Promise<void> => {
    if (closed) throw new Error("fault proxy closed");
    const prev = toxic;
    toxic = next;
    if (next.kind === "refuse") await unlisten();
    else if (!listener) await listen();
    if (next.kind === "reset") for (const l of links) kill(l, true);
    if (prev.kind === "blackhole" && next.kind !== "blackhole") for (const l of links) if (l.tainted) kill(l, false);
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get connections() {
      return accepted;
    },
    get active() {
      return links.size;
    },
    get toxic() {
      return toxic;
    },
    events,
    set,
    pass: () => set({ kind: "pass" }),
    latency: (ms, jitterMs) => set({ kind: "latency", ms, ...(jitterMs !== undefined ? { jitterMs } : {}) }),
    drop: () => set({ kind: "drop" }),
    refuse: () => set({ kind: "refuse" }),
    reset: () => set({ kind: "reset" }),
    blackhole: () => set({ kind: "blackhole" }),
    disconnect(rst = false) {
      for (const l of links) kill(l, rst);
    },
    async close() {
      if (closed) return;
      closed = true;
      await unlisten();
      for (const l of links) kill(l, false);
      links.clear();
    },
  };
}
