// What the primary sends a replica for one database when its stream starts: nothing, the LTX files it
// is missing (in order), or a snapshot — and why. Pure: positions and file lists in, a plan out; the
// stream (src/api) does the I/O. The rules are LiteFS's (litefs.md, "Node-to-node API"):
//
//   replica has no db / TXID 0        → snapshot "new" (nothing when the primary is at TXID 0 too)
//   replica TXID > primary TXID       → snapshot "replica-ahead"
//   same TXID, same checksum          → nothing
//   same TXID, other checksum         → snapshot "checksum-mismatch"
//   no file starts at replica TXID+1  → snapshot "files-unavailable" (retention removed it, or it lies
//                                       inside a compacted file)
//   that file's pre-apply ≠ replica's → snapshot "pre-apply-mismatch"
//   otherwise                         → stream that file and its successors up to the primary's TXID
//                                       ("files-unavailable" if they do not reach it without a gap)
//
// Beyond LiteFS: a replica that refused one of those files twice (it did not decode or apply there)
// asks for a snapshot instead (`replicaRefused`): then a plan that would stream that file is a
// snapshot "files-unavailable" naming it — the primary's file cannot serve that replica.
//
// Beyond LiteFS: every snapshot that replaces a history the replica has (all reasons but "new") carries
// the comparison of the two histories (divergence.ts), so the replica can quarantine the transactions
// the primary does not have instead of losing them silently.

import assert from "node:assert/strict";

import type { Pos } from "../ltx/pos.js";
import { checkChain, compareHistories, type ChainLink, type HistoryComparison } from "./divergence.js";

export type SnapshotReason =
  "new" | "replica-ahead" | "checksum-mismatch" | "pre-apply-mismatch" | "files-unavailable";

export interface CatchUpInput<F extends ChainLink> {
  /** The replica's position, or null when it does not have the database. */
  readonly replica: Pos | null;
  /** The replica's most recent LTX files, ascending, as it reported them (may be empty). */
  readonly replicaLinks?: readonly ChainLink[];
  /** The primary's current position. */
  readonly primary: Pos;
  /** Every LTX file the primary still has for the database, ascending by TXID. */
  readonly primaryFiles: readonly F[];
  /** The first TXID of a file of the primary's that the replica refused and wants a snapshot for. */
  readonly replicaRefused?: bigint;
}

export type CatchUpPlan<F extends ChainLink> =
  | { readonly kind: "none" }
  | { readonly kind: "stream"; readonly files: readonly F[] }
  | {
      readonly kind: "snapshot";
      readonly reason: SnapshotReason;
      /** One sentence for the log: what was compared with what. */
      readonly detail: string;
      /** How the replica's history relates to the primary's; null for "new" (it has none). */
      readonly history: HistoryComparison | null;
      /** The file the replica refused, which the plan would otherwise have streamed. */
      readonly refused?: F;
    };

/**
 * Decides the catch-up of one database. Throws ChainError (ECHAIN) when either side's files contradict
 * themselves or their position — the primary's is a bug to fix, not a reason to guess.
 */
export function planCatchUp<F extends ChainLink>(input: CatchUpInput<F>): CatchUpPlan<F> {
  const { replica, primary, primaryFiles } = input;
  const primaryHistory = { pos: primary, links: primaryFiles };
  checkChain(primaryHistory, "primary");
  const replicaHistory = replica === null ? null : { pos: replica, links: input.replicaLinks ?? [] };
  if (replicaHistory !== null) checkChain(replicaHistory, "replica");

  if (replica === null || replica.txid === 0n) {
    if (primary.txid === 0n) return { kind: "none" };
    return {
      kind: "snapshot",
      reason: "new",
      detail: `replica has no transactions, primary is at TXID ${primary.txid}`,
      history: null,
    };
  }
  const snapshot = (reason: SnapshotReason, detail: string, refused?: F): CatchUpPlan<F> => {
    const history = compareHistories(replicaHistory!, primaryHistory);
    if (reason !== "files-unavailable") {
      assert.equal(history.verdict, "diverged", `snapshot reason ${reason} must find a diverged history`);
    }
    return refused === undefined
      ? { kind: "snapshot", reason, detail, history }
      : { kind: "snapshot", reason, detail, history, refused };
  };

  if (replica.txid > primary.txid) {
    return snapshot("replica-ahead", `replica TXID ${replica.txid} is beyond the primary's ${primary.txid}`);
  }
  if (replica.txid === primary.txid) {
    if (replica.checksum === primary.checksum) return { kind: "none" };
    return snapshot(
      "checksum-mismatch",
      `both at TXID ${replica.txid}, checksums ${hex(replica.checksum)} (replica) and ${hex(primary.checksum)} (primary)`,
    );
  }

  const first = primaryFiles.findIndex((file) => file.minTxid === replica.txid + 1n);
  if (first < 0) {
    return snapshot("files-unavailable", `the primary has no LTX file starting at TXID ${replica.txid + 1n}`);
  }
  if (primaryFiles[first].preApplyChecksum !== replica.checksum) {
    return snapshot(
      "pre-apply-mismatch",
      `the file at TXID ${replica.txid + 1n} applies to checksum ${hex(primaryFiles[first].preApplyChecksum)}, the replica has ${hex(replica.checksum)}`,
    );
  }
  let last = first;
  while (primaryFiles[last].maxTxid < primary.txid) {
    const next = primaryFiles[last + 1];
    if (next === undefined || next.minTxid !== primaryFiles[last].maxTxid + 1n) {
      return snapshot(
        "files-unavailable",
        `the primary's LTX files stop at TXID ${primaryFiles[last].maxTxid} before its position ${primary.txid}`,
      );
    }
    last++;
  }
  const files = primaryFiles.slice(first, last + 1);
  // checkChain made these hold: contiguous files agree on each boundary, the last ends on the position.
  assert.equal(files[files.length - 1].postApplyChecksum, primary.checksum);
  const refused = input.replicaRefused;
  const refusedFile =
    refused === undefined ? undefined : files.find((f) => f.minTxid <= refused && refused <= f.maxTxid);
  if (refusedFile !== undefined) {
    const span = `${refusedFile.minTxid}-${refusedFile.maxTxid}`;
    const detail = `the replica refused the primary's LTX file of TXIDs ${span} and asked for a snapshot`;
    return snapshot("files-unavailable", detail, refusedFile);
  }
  return { kind: "stream", files };
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
