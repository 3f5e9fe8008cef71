// Before a shutdown's handoff (SIGTERM: a deploy), the primary lets its target get close behind: while
// the target is still applying a backlog (a writer faster than it applies, a replica that was busy),
// the backlog would otherwise be applied inside the write gap — after this node stops its commits and
// before the target can take writes. `litefs promote` has the target do this wait itself
// (ReplicaClient `closeBehind`); here the primary does it, knowing the target only through what it
// told the stream (its API URL, `Litefs-Advertise-URL`): it asks the target's `GET /pos` every
// POLL_MS and compares it with this node's own positions as they were CLOSE_BEHIND_WITHIN_MS before
// the request (close-behind.ts, which also bounds the wait).
// Close behind: the target applied everything committed up to then. The wait is bounded, gives up when
// the target stops gaining, and never fails the shutdown: the handoff follows in any case.

import { approach, CLOSE_BEHIND_MAX_MS, CLOSE_BEHIND_WITHIN_MS } from "../api/close-behind.js";
import { parsePos } from "../ltx/pos.js";
import { httpRequest } from "../net/http-request.js";

export interface CloseBehindOptions {
  /** The target's API URL. */
  readonly url: string;
  readonly authToken: string | null;
  /** This node's TXID per database, now. */
  readonly head: () => ReadonlyMap<string, bigint>;
  /** Bounds other than close-behind.ts's (tests). */
  readonly maxMs?: number;
  readonly stallMs?: number;
  readonly pollMs?: number;
}

export interface CloseBehindResult {
  readonly closeBehind: boolean;
  readonly waitedMs: number;
  /** Transactions the target lacked at its last answer (against the positions it was compared with). */
  readonly behind: number | null;
  /** The last request's failure, when the target did not answer. */
  readonly error?: string;
}

const POLL_MS = 10;

export async function waitTargetCloseBehind(opts: CloseBehindOptions): Promise<CloseBehindResult> {
  const maxMs = opts.maxMs ?? CLOSE_BEHIND_MAX_MS;
  const started = performance.now();
  /** This node's positions as sampled before each request, oldest first. */
  const samples: { at: number; head: ReadonlyMap<string, bigint> }[] = [];
  let behind: number | null = null;
  let error: string | undefined;
  const closeBehind = await approach(
    async () => {
      const askedAt = performance.now();
      const windowStart = askedAt - CLOSE_BEHIND_WITHIN_MS;
      samples.push({ at: askedAt, head: opts.head() });
      // The newest sample at least the window old, else (the first requests) the one just taken.
      while (samples.length > 1 && samples[1].at <= windowStart) samples.shift();
      const reference = samples[0].at <= windowStart ? samples[0] : samples[samples.length - 1];
      const timeoutMs = Math.max(50, Math.min(1000, maxMs - (askedAt - started)));
      try {
        const theirs = await positionsOf(opts.url, opts.authToken, timeoutMs);
        behind = 0;
        for (const [db, txid] of reference.head) {
          const have = theirs.get(db) ?? 0n;
          if (have < txid) behind += Number(txid - have);
        }
        error = undefined;
      } catch (err) {
        behind = null;
        error = (err as Error).message;
      }
      return { close: behind === 0, distance: behind };
    },
    { maxMs, stallMs: opts.stallMs, pollMs: opts.pollMs ?? POLL_MS },
  );
  const waitedMs = Math.round(performance.now() - started);
  return { closeBehind, waitedMs, behind, ...(error === undefined ? {} : { error }) };
}

/** The target's TXID per database (`GET /pos`). */
async function positionsOf(
  url: string,
  authToken: string | null,
  timeoutMs: number,
): Promise<Map<string, bigint>> {
  const answer = await httpRequest(new URL("/pos", url), {
    headers: authToken === null ? {} : { Authorization: `Bearer ${authToken}` },
    timeoutMs,
    maxBytes: 1 << 20,
  });
  if (answer.status !== 200) throw new Error(`GET /pos: HTTP ${answer.status} ${answer.text.slice(0, 200)}`);
  const body = JSON.parse(answer.text) as Record<string, string>;
  return new Map(Object.entries(body).map(([db, pos]) => [db, parsePos(pos).txid]));
}
