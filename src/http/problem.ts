// RFC 9457 problem details: every error the gateway itself produces is application/problem+json.
import type { FieldError } from "../config/errors.ts";

export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
  [extra: string]: unknown;
}

export const PROBLEM_TYPE_BASE = "urn:isthmus:problem:";

export function problem(p: Problem, headers?: Record<string, string>): Response {
  const body: Problem = { type: p.type ?? "about:blank", ...p };
  return new Response(JSON.stringify(body), {
    status: p.status,
    headers: { "content-type": "application/problem+json", "cache-control": "no-store", ...headers },
  });
}

export const problemType = (slug: string): string => `${PROBLEM_TYPE_BASE}${slug}`;
