// Node's own HTTP/1 parser binding (llhttp), as node:http uses it. `_http_common` is a built-in
// module Node keeps importable for compatibility; only what src/runtime/http1-server.ts reads is typed.
declare module "_http_common" {
  export class HTTPParser {
    static readonly REQUEST: number;
    static readonly RESPONSE: number;
    static readonly kOnMessageBegin: number;
    static readonly kOnHeaders: number;
    static readonly kOnHeadersComplete: number;
    static readonly kOnBody: number;
    static readonly kOnMessageComplete: number;
    static readonly kOnExecute: number;
    static readonly kLenientNone: number;
    /** resource: the async resource the parser's callbacks run in; maxHeaderSize 0 = Node's default. */
    initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
    /** Bytes parsed, or an Error with `code` (llhttp's HPE_*), `reason` and `bytesParsed`. */
    execute(data: Buffer): number | (Error & { code?: string; reason?: string; bytesParsed?: number });
    /** Undefined when the message ended cleanly at EOF, else the Error. */
    finish(): Error | undefined;
    /** Reads the stream handle directly (kOnExecute is called with each read's result). */
    consume(handle: object): void;
    unconsume(): void;
    pause(): void;
    resume(): void;
    close(): void;
    free(): void;
    remove(): void;
    [key: number]: unknown;
  }
  export const methods: readonly string[];
  export function _checkIsHttpToken(s: string): boolean;
  export function _checkInvalidHeaderChar(s: string): boolean;
}
