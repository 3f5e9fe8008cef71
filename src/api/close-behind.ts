// The bounded wait before a handoff while its target is still applying a backlog: what the target has
// yet to apply when the old primary stops its commits is applied inside the write gap, so each kind of
// handoff first lets it get close behind. The target waits itself for `litefs promote` and
// `lease.promote` (ReplicaClient `closeBehind`, by its lag); the old primary waits for a SIGTERM
// handoff (src/node/target-close-behind.ts, by the target's `GET /pos`). Both give up the same way: a
// target that stops gaining (a writer faster than it applies) would only fall further behind.

import { sleepOn, systemClock } from "../lease/clock.js";

/** "Close": the target has what was committed this long ago (ms). */
export const CLOSE_BEHIND_WITHIN_MS = 20;
/** The whole wait's bound (ms). */
export const CLOSE_BEHIND_MAX_MS = 2000;
/** Given up once the distance has not come down for this long (ms). */
export const CLOSE_BEHIND_STALL_MS = 500;

export interface Approach {
  readonly close: boolean;
  /** How far behind, in the probe's unit; null when it could not be told this time (no gain). */
  readonly distance: number | null;
}

export interface ApproachBounds {
  readonly maxMs?: number;
  readonly stallMs?: number;
  readonly pollMs: number;
  /** Ends the wait (false) when it aborts. */
  readonly signal?: AbortSignal;
}

/**
 * Probes every `pollMs` until the probe says close (true), `maxMs` have passed, or the distance has
 * not come down for `stallMs` (false).
 */
export async function approach(
  probe: () => Approach | Promise<Approach>,
  bounds: ApproachBounds,
): Promise<boolean> {
  const maxMs = bounds.maxMs ?? CLOSE_BEHIND_MAX_MS;
  const stallMs = bounds.stallMs ?? CLOSE_BEHIND_STALL_MS;
  const started = performance.now();
  let best = Infinity;
  let bestAt = started;
  for (;;) {
    const { close, distance } = await probe();
    if (close) return true;
    const now = performance.now();
    if (distance !== null && distance < best) {
      best = distance;
      bestAt = now;
    }
    if (now - started >= maxMs || now - bestAt >= stallMs || bounds.signal?.aborted === true) return false;
    await sleepOn(systemClock, bounds.pollMs, bounds.signal).catch(() => undefined); // aborted: ends above
  }
}
