// Before a shutdown's handoff (SIGTERM: a deploy), the primary lets its target get close behind: while
// the target is still applying a backlog (a writer faster than it applies, a replica that was busy),
// the backlog would otherwise be applied inside the write gap — after this node stops its commits and
// before the target can take writes. `litefs promote` has the target do this wait itself
// (ReplicaClient `closeBehind`); here the primary does it, knowing the target only through what it
// told the stream (its API URL, `Litefs-Advertise-URL`): it asks the target's `GET /pos` every
// POLL_MS and compares it with this node's own positions as they were WINDOW_MS before the request.
// Close behind: the target applied everything committed up to then. The wait is bounded, gives up when
// the target stops gaining, and never fails the shutdown: the handoff follows in any case.

import { parsePos } from "../ltx/pos.js";
import { httpRequest } from "../net/http-request.js";

export interface CloseBehindOptions {
  /** The target's API URL. */
  readonly url: string;
  readonly authToken: string | null;
  /** This node's TXID per database, now. */
  readonly head: () => ReadonlyMap<string, bigint>;
  /** "Close": the target has what was committed this long before the request (ms). */
  readonly windowMs?: number;
  /** The whole wait's bound (ms). */
  readonly maxMs?: number;
  /** Given up once the target has not gained for this long (ms). */
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

const WINDOW_MS = 20;
const MAX_MS = 2000;
const STALL_MS = 500;
const POLL_MS = 10;

export async function waitTargetCloseBehind(opts: CloseBehindOptions): Promise<CloseBehindResult> {
  const windowMs = opts.windowMs ?? WINDOW_MS;
  const maxMs = opts.maxMs ?? MAX_MS;
  const stallMs = opts.stallMs ?? STALL_MS;
  const started = performance.now();
  /** This node's positions as sampled before each request, oldest first. */
  const samples: { at: number; head: ReadonlyMap<string, bigint> }[] = [];
  let best = Infinity;
  let bestAt = started;
  let behind: number | null = null;
  let error: string | undefined;
  for (;;) {
    const askedAt = performance.now();
    samples.push({ at: askedAt, head: opts.head() });
    // The newest sample at least windowMs old, else (the first requests) the one just taken.
    let reference = samples[samples.length - 1];
    for (const sample of samples) if (sample.at <= askedAt - windowMs) reference = sample;
    while (samples.length > 1 && samples[1].at <= askedAt - windowMs) samples.shift();
    const remaining = maxMs - (askedAt - started);
    try {
      const theirs = await positionsOf(opts.url, opts.authToken, Math.max(50, Math.min(1000, remaining)));
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
    const now = performance.now();
    const waitedMs = Math.round(now - started);
    if (behind === 0) return { closeBehind: true, waitedMs, behind };
    if (behind !== null && behind < best) {
      best = behind;
      bestAt = now;
    }
    if (now - started >= maxMs || now - bestAt >= stallMs) {
      return { closeBehind: false, waitedMs, behind, ...(error === undefined ? {} : { error }) };
    }
    await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? POLL_MS));
  }
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
