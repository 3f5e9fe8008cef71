// The replica's checks before it applies anything a stream brings (docs/protocol.md, "What the replica
// verifies"). Pure: the stream's frames and the replica's own state in, a decision out; a refusal ends
// the stream (the replica reconnects and gets a snapshot).
//
// - EPOCH: a primary whose epoch is below the highest one this replica has seen is a stale primary
//   (a newer one has been elected since): refuse it. Equal is fine (the same primary reconnecting).
// - Incremental LTX: it must start right after the replica's TXID and apply to the replica's checksum —
//   otherwise applying it would produce a database that matches no history.
// - Snapshot LTX: always applicable (it replaces the database); when the primary says the replica's
//   history diverged or could not be verified, the replica's TXIDs from the first unshared one up to its
//   own position are to be quarantined (kept as LTX files) before the snapshot is applied.

import type { Pos } from "../ltx/pos.js";
import { StreamError } from "./stream-error.js";
import {
  firstUnsharedTxid,
  type EpochFrame,
  type HistoryVerdict,
  type LtxBeginFrame,
} from "./stream-frame.js";

/** Throws ESTREAMEPOCH when the stream's primary is older than one the replica already followed. */
export function admitEpoch(frame: EpochFrame, highestEpochSeen: bigint): void {
  if (frame.epoch < highestEpochSeen) {
    throw new StreamError(
      "ESTREAMEPOCH",
      `primary ${frame.primaryNodeId.toString(16).padStart(16, "0")} streams under epoch ${frame.epoch}, but epoch ${highestEpochSeen} was already seen: a stale primary`,
      { rule: "epoch fencing" },
    );
  }
}

/** TXIDs of the replica's own history to move aside before a snapshot replaces it. */
export interface QuarantineRange {
  readonly fromTxid: bigint;
  readonly toTxid: bigint;
  /** "diverged": certainly not in the primary's history; "unverifiable": not known to be. */
  readonly verdict: Exclude<HistoryVerdict, "shared">;
}

export type LtxAdmission =
  | { readonly kind: "incremental" }
  | { readonly kind: "snapshot"; readonly quarantine: QuarantineRange | null }
  /** The replica's history holds this very transaction already: its bytes are read and dropped. */
  | { readonly kind: "present" };

/** A transaction of the replica's own history: its TXID range and checksums (from its LTX file). */
export interface OwnLink {
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  readonly preApplyChecksum: bigint;
  readonly postApplyChecksum: bigint;
}

/**
 * Decides whether the LTX file `begin` announces may be applied on top of `replica` (null: the replica
 * does not have the database). Throws ESTREAMTXID or ESTREAMPREAPPLY for an incremental file that does
 * not continue the replica's position.
 *
 * An incremental file at or below the replica's TXID is "present" when `ownLink` finds the replica's
 * own LTX file for exactly that TXID range with the same pre- and post-apply checksums: the same
 * transaction, already in this replica's history. That is how a HALT transaction comes back from the
 * primary to the replica that wrote it (halt-replica.ts commits it locally, then sends it with
 * `POST /tx`; the primary streams it to every replica) — possibly after that replica's next HALT commit.
 */
export function admitLtx(
  begin: LtxBeginFrame,
  replica: Pos | null,
  ownLink: (minTxid: bigint, maxTxid: bigint) => OwnLink | null = () => null,
): LtxAdmission {
  const { db } = begin;
  if (begin.snapshot === null && replica !== null && begin.maxTxid <= replica.txid) {
    const atPosition = begin.maxTxid !== replica.txid || begin.postApplyChecksum === replica.checksum;
    if (atPosition && sameLink(ownLink(begin.minTxid, begin.maxTxid), begin)) return { kind: "present" };
  }
  if (begin.snapshot !== null) {
    const from = firstUnsharedTxid(begin.snapshot);
    if (from === null || replica === null || replica.txid < from)
      return { kind: "snapshot", quarantine: null };
    const verdict = begin.snapshot.verdict === "diverged" ? "diverged" : "unverifiable";
    return { kind: "snapshot", quarantine: { fromTxid: from, toTxid: replica.txid, verdict } };
  }
  const txid = replica?.txid ?? 0n;
  if (begin.minTxid !== txid + 1n) {
    throw new StreamError(
      "ESTREAMTXID",
      `incremental LTX file ${begin.minTxid}-${begin.maxTxid} does not follow the replica's TXID ${txid}`,
      { rule: "TXID continuity", db },
    );
  }
  if (replica === null || begin.preApplyChecksum !== replica.checksum) {
    throw new StreamError(
      "ESTREAMPREAPPLY",
      `incremental LTX file ${begin.minTxid}-${begin.maxTxid} applies to checksum ${hex(begin.preApplyChecksum)}, the replica has ${replica === null ? "no database" : hex(replica.checksum)}`,
      { rule: "pre-apply checksum", db },
    );
  }
  return { kind: "incremental" };
}

function sameLink(link: OwnLink | null, begin: LtxBeginFrame): boolean {
  return (
    link !== null &&
    link.minTxid === begin.minTxid &&
    link.maxTxid === begin.maxTxid &&
    link.preApplyChecksum === begin.preApplyChecksum &&
    link.postApplyChecksum === begin.postApplyChecksum
  );
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
