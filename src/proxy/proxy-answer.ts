// The answers the proxy composes itself — its errors, /litefs/health and fly-replay — as plain data, so
// that the HTTP path (ServerResponse) and the upgrade path (a raw socket) send exactly the same thing.

import { PROXY_ERROR_HEADER, type ProxyError } from "./proxy-error.js";
import type { ProxyNodeView } from "./proxy-node-view.js";
import { BadTxidError, txidClearCookie } from "./txid-token.js";

export interface ProxyAnswer {
  readonly status: number;
  /** Flat [name, value, …] list. */
  readonly headers: readonly string[];
  readonly body: string;
}

const TEXT = ["Content-Type", "text/plain; charset=utf-8", "Cache-Control", "no-store"];

export function errorAnswer(err: ProxyError): ProxyAnswer {
  const headers = [...TEXT, PROXY_ERROR_HEADER, err.code];
  if (err.retryAfterSeconds !== undefined) headers.push("Retry-After", String(err.retryAfterSeconds));
  if (err instanceof BadTxidError && err.fromCookie) headers.push("Set-Cookie", txidClearCookie());
  return { status: err.status, headers, body: `litefs proxy: ${err.message}\n` };
}

/** 200 while this node's lag is within `maxLagMs` (always on the primary), else 503 saying by how much. */
export function healthAnswer(view: ProxyNodeView, maxLagMs: number): ProxyAnswer {
  const primary = view.isPrimary();
  const lagMs = primary ? 0 : Math.max(0, Math.round(view.lagMs()));
  const headers = [...TEXT, "Litefs-Lag-Ms", String(lagMs), "Litefs-Role", primary ? "primary" : "replica"];
  if (lagMs > maxLagMs) {
    return {
      status: 503,
      headers,
      body: `litefs proxy: unhealthy: replication lag ${lagMs} ms exceeds max-lag ${maxLagMs} ms\n`,
    };
  }
  return { status: 200, headers, body: "OK\n" };
}

/**
 * fly-replay mode: Fly's edge sees the header and replays the request on the primary's machine. Off
 * Fly.io nothing replays it, so the status is an explicit 409 rather than a 200 that would look like
 * the write succeeded.
 */
export function replayAnswer(primaryHostname: string): ProxyAnswer {
  return {
    status: 409,
    headers: [...TEXT, "fly-replay", `instance=${primaryHostname}`],
    body: `litefs proxy: this node is a read-only replica; replay on instance ${primaryHostname}\n`,
  };
}
