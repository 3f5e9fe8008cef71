// Handoff flow control. A handoff stops this primary's commits, and its target takes writes only once
// it has applied everything before the HANDOFF frame — so whatever the target is still behind by when
// the commits stop is applied inside the write gap. Waiting for the target to get close is not enough
// against a writer faster than the target applies (a replica makes each replicated transaction durable
// as its own file: create, write, fsync, rename): session 21's WAL bench had targets 500–600 ms behind
// whose wait gave up (it never gained), then handoffs with a write gap of 0.4–0.8 s.
//
// So the primary slows its writers while its target catches up: during a handoff's first step
// ("pace", lease-role.ts), a local commit is answered — the FUSE request that completed it: the write
// of the WAL's commit frame, the journal's unlink, truncate or header write — only once the target has
// applied all but PACE_WINDOW_TX of this node's transactions before it, or after PACE_HOLD_MAX_MS, or
// when the step ends. The commit itself is done (durable, streamed) before the hold: only its answer
// waits, and with it the writer and the SQLite locks it holds. The step ends once the target is within
// the window of this node's head (close: the commits then stop with at most that much left to apply),
// or by its bounds (PACE_MAX_MS in all; given up after PACE_STALL_MS without gain: a target that does
// not answer, or does not apply). The target is known through what it told the stream (its API URL,
// `Litefs-Advertise-URL`); its position through its `GET /pos`, asked every POLL_MS.
//
// What a writer sees: no commit waits longer than PACE_HOLD_MAX_MS for the pace (a stall of that
// length at most, instead of a write gap as long as the target's backlog), and its throughput is the
// target's while the step lasts. Nothing is held outside a handoff's pace step: `afterChange` is one
// field test then.

import { sleepOn, systemClock } from "../lease/clock.js";
import { parsePos } from "../ltx/pos.js";
import { httpRequest } from "../net/http-request.js";
import type { CommitEvent } from "../store/commit-event.js";

/** The pace step's bound (ms). */
export const PACE_MAX_MS = 2000;
/** The pace step is given up once the target's distance has not come down for this long (ms). */
export const PACE_STALL_MS = 500;
/** Transactions per database the target may lack before a commit's answer waits for it. */
export const PACE_WINDOW_TX = 8;
/** The longest a commit's answer waits for the target (ms). */
export const PACE_HOLD_MAX_MS = 50;
/** How often the target's position is asked for (ms between an answer and the next request). */
const POLL_MS = 5;
const WINDOW = BigInt(PACE_WINDOW_TX);

export interface PaceOptions {
  /** The target's API URL. */
  readonly url: string;
  readonly authToken: string | null;
  /** This node's TXID per database, now. */
  readonly head: () => ReadonlyMap<string, bigint>;
  /** True once the handoff cannot go on (this node is no longer primary): the step ends at once. */
  readonly abandoned?: () => boolean;
  /** Bounds other than the defaults (tests). */
  readonly maxMs?: number;
  readonly stallMs?: number;
  readonly holdMaxMs?: number;
}

export interface PaceResult {
  /** The target was within the window of this node's head. */
  readonly close: boolean;
  readonly waitedMs: number;
  /** Transactions the target lacked at its last answer, against this node's head when asked. */
  readonly behind: number | null;
  /** Commits whose answer waited, and the longest wait (ms). */
  readonly held: number;
  readonly longestHoldMs: number;
  /** The last request's failure, when the target did not answer. */
  readonly error?: string;
}

interface Hold {
  readonly db: string;
  readonly txid: bigint;
  readonly release: () => void;
}

/** One pace step's state: the target's last known positions and the commits waiting for them. */
class Pacing {
  readonly #holds = new Set<Hold>();
  #theirs: ReadonlyMap<string, bigint> | null = null;
  held = 0;
  longestHoldMs = 0;

  constructor(readonly holdLimitMs: number) {}

  /** Null when the target is close enough to `txid`; else resolves when it is (or at the bounds). */
  hold(db: string, txid: bigint): Promise<void> | null {
    if (this.#near(db, txid)) return null;
    return new Promise((resolve) => {
      const since = performance.now();
      const hold: Hold = {
        db,
        txid,
        release: () => {
          if (!this.#holds.delete(hold)) return;
          clearTimeout(timer);
          this.longestHoldMs = Math.max(this.longestHoldMs, performance.now() - since);
          resolve();
        },
      };
      const timer = setTimeout(hold.release, this.holdLimitMs);
      this.held++;
      this.#holds.add(hold);
    });
  }

  /** The target's positions as it just answered. */
  update(theirs: ReadonlyMap<string, bigint>): void {
    this.#theirs = theirs;
    for (const hold of [...this.#holds]) if (this.#near(hold.db, hold.txid)) hold.release();
  }

  releaseAll(): void {
    for (const hold of [...this.#holds]) hold.release();
  }

  /**
   * Until the target's first answer nothing is held: a commit would wait blind (a target that does
   * not answer — frozen, gone — would cost every commit the whole bound until the step gives up).
   */
  #near(db: string, txid: bigint): boolean {
    return this.#theirs === null || (this.#theirs.get(db) ?? 0n) + WINDOW >= txid;
  }
}

export class HandoffPacer {
  #pacing: Pacing | null = null;
  /** Per database, the local commit whose mount request has not been answered yet (pace step only). */
  readonly #committed = new Map<string, bigint>();

  /** The store's commit listener (Store.subscribe): notes a local commit while a step runs. */
  readonly onCommit = (event: CommitEvent): void => {
    if (this.#pacing !== null && event.source !== "replication")
      this.#committed.set(event.db, event.pos.txid);
  };

  /**
   * The mount, after a change to `db` that it is about to answer: null (answer now), or a promise
   * that resolves when the answer may go (the change committed a transaction the target is too far
   * behind). The store announces a commit inside the request that completes it, before this call.
   */
  afterChange(db: string): Promise<void> | null {
    if (this.#pacing === null) return null;
    const txid = this.#committed.get(db);
    if (txid === undefined) return null;
    this.#committed.delete(db);
    return this.#pacing.hold(db, txid);
  }

  /** Runs a pace step (one at a time): resolves when the target is close or the bounds ran out. */
  async pace(opts: PaceOptions): Promise<PaceResult> {
    if (this.#pacing !== null) throw new Error("a handoff's pace step is already running");
    const pacing = new Pacing(opts.holdMaxMs ?? PACE_HOLD_MAX_MS);
    const maxMs = opts.maxMs ?? PACE_MAX_MS;
    const abandon = new AbortController();
    const started = performance.now();
    let behind: number | null = null;
    let error: string | undefined;
    this.#committed.clear();
    this.#pacing = pacing;
    try {
      const close = await approach(
        async () => {
          if (opts.abandoned?.() === true) {
            abandon.abort();
            return { close: false, distance: null };
          }
          const head = opts.head();
          const timeoutMs = Math.max(50, Math.min(1000, maxMs - (performance.now() - started)));
          let theirs: Map<string, bigint>;
          try {
            theirs = await positionsOf(opts.url, opts.authToken, timeoutMs);
          } catch (err) {
            behind = null;
            error = (err as Error).message;
            return { close: false, distance: null };
          }
          error = undefined;
          pacing.update(theirs);
          let sum = 0;
          let within = true;
          for (const [db, txid] of head) {
            const lacking = txid - (theirs.get(db) ?? 0n);
            if (lacking <= 0n) continue;
            sum += Number(lacking);
            if (lacking > WINDOW) within = false;
          }
          behind = sum;
          return { close: within, distance: sum };
        },
        {
          maxMs,
          stallMs: opts.stallMs ?? PACE_STALL_MS,
          pollMs: POLL_MS,
          signal: abandon.signal,
        },
      );
      return {
        close,
        waitedMs: Math.round(performance.now() - started),
        behind,
        held: pacing.held,
        longestHoldMs: Math.round(pacing.longestHoldMs),
        ...(error === undefined ? {} : { error }),
      };
    } finally {
      this.#pacing = null;
      this.#committed.clear();
      pacing.releaseAll();
    }
  }
}

interface Approach {
  readonly close: boolean;
  /** How far behind; null when it could not be told this time (no gain). */
  readonly distance: number | null;
}

/**
 * Probes every `pollMs` (after each answer) until the probe says close (true), `maxMs` have passed,
 * the distance has not come down for `stallMs`, or `signal` aborted (false).
 */
async function approach(
  probe: () => Promise<Approach>,
  bounds: { maxMs: number; stallMs: number; pollMs: number; signal: AbortSignal },
): Promise<boolean> {
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
    if (now - started >= bounds.maxMs || now - bestAt >= bounds.stallMs || bounds.signal.aborted)
      return false;
    await sleepOn(systemClock, bounds.pollMs, bounds.signal).catch(() => undefined); // aborted: ends above
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
