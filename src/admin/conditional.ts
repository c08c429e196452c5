// HTTP conditional requests over route revisions: ETag "<revision>", If-Match, If-None-Match.
import { ValidationError } from "../config/errors.ts";
import type { Precondition } from "../store/types.ts";

export const etag = (revision: number): string => `"${revision}"`;

/**
 * Parses If-Match / If-None-Match. Only one strong tag or "*" is accepted; a weak tag (W/"3")
 * never matches under If-Match's strong comparison, so it is refused as a malformed precondition.
 */
export function preconditionFrom(headers: Headers): Precondition {
  const pre: Precondition = {};
  const ifMatch = headers.get("if-match");
  if (ifMatch !== null) {
    const v = ifMatch.trim();
    if (v === "*") pre.ifMatch = "*";
    else {
      const m = /^"([1-9][0-9]{0,14})"$/.exec(v);
      if (!m) throw new ValidationError([{ path: "headers.if-match", message: 'must be "*" or one strong ETag such as "3"' }]);
      pre.ifMatch = Number(m[1]);
    }
  }
  const ifNoneMatch = headers.get("if-none-match");
  if (ifNoneMatch !== null) {
    if (ifNoneMatch.trim() !== "*") throw new ValidationError([{ path: "headers.if-none-match", message: 'only "*" (create only) is supported' }]);
    pre.ifNoneMatch = "*";
  }
  return pre;
}
