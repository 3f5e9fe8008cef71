// What a node that just handed its lease off still owes the target: the transactions the target may
// not have read. The handoff sends them, then HANDOFF, on the target's stream; if that connection
// breaks in between, the target holds the lease without them — acknowledged commits included — and
// this node, alive and no longer primary, is the only one that has them. So for a while after the
// handoff this node answers the target's `POST /stream` once more, as the primary it was: the catch-up
// from the target's positions, then HANDOFF, then END (stream-server.ts serves it; the target waits for
// that frame before it acts as primary, lease-role.ts).
//
// Served only (1) to the target, (2) within a window (litefs-node.ts: 10 s, longer than the target
// waits for the frame before it acts without it), (3) while this node's databases are exactly where the handoff left
// them (it has applied nothing from a new primary since), and (4) until one such stream has sent its
// HANDOFF frame — a second HANDOFF after the target became primary would be stale.

import { posEqual, type Pos } from "../ltx/pos.js";

interface HandedOff {
  readonly toNodeId: bigint;
  readonly epoch: bigint;
  readonly untilMs: number;
  readonly positions: ReadonlyMap<string, Pos>;
  sent: boolean;
}

export class HandoffTail {
  #last: HandedOff | null = null;
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** The lease (epoch `epoch`) went to `toNodeId` with the databases at `positions`. */
  handedOff(toNodeId: bigint, epoch: bigint, windowMs: number, positions: ReadonlyMap<string, Pos>): void {
    this.#last = {
      toNodeId,
      epoch,
      untilMs: this.#now() + windowMs,
      positions: new Map(positions),
      sent: false,
    };
  }

  /** Forgets the handoff (this node became primary again, or stops). */
  clear(): void {
    this.#last = null;
  }

  /**
   * The epoch to serve `nodeId` its missed transactions under, or null when this node owes it none
   * (rules in the header). `positionsNow`: this node's databases now, asked only when the rest holds.
   */
  owedTo(nodeId: bigint, positionsNow: () => ReadonlyMap<string, Pos>): bigint | null {
    const last = this.#last;
    if (last === null || last.sent || last.toNodeId !== nodeId) return null;
    if (this.#now() > last.untilMs) {
      this.#last = null;
      return null;
    }
    const positions = positionsNow();
    if (positions.size !== last.positions.size) return null;
    for (const [db, pos] of positions) {
      const then = last.positions.get(db);
      if (then === undefined || !posEqual(then, pos)) return null;
    }
    return last.epoch;
  }

  /** A stream served under `epoch` sent its HANDOFF frame: nothing more is owed. */
  sent(epoch: bigint): void {
    if (this.#last !== null && this.#last.epoch === epoch) this.#last.sent = true;
  }
}
