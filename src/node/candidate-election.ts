// Choosing among lease candidates (docs/lease.md, "Choosing among candidates"): while this node is an
// eligible candidate it publishes its replication position on a candidate board (at most every
// `publishIntervalMs`, only when it changed); when the lease is free, the role manager (lease-role.ts)
// asks `verdict()` before each acquire, and waits — at most `maxWaitMs` per vacancy — while another
// live candidate is strictly newer (candidate-ranking.ts). The bound keeps a newer candidate that
// cannot or does not take the lease from blocking failover; the board keeps dead candidates out (their
// records expire with their coordinator session).
//
// Failures to read the board never block an election: the verdict is then "acquire", as without
// ranking. Publishing failures are retried by the board.

import type { CandidateBoard } from "../lease/candidate-board.js";
import type { StoreLogger } from "../store/store-logger.js";
import {
  decodePosition,
  describePosition,
  electionVerdict,
  encodePosition,
  type RankedCandidate,
  type ReplicationPosition,
} from "./candidate-ranking.js";

export type ElectionDecision =
  { readonly acquire: true } | { readonly acquire: false; readonly retryInMs: number };

/** What the role manager asks before taking a free lease. */
export interface ElectionGate {
  /** Starts publishing this node's position while `eligible()` (a candidate replica that may acquire). */
  start(eligible: () => boolean): void;
  /** Acquire now, or ask again in `retryInMs`. Never rejects. */
  verdict(): Promise<ElectionDecision>;
  /** Someone holds the lease (or this node took it): the next vacancy starts a new bounded wait. */
  vacancyEnded(): void;
  /** Stops publishing and withdraws this node's record. */
  close(): Promise<void>;
}

export interface CandidateElectionOptions {
  readonly board: CandidateBoard;
  /** This node's position now (cheap: called every publish interval and at each verdict). */
  readonly position: () => ReplicationPosition;
  /** The longest this node lets newer candidates go first in one vacancy (ms); > 0. */
  readonly maxWaitMs: number;
  /** Position checks for publishing (ms). Default 150. */
  readonly publishIntervalMs?: number;
  /** While waiting, the board is read again this often (ms). Default 100. */
  readonly recheckMs?: number;
  readonly log: StoreLogger;
  /** Monotonic ms. Default performance.now. */
  readonly now?: () => number;
}

export class CandidateElection implements ElectionGate {
  readonly #opts: CandidateElectionOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #eligible: () => boolean = () => false;
  /** The text last handed to the board (undefined: nothing yet). */
  #published: string | null | undefined = undefined;
  #waitingSinceMs: number | null = null;
  #closed = false;

  constructor(opts: CandidateElectionOptions) {
    if (!(opts.maxWaitMs > 0)) throw new RangeError(`election: maxWaitMs must be > 0, got ${opts.maxWaitMs}`);
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
  }

  start(eligible: () => boolean): void {
    if (this.#closed || this.#timer !== null) return;
    this.#eligible = eligible;
    this.#publishTick();
    this.#timer = setInterval(() => this.#publishTick(), this.#opts.publishIntervalMs ?? 150);
    this.#timer.unref();
  }

  async verdict(): Promise<ElectionDecision> {
    const { board, log, maxWaitMs } = this.#opts;
    let self: ReplicationPosition;
    let others: RankedCandidate[];
    try {
      self = this.#opts.position();
      others = (await board.others()).map((record) => ({
        nodeId: record.nodeId,
        hostname: record.hostname,
        position: decodePosition(record.position),
      }));
    } catch (err) {
      log.debug("cannot rank the candidates; trying for the lease", { error: (err as Error).message });
      return { acquire: true };
    }
    const nowMs = this.#now();
    const verdict = electionVerdict({ self, others, nowMs, waitingSinceMs: this.#waitingSinceMs, maxWaitMs });
    if (verdict.kind === "wait") {
      if (this.#waitingSinceMs === null) {
        log.info("a more up-to-date candidate is alive: letting it take the lease first", {
          candidate: verdict.newer.hostname,
          theirs: describePosition(verdict.newer.position),
          ours: describePosition(self),
          maxWaitMs,
        });
      }
      this.#waitingSinceMs = verdict.waitingSinceMs;
      const recheckMs = this.#opts.recheckMs ?? 100;
      return { acquire: false, retryInMs: Math.max(1, Math.min(recheckMs, verdict.untilMs - nowMs)) };
    }
    if (verdict.reason === "waited-out") {
      log.warn("the more up-to-date candidate did not take the lease in time; trying for it", {
        waitedMs: Math.round(nowMs - (this.#waitingSinceMs ?? nowMs)),
      });
    } else if (this.#waitingSinceMs !== null) {
      log.info("no live candidate is more up to date any more; trying for the lease", {
        ours: describePosition(self),
      });
    }
    return { acquire: true };
  }

  vacancyEnded(): void {
    this.#waitingSinceMs = null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#opts.board.close();
  }

  #publishTick(): void {
    let text: string | null;
    try {
      text = this.#eligible() ? encodePosition(this.#opts.position()) : null;
    } catch (err) {
      this.#opts.log.warn("cannot read this node's position for the election", {
        error: (err as Error).message,
      });
      return;
    }
    if (text === this.#published) return;
    this.#published = text;
    this.#opts.board.publish(text);
  }
}
