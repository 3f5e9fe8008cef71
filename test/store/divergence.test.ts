// compareHistories against a brute-force reference over every small pair of histories (every cut of
// both into LTX files, every subset of those files kept), random larger ones with histories that
// reconverge, and the truth: what it calls shared is shared, what it calls diverged has diverged.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";

import {
  ChainError,
  checkChain,
  compareHistories,
  knownPositions,
  type HistoryComparison,
} from "../../src/store/divergence.js";
import {
  compositions,
  FLAG,
  fileLists,
  knownTxids,
  linksOf,
  posOf,
  primaryTruth,
  replicaTruth,
  type Range,
  type Truth,
} from "./history-kit.js";

/** The definition, by brute force over TXIDs and the true checksums. */
function reference(
  replica: Truth,
  replicaFiles: Range[],
  primary: Truth,
  primaryFiles: Range[],
): HistoryComparison {
  const m = replica.length - 1;
  const n = primary.length - 1;
  const kr = knownTxids(replica, replicaFiles);
  const kp = knownTxids(primary, primaryFiles);
  const both = [...kr].filter((t) => kp.has(t)).sort((a, b) => a - b);
  let common = 0;
  for (const t of both) if (replica[t] === primary[t]) common = t;
  const commonPos = { txid: BigInt(common), checksum: replica[common] };
  if (common === m) return { verdict: "shared", common: commonPos };
  const witnesses = both.filter((t) => t > common && replica[t] !== primary[t]);
  if (m > n) witnesses.push(n + 1);
  const divergedAt = witnesses.length === 0 ? null : BigInt(Math.min(...witnesses));
  return {
    verdict: divergedAt === null ? "unverifiable" : "diverged",
    common: commonPos,
    firstUnsharedTxid: BigInt(common + 1),
    divergedAt,
  };
}

function compare(
  replica: Truth,
  replicaFiles: Range[],
  primary: Truth,
  primaryFiles: Range[],
): HistoryComparison {
  return compareHistories(
    { pos: posOf(replica), links: linksOf(replica, replicaFiles) },
    { pos: posOf(primary), links: linksOf(primary, primaryFiles) },
  );
}

/** What must hold whatever the files: judged by the true histories. */
function checkAgainstTruth(result: HistoryComparison, replica: Truth, primary: Truth): void {
  const m = replica.length - 1;
  const n = primary.length - 1;
  const common = Number(result.common.txid);
  assert.ok(common <= Math.min(m, n));
  assert.equal(replica[common], primary[common], "the common position really is common");
  if (result.verdict === "shared") {
    assert.ok(
      m <= n && replica[m] === primary[m],
      "shared: the replica's position is on the primary's history",
    );
  } else {
    assert.equal(result.firstUnsharedTxid, result.common.txid + 1n);
    if (result.verdict === "diverged") {
      const at = Number(result.divergedAt);
      assert.ok(at > common && (at > n || replica[at] !== primary[at]), "diverged: the witness is real");
    }
  }
}

test("every small pair of histories: same answer as the brute-force reference, and true", () => {
  let cases = 0;
  for (let n = 0; n <= 4; n++) {
    const primary = primaryTruth(n);
    const primaryLists = fileLists(n);
    for (let m = 0; m <= 5; m++) {
      const replicaLists = fileLists(m);
      for (let shared = 0; shared <= Math.min(m, n); shared++) {
        const replica = replicaTruth(primary, m, shared);
        for (const pf of primaryLists) {
          for (const rf of replicaLists) {
            const got = compare(replica, rf, primary, pf);
            assert.deepEqual(got, reference(replica, rf, primary, pf), `n=${n} m=${m} shared=${shared}`);
            checkAgainstTruth(got, replica, primary);
            cases++;
          }
        }
      }
    }
  }
  assert.ok(cases > 50000, `${cases} cases`);
});

test("with every TXID in its own file on both sides, the answer is exactly the truth", () => {
  for (let n = 0; n <= 8; n++) {
    for (let m = 0; m <= 9; m++) {
      for (let shared = 0; shared <= Math.min(m, n); shared++) {
        const primary = primaryTruth(n);
        const replica = replicaTruth(primary, m, shared);
        const singles = (k: number): Range[] =>
          Array.from({ length: k }, (_, i) => ({ min: i + 1, max: i + 1 }));
        const got = compare(replica, singles(m), primary, singles(n));
        assert.equal(got.common.txid, BigInt(shared));
        assert.equal(got.verdict, shared === m ? "shared" : "diverged");
      }
    }
  }
});

test("random larger histories, with reconvergence and retention (fast-check)", () => {
  const cut = (lo: number, hi: number, cuts: number[], keep: boolean[]): Range[] => {
    const points = [...new Set(cuts.filter((c) => c >= lo && c < hi))].sort((a, b) => a - b);
    const ranges: Range[] = [];
    let start = lo;
    for (const point of [...points, hi]) {
      if (start <= point) ranges.push({ min: start, max: point });
      start = point + 1;
    }
    return ranges.filter((_, i) => keep[i % keep.length] ?? true);
  };
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 0, max: 60 }),
      fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 30 }),
      fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 30 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 1, max: 61 }),
      (n, m, sharedRaw, reconverge, primaryCuts, replicaCuts, keep, replicaFrom) => {
        const primary = primaryTruth(n);
        const replica = replicaTruth(primary, m, Math.min(sharedRaw, m, n), reconverge);
        const pf = cut(1, n, primaryCuts, keep);
        const rf = cut(Math.min(replicaFrom, m + 1), m, replicaCuts, [true]);
        const got = compare(replica, rf, primary, pf);
        assert.deepEqual(got, reference(replica, rf, primary, pf));
        checkAgainstTruth(got, replica, primary);
      },
    ),
    { numRuns: 2000 },
  );
});

test("a history that contradicts itself is a ChainError naming the side and TXID", () => {
  const link = (min: bigint, max: bigint, pre: bigint, post: bigint, epoch?: bigint) => ({
    minTxid: min,
    maxTxid: max,
    preApplyChecksum: pre,
    postApplyChecksum: post,
    epoch,
  });
  const pos = { txid: 5n, checksum: FLAG | 5n };
  const bad: [string, Parameters<typeof knownPositions>[0], bigint][] = [
    ["TXID 0 with a checksum", { pos: { txid: 0n, checksum: 1n }, links: [] }, 0n],
    ["range 0-", { pos, links: [link(0n, 1n, 0n, FLAG)] }, 0n],
    ["max < min", { pos, links: [link(3n, 2n, FLAG, FLAG)] }, 3n],
    ["overlap", { pos, links: [link(1n, 3n, 0n, FLAG | 3n), link(3n, 5n, FLAG | 2n, FLAG | 5n)] }, 3n],
    ["out of order", { pos, links: [link(4n, 5n, FLAG | 3n, FLAG | 5n), link(1n, 2n, 0n, FLAG | 2n)] }, 1n],
    ["past the position", { pos, links: [link(5n, 6n, FLAG | 4n, FLAG | 6n)] }, 6n],
    ["snapshot with pre-apply", { pos, links: [link(1n, 5n, FLAG, FLAG | 5n)] }, 1n],
    [
      "boundary disagrees",
      { pos, links: [link(1n, 2n, 0n, FLAG | 2n), link(3n, 5n, FLAG | 9n, FLAG | 5n)] },
      2n,
    ],
    ["last file disagrees with position", { pos, links: [link(4n, 5n, FLAG | 3n, FLAG | 9n)] }, 5n],
    [
      "epoch goes down",
      { pos, links: [link(1n, 2n, 0n, FLAG | 2n, 3n), link(3n, 5n, FLAG | 2n, FLAG | 5n, 2n)] },
      3n,
    ],
  ];
  for (const [name, history, txid] of bad) {
    assert.throws(
      () => knownPositions(history, "primary"),
      (err) =>
        err instanceof ChainError && err.code === "ECHAIN" && err.side === "primary" && err.txid === txid,
      name,
    );
  }
  // Epochs that rise or are missing are fine; gaps between files are fine.
  const ok = knownPositions(
    {
      pos,
      links: [
        link(1n, 1n, 0n, FLAG | 1n, 1n),
        link(3n, 3n, FLAG | 2n, FLAG | 3n),
        link(4n, 5n, FLAG | 3n, FLAG | 5n, 4n),
      ],
    },
    "replica",
  );
  assert.deepEqual(
    [...ok.keys()].sort((a, b) => Number(a - b)),
    [0n, 1n, 2n, 3n, 5n],
  );
});

/**
 * The rules as first written (session 2's knownPositions): learn every boundary into a map and refuse a
 * TXID given two checksums — the reference that checkChain's one pass over neighbours must agree with.
 */
function chainProblemByMap(history: Parameters<typeof checkChain>[0]): { txid: bigint } | null {
  const { pos, links } = history;
  if (pos.txid === 0n && pos.checksum !== 0n) return { txid: 0n };
  const known = new Map<bigint, bigint>([[0n, 0n]]);
  const learn = (txid: bigint, checksum: bigint): boolean => {
    const seen = known.get(txid);
    known.set(txid, checksum);
    return seen === undefined || seen === checksum;
  };
  let previous: (typeof links)[number] | null = null;
  for (const l of links) {
    if (l.minTxid < 1n || l.maxTxid < l.minTxid) return { txid: l.minTxid };
    if (previous !== null && l.minTxid <= previous.maxTxid) return { txid: l.minTxid };
    if (l.maxTxid > pos.txid) return { txid: l.maxTxid };
    if (l.minTxid === 1n && l.preApplyChecksum !== 0n) return { txid: 1n };
    if (previous?.epoch !== undefined && l.epoch !== undefined && l.epoch < previous.epoch) {
      return { txid: l.minTxid };
    }
    if (!learn(l.minTxid - 1n, l.preApplyChecksum)) return { txid: l.minTxid - 1n };
    if (!learn(l.maxTxid, l.postApplyChecksum)) return { txid: l.maxTxid };
    previous = l;
  }
  return learn(pos.txid, pos.checksum) ? null : { txid: pos.txid };
}

test("checkChain refuses exactly what the map of every boundary refuses, at the same TXID", () => {
  // Small TXIDs and checksums, so that overlaps, shared boundaries and disagreements are frequent.
  const small = fc.bigInt({ min: 0n, max: 6n });
  const linkArb = fc.record({
    minTxid: small,
    maxTxid: small,
    preApplyChecksum: fc.bigInt({ min: 0n, max: 2n }),
    postApplyChecksum: fc.bigInt({ min: 0n, max: 2n }),
    epoch: fc.option(fc.bigInt({ min: 1n, max: 3n }), { nil: undefined }),
  });
  const historyArb = fc.record({
    pos: fc.record({ txid: small, checksum: fc.bigInt({ min: 0n, max: 2n }) }),
    links: fc.array(linkArb, { maxLength: 5 }),
  });
  let refused = 0;
  fc.assert(
    fc.property(historyArb, (history) => {
      const expected = chainProblemByMap(history);
      let got: { txid: bigint } | null = null;
      try {
        checkChain(history, "replica");
      } catch (err) {
        assert.ok(err instanceof ChainError && err.side === "replica", String(err));
        got = { txid: err.txid };
      }
      assert.deepEqual(got, expected);
      if (got !== null) refused++;
    }),
    { numRuns: 20_000 },
  );
  assert.ok(
    refused > 1000 && refused < 19_000,
    `${refused} of 20000 refused: the generator tests both sides`,
  );
});

test("compositions and file lists enumerate what they claim", () => {
  assert.equal(compositions(1, 4).length, 8);
  assert.deepEqual(compositions(1, 0), [[]]);
  assert.equal(fileLists(4).length, 54);
  assert.equal(fileLists(0).length, 1);
});
