// planCatchUp over every small scenario (primary and replica histories of a few TXIDs, every way the
// primary's files may be cut and thinned by retention, every shared prefix) against a naive reference
// that decides from the true histories and the set of files; plus LiteFS's cases by name.

import assert from "node:assert/strict";
import { test } from "node:test";

import { planCatchUp, type CatchUpPlan } from "../../src/store/catchup-plan.js";
import { ChainError, compareHistories } from "../../src/store/divergence.js";
import {
  FLAG,
  fileLists,
  linksOf,
  posOf,
  primaryTruth,
  replicaTruth,
  type Range,
  type Truth,
  type TruthLink,
} from "./history-kit.js";

type Expected = { kind: "none" } | { kind: "stream"; ranges: Range[] } | { kind: "snapshot"; reason: string };

/** The naive decision: from the true checksums and which TXID ranges the primary has files for. */
function reference(primary: Truth, files: Range[], replica: Truth | null): Expected {
  const n = primary.length - 1;
  const m = replica === null ? 0 : replica.length - 1;
  if (replica === null || m === 0) return n === 0 ? { kind: "none" } : { kind: "snapshot", reason: "new" };
  if (m > n) return { kind: "snapshot", reason: "replica-ahead" };
  if (m === n)
    return replica[m] === primary[n] ? { kind: "none" } : { kind: "snapshot", reason: "checksum-mismatch" };
  // The replica needs TXIDs m+1..n, applied on top of the primary's state after m.
  if (!files.some((f) => f.min === m + 1)) return { kind: "snapshot", reason: "files-unavailable" };
  if (replica[m] !== primary[m]) return { kind: "snapshot", reason: "pre-apply-mismatch" };
  const needed = files.filter((f) => f.min > m);
  const tiles = needed.every((f, i) => f.min === (i === 0 ? m + 1 : needed[i - 1].max + 1));
  if (!tiles || needed[needed.length - 1].max !== n) return { kind: "snapshot", reason: "files-unavailable" };
  return { kind: "stream", ranges: needed };
}

function summarize(plan: CatchUpPlan<TruthLink>): Expected {
  if (plan.kind === "stream") return { kind: "stream", ranges: plan.files.map((f) => f.range) };
  if (plan.kind === "snapshot") return { kind: "snapshot", reason: plan.reason };
  return plan;
}

test("every small scenario: the planner agrees with the naive reference", () => {
  let cases = 0;
  const seen = new Map<string, number>();
  for (let n = 0; n <= 5; n++) {
    const primary = primaryTruth(n);
    for (const files of fileLists(n)) {
      const primaryFiles = linksOf(primary, files);
      const replicas: (Truth | null)[] = [null];
      for (let m = 0; m <= 6; m++) {
        for (let shared = 0; shared <= Math.min(m, n); shared++)
          replicas.push(replicaTruth(primary, m, shared));
      }
      for (const replica of replicas) {
        // The replica reports either nothing or its last two TXIDs as files.
        const m = replica === null ? 0 : replica.length - 1;
        const reports: Range[][] = [[]];
        if (m >= 2)
          reports.push([
            { min: m - 1, max: m - 1 },
            { min: m, max: m },
          ]);
        for (const reported of reports) {
          const plan = planCatchUp({
            replica: replica === null ? null : posOf(replica),
            replicaLinks: replica === null ? [] : linksOf(replica, reported),
            primary: posOf(primary),
            primaryFiles,
          });
          const want = reference(primary, files, replica);
          assert.deepEqual(
            summarize(plan),
            want,
            `n=${n} files=${JSON.stringify(files)} replica=${replica?.length}`,
          );
          const key = want.kind === "snapshot" ? want.reason : want.kind;
          seen.set(key, (seen.get(key) ?? 0) + 1);
          if (plan.kind === "stream") {
            // Applying the files takes the replica exactly to the primary's position.
            assert.equal(plan.files[0].preApplyChecksum, replica![m]);
            assert.equal(plan.files[plan.files.length - 1].postApplyChecksum, primary[n]);
          }
          if (plan.kind === "snapshot") {
            if (plan.reason === "new") assert.equal(plan.history, null);
            else {
              assert.deepEqual(
                plan.history,
                compareHistories(
                  { pos: posOf(replica!), links: linksOf(replica!, reported) },
                  { pos: posOf(primary), links: primaryFiles },
                ),
              );
              if (plan.reason !== "files-unavailable") assert.equal(plan.history.verdict, "diverged");
            }
          }
          cases++;
        }
      }
    }
  }
  for (const kind of [
    "none",
    "stream",
    "new",
    "replica-ahead",
    "checksum-mismatch",
    "pre-apply-mismatch",
    "files-unavailable",
  ]) {
    assert.ok((seen.get(kind) ?? 0) > 0, `scenario kind ${kind} was exercised`);
  }
  assert.ok(cases > 10000, `${cases} cases`);
});

// ---- LiteFS's cases by name ----

const primary = primaryTruth(10);
const everyTxid = linksOf(
  primary,
  Array.from({ length: 10 }, (_, i) => ({ min: i + 1, max: i + 1 })),
);

test("a replica that is behind gets the missing files in order", () => {
  const replica = replicaTruth(primary, 7, 7);
  const plan = planCatchUp({ replica: posOf(replica), primary: posOf(primary), primaryFiles: everyTxid });
  assert.equal(plan.kind, "stream");
  assert.deepEqual(plan.kind === "stream" && plan.files.map((f) => f.minTxid), [8n, 9n, 10n]);
});

test("a replica in step gets nothing; a new replica gets a snapshot; so does one whose files are gone", () => {
  assert.deepEqual(
    planCatchUp({ replica: posOf(primary), primary: posOf(primary), primaryFiles: everyTxid }),
    { kind: "none" },
  );
  assert.deepEqual(planCatchUp({ replica: null, primary: { txid: 0n, checksum: 0n }, primaryFiles: [] }), {
    kind: "none",
  });
  const fresh = planCatchUp({ replica: null, primary: posOf(primary), primaryFiles: everyTxid });
  assert.equal(fresh.kind === "snapshot" && fresh.reason, "new");
  const retained = everyTxid.slice(6); // retention removed TXIDs 1..6
  const behind = planCatchUp({
    replica: posOf(replicaTruth(primary, 3, 3)),
    primary: posOf(primary),
    primaryFiles: retained,
  });
  assert.equal(behind.kind === "snapshot" && behind.reason, "files-unavailable");
  assert.equal(behind.kind === "snapshot" && behind.history?.verdict, "unverifiable");
});

test("a replica that refused one of the files it would be streamed gets a snapshot naming that file", () => {
  const replica = posOf(replicaTruth(primary, 7, 7));
  const files = linksOf(primary, [
    ...Array.from({ length: 7 }, (_, i) => ({ min: i + 1, max: i + 1 })),
    { min: 8, max: 9 },
    { min: 10, max: 10 },
  ]);
  for (const refused of [8n, 9n]) {
    const plan = planCatchUp({
      replica,
      primary: posOf(primary),
      primaryFiles: files,
      replicaRefused: refused,
    });
    assert.equal(plan.kind, "snapshot");
    if (plan.kind !== "snapshot") return;
    assert.equal(plan.reason, "files-unavailable");
    assert.deepEqual([plan.refused?.minTxid, plan.refused?.maxTxid], [8n, 9n]);
    assert.equal(plan.history?.verdict, "shared", "nothing of the replica's is to be quarantined");
    assert.match(plan.detail, /refused the primary's LTX file of TXIDs 8-9/);
  }
  // A refused file the plan does not stream (the replica is past it, or it is not the primary's):
  // the plan is what it would have been.
  for (const refused of [3n, 7n, 11n]) {
    const plan = planCatchUp({
      replica,
      primary: posOf(primary),
      primaryFiles: files,
      replicaRefused: refused,
    });
    assert.deepEqual(
      plan.kind === "stream" && plan.files.map((f) => f.minTxid),
      [8n, 10n],
      `refused ${refused}`,
    );
  }
  const inStep = planCatchUp({
    replica: posOf(primary),
    primary: posOf(primary),
    primaryFiles: files,
    replicaRefused: 10n,
  });
  assert.deepEqual(inStep, { kind: "none" });
});

test("a former primary with transactions the new primary never saw: their TXIDs are reported for quarantine", () => {
  // Old primary committed 9..12 on top of the shared 1..8; the new primary went on from 8 to 10.
  const former = replicaTruth(primary, 12, 8);
  const recent = linksOf(
    former,
    [7, 8, 9, 10, 11, 12].map((t) => ({ min: t, max: t })),
  );
  const plan = planCatchUp({
    replica: posOf(former),
    replicaLinks: recent,
    primary: posOf(primary),
    primaryFiles: everyTxid,
  });
  assert.equal(plan.kind, "snapshot");
  if (plan.kind !== "snapshot") return;
  assert.equal(plan.reason, "replica-ahead");
  assert.deepEqual(plan.history, {
    verdict: "diverged",
    common: { txid: 8n, checksum: primary[8] },
    firstUnsharedTxid: 9n,
    divergedAt: 9n,
  });
  // Same TXID, other checksum; and behind with a different checksum at its own TXID.
  const sameTxid = replicaTruth(primary, 10, 8);
  const p1 = planCatchUp({ replica: posOf(sameTxid), primary: posOf(primary), primaryFiles: everyTxid });
  assert.equal(p1.kind === "snapshot" && p1.reason, "checksum-mismatch");
  assert.equal(p1.kind === "snapshot" && p1.history?.verdict, "diverged");
  const behindDiverged = replicaTruth(primary, 9, 8);
  const p2 = planCatchUp({
    replica: posOf(behindDiverged),
    replicaLinks: linksOf(behindDiverged, [{ min: 9, max: 9 }]),
    primary: posOf(primary),
    primaryFiles: everyTxid,
  });
  assert.equal(p2.kind === "snapshot" && p2.reason, "pre-apply-mismatch");
  assert.equal(
    p2.kind === "snapshot" && p2.history?.verdict === "diverged" && p2.history.firstUnsharedTxid,
    9n,
  );
  // Without its files the replica can only be told that nothing past the empty database is known shared.
  const blind = planCatchUp({
    replica: posOf(behindDiverged),
    primary: posOf(primary),
    primaryFiles: everyTxid,
  });
  assert.equal(
    blind.kind === "snapshot" && blind.history?.verdict === "diverged" && blind.history.firstUnsharedTxid,
    1n,
  );
});

test("a primary whose own files contradict each other or its position is a ChainError, not a guess", () => {
  const broken = everyTxid.map((f) => (f.minTxid === 6n ? { ...f, preApplyChecksum: FLAG | 99n } : f));
  assert.throws(
    () =>
      planCatchUp({
        replica: posOf(replicaTruth(primary, 2, 2)),
        primary: posOf(primary),
        primaryFiles: broken,
      }),
    (err) => err instanceof ChainError && err.side === "primary" && err.txid === 5n,
  );
  assert.throws(
    () =>
      planCatchUp({ replica: null, primary: { txid: 10n, checksum: FLAG | 1n }, primaryFiles: everyTxid }),
    (err) => err instanceof ChainError && err.txid === 10n,
  );
  assert.throws(
    () =>
      planCatchUp({
        replica: { txid: 0n, checksum: FLAG },
        primary: posOf(primary),
        primaryFiles: everyTxid,
      }),
    (err) => err instanceof ChainError && err.side === "replica",
  );
});
