// When a replica reconnects after its stream ends (docs/protocol.md, "Reconnecting"). Pure: the
// caller passes how the last stream ended, how many attempts in a row failed, and a random number.
//
// - The primary handed off or lost its lease: the new primary is likely up already — retry at once.
// - Any other end (shutdown, ERROR frame, a refused request, a decoding error, a dropped or silent
//   connection): exponential backoff from 100 ms doubling to 5 s, with ±20 % jitter so that replicas do
//   not reconnect in lockstep after a primary restart. LiteFS waits a fixed 1 s.
// A stream that reached READY resets the failure count: the next end starts the backoff over.
//
// Liveness: the primary sends HEARTBEAT after HEARTBEAT_INTERVAL_MS without another frame; a replica
// that reads nothing for STREAM_IDLE_TIMEOUT_MS drops the connection and reconnects.

import type { EndReason } from "./stream-frame.js";

export const HEARTBEAT_INTERVAL_MS = 1000;
export const STREAM_IDLE_TIMEOUT_MS = 5000;

export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Relative spread: the delay is multiplied by a factor in [1 − jitter, 1 + jitter). */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ initialMs: 100, maxMs: 5000, jitter: 0.2 });

/** How the last stream ended, as far as reconnecting cares. */
export type StreamEnding =
  { readonly kind: "end"; readonly reason: EndReason } | { readonly kind: "failure" };

/**
 * Milliseconds to wait before the next attempt. `failures` counts the attempts in a row that ended
 * without reaching READY (≥ 1 once a stream ended); `random` is in [0, 1).
 */
export function reconnectDelayMs(
  ending: StreamEnding,
  failures: number,
  random: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  if (!Number.isInteger(failures) || failures < 0)
    throw new RangeError(`failures ${failures}: want an integer ≥ 0`);
  if (!(random >= 0 && random < 1)) throw new RangeError(`random ${random}: want [0, 1)`);
  if (
    ending.kind === "end" &&
    (ending.reason === "handed-off" || ending.reason === "lease-lost") &&
    failures <= 1
  ) {
    return 0;
  }
  const exponent = Math.max(0, failures - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(exponent, 30));
  return Math.round(base * (1 - policy.jitter + 2 * policy.jitter * random));
}
