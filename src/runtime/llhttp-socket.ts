// Node's llhttp parser (the binding node:http uses, from the built-in `_http_common`) reading a
// socket, for both isthmus's HTTP/1.1 server and its upstream client. As node:http does, the parser
// reads the socket's handle itself, in C++: no JS Buffer per read (each an ArrayBuffer that every
// scavenge must sweep) and no 'data' event; reading is started and stopped on the handle.
import type { Socket } from "node:net";
import { HTTPParser } from "_http_common";

/** What of a socket's libuv handle the parser's direct reading needs. */
interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

export const kOnMessageBegin = HTTPParser.kOnMessageBegin;
export const kOnHeaders = HTTPParser.kOnHeaders;
export const kOnHeadersComplete = HTTPParser.kOnHeadersComplete;
export const kOnBody = HTTPParser.kOnBody;
export const kOnMessageComplete = HTTPParser.kOnMessageComplete;
const kOnExecute = HTTPParser.kOnExecute;

export type ExecuteResult = ReturnType<HTTPParser["execute"]>;

/** A parser attached to a socket: what it reads, how reading stops and starts, and how it is let go. */
export class ParserInput {
  /** The socket's handle, when the parser reads it directly. */
  private readonly handle: StreamHandle | null;

  /**
   * Attaches `parser` to a connected `socket`. `executed` is told the result of parsing each read
   * (bytes parsed, or the parse error), after every callback the read caused.
   */
  constructor(
    private readonly socket: Socket,
    private readonly parser: HTTPParser,
    executed: (r: ExecuteResult) => void,
  ) {
    const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (handle?.isStreamBase && !handle._consumed) {
      handle._consumed = true;
      this.handle = handle;
      parser.consume(handle);
      parser[kOnExecute] = executed;
      // Flowing, though no data passes through the stream: only then is the peer's FIN told as 'end'.
      socket.resume();
    } else {
      // A socket whose handle cannot be read directly: its 'data' events are parsed instead.
      this.handle = null;
      parser[kOnExecute] = () => undefined;
      socket.on("data", (d: Buffer) => {
        if (parser[kOnExecute] !== null) executed(parser.execute(d));
      });
    }
  }

  stop(): void {
    const h = this.handle;
    if (!h) this.socket.pause();
    else if (h.reading) {
      h.reading = false;
      h.readStop();
    }
  }

  start(): void {
    const h = this.handle;
    if (!h) this.socket.resume();
    else if (!h.reading && !this.socket.destroyed) {
      h.reading = true;
      h.readStart();
    }
  }

  /**
   * Once the socket has closed. The native parser holds its JS object (and through the callbacks
   * the connection and its socket) until it is closed; node:http closes it the same way, once the
   * stack has unwound.
   */
  release(): void {
    if (this.handle) this.parser.unconsume();
    closeParser(this.parser);
  }
}

/** Lets a parser go: its callbacks dropped now, the native parser freed once the stack has unwound. */
export function closeParser(p: HTTPParser): void {
  for (const k of [kOnMessageBegin, kOnHeaders, kOnHeadersComplete, kOnBody, kOnMessageComplete, kOnExecute]) p[k] = null;
  setImmediate(() => p.close());
}
