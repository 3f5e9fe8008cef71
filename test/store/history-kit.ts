// Small database histories for the catch-up planner and divergence tests. A history is the truth — the
// checksum after every TXID — and a side knows it only through the LTX files it kept. Checksums are
// made up (the code under test only compares them); equal numbers stand for equal database contents.

import type { ChainLink } from "../../src/store/divergence.js";

export const FLAG = 1n << 63n;

/** checksums[t] = the database's checksum after TXID t; checksums[0] = 0 (the empty database). */
export type Truth = readonly bigint[];

export function primaryTruth(n: number): Truth {
  return Array.from({ length: n + 1 }, (_, t) => (t === 0 ? 0n : FLAG | BigInt(1000 + t)));
}

/**
 * A replica's truth of `m` TXIDs sharing the primary's first `shared` ones; after that its own, except at
 * the TXIDs in `reconverge`, where its content happens to equal the primary's again.
 */
export function replicaTruth(
  primary: Truth,
  m: number,
  shared: number,
  reconverge: readonly number[] = [],
): Truth {
  return Array.from({ length: m + 1 }, (_, t) =>
    t <= shared || (reconverge.includes(t) && t < primary.length) ? primary[t] : FLAG | BigInt(5000 + t),
  );
}

export interface Range {
  readonly min: number;
  readonly max: number;
}

/** Every way to cut [lo..hi] into consecutive ranges (one empty composition when lo > hi). */
export function compositions(lo: number, hi: number): Range[][] {
  if (lo > hi) return [[]];
  const out: Range[][] = [];
  for (let end = lo; end <= hi; end++) {
    for (const rest of compositions(end + 1, hi)) out.push([{ min: lo, max: end }, ...rest]);
  }
  return out;
}

/** Every subset (order kept) of every composition of [1..n]: all the file lists retention could leave, and more. */
export function fileLists(n: number): Range[][] {
  const out: Range[][] = [];
  for (const composition of compositions(1, n)) {
    for (let mask = 0; mask < 1 << composition.length; mask++) {
      out.push(composition.filter((_, i) => (mask & (1 << i)) !== 0));
    }
  }
  return out;
}

export interface TruthLink extends ChainLink {
  readonly range: Range;
}

export function linksOf(truth: Truth, ranges: readonly Range[]): TruthLink[] {
  return ranges.map((range) => ({
    range,
    minTxid: BigInt(range.min),
    maxTxid: BigInt(range.max),
    preApplyChecksum: truth[range.min - 1],
    postApplyChecksum: truth[range.max],
  }));
}

export function posOf(truth: Truth): { txid: bigint; checksum: bigint } {
  return { txid: BigInt(truth.length - 1), checksum: truth[truth.length - 1] };
}

/** The TXIDs a side knows the checksum at: 0, its file boundaries, its own position. */
export function knownTxids(truth: Truth, ranges: readonly Range[]): Set<number> {
  const known = new Set([0, truth.length - 1]);
  for (const { min, max } of ranges) {
    known.add(min - 1);
    known.add(max);
  }
  return known;
}
