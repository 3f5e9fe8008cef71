// How two histories of one database relate: where the replica's history last agrees with the
// primary's, and which of the replica's transactions the primary's history does not contain. Pure.
//
// A history is known only through LTX files: a file from TXID a to b says the database's rolling
// checksum was `pre` after TXID a−1 and `post` after TXID b. Those file boundaries (plus each side's
// current position) are the known positions; between boundaries of a compacted file nothing is known.
// Two histories share TXID t when both know their checksum at t and it is the same — the rule the whole
// system uses for positions (the checksum covers every page, so equal checksums mean equal databases).
//
// - common: the highest TXID both sides know with equal checksums. Everything of the replica's up to
//   there is in the primary's history (by content). TXID 0 (the empty database, checksum 0) is known to
//   every history, so there always is one.
// - verdict "shared": common is the replica's own position — nothing of the replica's is missing.
// - verdict "diverged": past common, the two disagree at a TXID both know, or the replica has TXIDs
//   beyond the primary's position: some of its transactions are certainly not in the primary's history.
// - verdict "unverifiable": past common, neither is the case: the primary no longer holds the files that
//   would tell (retention, compaction).
// In the last two cases the replica's TXIDs from `firstUnsharedTxid` (common + 1) to its position are
// the ones to quarantine rather than drop (issue 5).

import { isZeroPos, type Pos } from "../ltx/pos.js";

/** One LTX file of a history: its TXID range and the checksums before and after it. */
export interface ChainLink {
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  readonly preApplyChecksum: bigint;
  readonly postApplyChecksum: bigint;
  /** The lease epoch the file was written under, when recorded: never decreases along a chain. */
  readonly epoch?: bigint;
}

/** A history as one side knows it: its position and the LTX files it still has, ascending. */
export interface KnownHistory {
  readonly pos: Pos;
  readonly links: readonly ChainLink[];
}

export type ChainSide = "replica" | "primary";

/** A history that contradicts itself (two checksums for one TXID, files out of order…). */
export class ChainError extends Error {
  override readonly name = "ChainError";
  readonly code = "ECHAIN";
  constructor(
    readonly side: ChainSide,
    readonly txid: bigint,
    detail: string,
  ) {
    super(`${side} history at TXID ${txid}: ${detail} (ECHAIN)`);
  }
}

export type HistoryComparison =
  | { readonly verdict: "shared"; readonly common: Pos }
  | {
      readonly verdict: "diverged" | "unverifiable";
      readonly common: Pos;
      /** The replica's first TXID not known to be in the primary's history: common TXID + 1. */
      readonly firstUnsharedTxid: bigint;
      /** Diverged only: the lowest TXID past `common` proving it (a disagreement, or primary TXID + 1). */
      readonly divergedAt: bigint | null;
    };

/**
 * Throws ChainError when `history` contradicts itself: files not strictly ascending and disjoint, a
 * file past the position, one TXID given two checksums (adjacent files that disagree on their
 * boundary, the last file and the position), a snapshot (TXID 1) with a non-zero pre-apply checksum,
 * epochs that decrease. One pass over neighbours, no map: a replica's stream request carries up to 256
 * links and every connection checks them, on the event loop that answers the mount — with files
 * strictly ascending and disjoint, a TXID can only be named twice by neighbours.
 */
export function checkChain(history: KnownHistory, side: ChainSide): void {
  const { pos, links } = history;
  if (pos.txid === 0n && !isZeroPos(pos))
    throw new ChainError(side, 0n, "position with TXID 0 has a checksum");
  let previous: ChainLink | null = null;
  for (const link of links) {
    if (link.minTxid < 1n || link.maxTxid < link.minTxid) {
      throw new ChainError(side, link.minTxid, `invalid TXID range ${link.minTxid}-${link.maxTxid}`);
    }
    if (previous !== null && link.minTxid <= previous.maxTxid) {
      throw new ChainError(
        side,
        link.minTxid,
        `file ${link.minTxid}-${link.maxTxid} overlaps or precedes ${previous.minTxid}-${previous.maxTxid}`,
      );
    }
    if (link.maxTxid > pos.txid) {
      throw new ChainError(side, link.maxTxid, `file ends past the position's TXID ${pos.txid}`);
    }
    if (link.minTxid === 1n && link.preApplyChecksum !== 0n) {
      throw new ChainError(side, 1n, "a snapshot (min TXID 1) with a non-zero pre-apply checksum");
    }
    if (previous?.epoch !== undefined && link.epoch !== undefined && link.epoch < previous.epoch) {
      throw new ChainError(
        side,
        link.minTxid,
        `epoch ${link.epoch} after epoch ${previous.epoch}: a stale primary's write`,
      );
    }
    if (
      previous !== null &&
      previous.maxTxid === link.minTxid - 1n &&
      previous.postApplyChecksum !== link.preApplyChecksum
    ) {
      throw new ChainError(
        side,
        previous.maxTxid,
        `pre-apply of file ${link.minTxid}-${link.maxTxid} says checksum ${hex(link.preApplyChecksum)}, ` +
          `an earlier boundary said ${hex(previous.postApplyChecksum)}`,
      );
    }
    previous = link;
  }
  if (previous !== null && previous.maxTxid === pos.txid && previous.postApplyChecksum !== pos.checksum) {
    throw new ChainError(
      side,
      pos.txid,
      `the position says checksum ${hex(pos.checksum)}, an earlier boundary said ${hex(previous.postApplyChecksum)}`,
    );
  }
}

/**
 * Every position `history` knows, TXID → checksum: TXID 0 (checksum 0), each file's boundaries and the
 * current position. Throws ChainError as `checkChain` does.
 */
export function knownPositions(history: KnownHistory, side: ChainSide): Map<bigint, bigint> {
  checkChain(history, side);
  const known = new Map<bigint, bigint>([[0n, 0n]]);
  for (const link of history.links) {
    known.set(link.minTxid - 1n, link.preApplyChecksum);
    known.set(link.maxTxid, link.postApplyChecksum);
  }
  known.set(history.pos.txid, history.pos.checksum);
  return known;
}

/** Compares the replica's history with the primary's (see the header for the meaning of the verdicts). */
export function compareHistories(replica: KnownHistory, primary: KnownHistory): HistoryComparison {
  const replicaKnown = knownPositions(replica, "replica");
  const primaryKnown = knownPositions(primary, "primary");

  let common: Pos = { txid: 0n, checksum: 0n };
  for (const [txid, checksum] of replicaKnown) {
    if (txid > common.txid && primaryKnown.get(txid) === checksum) common = { txid, checksum };
  }
  if (common.txid === replica.pos.txid) return { verdict: "shared", common };

  let divergedAt: bigint | null = null;
  for (const [txid, checksum] of replicaKnown) {
    if (txid <= common.txid) continue;
    const theirs = primaryKnown.get(txid);
    if (theirs !== undefined && theirs !== checksum && (divergedAt === null || txid < divergedAt))
      divergedAt = txid;
  }
  if (replica.pos.txid > primary.pos.txid) {
    const beyond = primary.pos.txid + 1n;
    if (divergedAt === null || beyond < divergedAt) divergedAt = beyond;
  }
  return {
    verdict: divergedAt === null ? "unverifiable" : "diverged",
    common,
    firstUnsharedTxid: common.txid + 1n,
    divergedAt,
  };
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
