// The chaos suite's short run (etcd and 3 candidate nodes, a few seeded faults, the checker must pass;
// the seed is printed and `CHAOS_SEED=<seed>` replays it), and the checker's self-tests: fabricated histories
// that break one rule each, to show the checker can fail.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";

import { mountSupport } from "../support/small-disk.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { checkChaos, formatCheckReport, type ChaosCheckInput } from "./checker.js";
import {
  writeAcksDatabase,
  writeFabricatedChain,
  writeFabricatedSnapshot,
  writeFabricatedTx,
} from "./fabricated-history.js";
import {
  chaosSeed,
  formatChaosRun,
  longestGap,
  runChaos,
  type ChaosRunOptions,
  type ChaosRunResult,
} from "./harness.js";
import { PLANNED_KINDS } from "./chaos-faults.js";

const DB = "chaos.db";
/**
 * The short run's default fault schedule: kill -9 of n1 (the first primary: a failover), freeze of n1,
 * kill -9 of n3, partition of n3, full disk, slow disk — every kind; the disk faults come last, so no
 * failover follows a disk fault that left a candidate behind (see docs/reliability.md, finding 4).
 */
const SUITE_SEED = 226;
/** The planned-moves run's schedule: a handoff, then SIGTERM of the primary (then more of both). */
const PLANNED_SEED = 87;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);

/**
 * The checker's input for fabricated nodes n1.. in `dirs` (n1 the primary), each with a SQL database
 * holding acks 1..3, acknowledged through n1.
 */
async function checkInput(
  dirs: readonly string[],
  options: { allowFailoverReuse?: boolean; requireConverged?: boolean } = {},
): Promise<ChaosCheckInput> {
  for (const dir of dirs) await writeAcksDatabase(path.join(dir, "sql.db"), [1, 2, 3]);
  return {
    seed: 42,
    db: DB,
    nodes: dirs.map((dir, i) => ({ name: `n${i + 1}`, dataDir: dir, sqlPath: path.join(dir, "sql.db") })),
    primary: "n1",
    acked: [1, 2, 3].map((id) => ({ id, ackedAtMs: T0 + id * 1000, via: "n1" })),
    asyncWindows: [],
    windowSlackMs: 2_000,
    allowFailoverReuse: options.allowFailoverReuse ?? false,
    requireConverged: options.requireConverged ?? false,
  };
}

describe("chaos checker self-test (fabricated histories)", () => {
  /** Three nodes: n1 primary (TXIDs 1..6 by node 1), n2 a full copy, n3 a prefix (1..4). */
  async function goodCluster(root: string): Promise<{ input: ChaosCheckInput; sums: Map<bigint, bigint> }> {
    const dirs = ["n1", "n2", "n3"].map((n) => path.join(root, n));
    const sums = writeFabricatedChain(dirs[0], DB, { from: 1n, to: 6n, nodeId: 1n, startMs: T0 });
    writeFabricatedChain(dirs[1], DB, { from: 1n, to: 6n, nodeId: 1n, startMs: T0 });
    writeFabricatedChain(dirs[2], DB, { from: 1n, to: 4n, nodeId: 1n, startMs: T0 });
    return { input: await checkInput(dirs), sums };
  }

  test("a consistent history passes (so the failures below are the checker's doing)", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input } = await goodCluster(root);
    const report = await checkChaos(input);
    assert.ok(report.ok, formatCheckReport(report));
    assert.equal(report.positions.n3, "0000000000000004");
  });

  test("a TXID committed by two nodes fails", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input, sums } = await goodCluster(root);
    // n3 (at TXID 4) commits TXIDs 5..6 itself, as a second primary would.
    writeFabricatedChain(path.join(root, "n3"), DB, {
      from: 5n,
      to: 6n,
      nodeId: 3n,
      startMs: T0 + 4500,
      preApply: sums.get(4n),
      salt: 3n,
    });
    const report = await checkChaos(input);
    assert.equal(report.ok, false);
    assert.match(report.violations.join("\n"), /TXID 0000000000000005 committed by 2 nodes/);
    assert.match(report.violations.join("\n"), /not a prefix/);
    // Even with failover reuse allowed: the loser's files are live, not quarantined.
    const again = await checkChaos({ ...input, allowFailoverReuse: true });
    assert.match(again.violations.join("\n"), /is live, not quarantined/);
  });

  test("a replica that is not a prefix of the primary's history fails", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input, sums } = await goodCluster(root);
    const n3 = path.join(root, "n3");
    fs.rmSync(path.join(n3, "dbs", DB, "ltx"), { recursive: true });
    writeFabricatedChain(n3, DB, { from: 1n, to: 2n, nodeId: 1n, startMs: T0 });
    // Same node ID, same TXIDs, other contents from TXID 3 on.
    writeFabricatedChain(n3, DB, {
      from: 3n,
      to: 4n,
      nodeId: 1n,
      startMs: T0 + 2000,
      preApply: sums.get(2n),
      salt: 9n,
    });
    const report = await checkChaos(input);
    assert.equal(report.ok, false);
    assert.match(
      report.violations.join("\n"),
      /n3:0000000000000003-0000000000000003\.ltx: post-apply checksum .*not a prefix/,
    );
  });

  test("a broken chain and an unconverged replica fail", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input } = await goodCluster(root);
    fs.rmSync(path.join(root, "n2", "dbs", DB, "ltx", "0000000000000003-0000000000000003.ltx"));
    const report = await checkChaos({ ...input, requireConverged: true });
    assert.match(report.violations.join("\n"), /n2: live chain has a gap before/);
    assert.match(
      report.violations.join("\n"),
      /n3: at TXID 0000000000000004, the reference n1 at 0000000000000006 \(not converged\)/,
    );
  });

  test("failover reuse: a quarantined branch before the new tenure is excused, an overlapping one is split brain", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input, sums } = await goodCluster(root);
    // n2 was primary before n1 took over at TXID 5 (T0 + 4000): its own TXIDs 5..6 are quarantined.
    const early = {
      from: 5n,
      to: 6n,
      nodeId: 2n,
      preApply: sums.get(4n),
      salt: 2n,
      quarantine: "20261130T120000Z-5-6",
    };
    writeFabricatedChain(path.join(root, "n2"), DB, { ...early, startMs: T0 + 3000 - 2000 });
    // The same folder also holds the shared prefix (a whole history quarantined as unverifiable): the
    // branch still starts where the versions differ, at TXID 5.
    writeFabricatedChain(path.join(root, "n2"), DB, {
      from: 1n,
      to: 4n,
      nodeId: 1n,
      startMs: T0,
      quarantine: early.quarantine,
    });
    const excused = await checkChaos({ ...input, allowFailoverReuse: true });
    assert.ok(excused.ok, formatCheckReport(excused));
    assert.equal(excused.duplicates.filter((d) => d.excused).length, 2);
    // The static lease allows no reuse at all.
    const strict = await checkChaos(input);
    assert.match(strict.violations.join("\n"), /committed by 2 nodes/);
    // Overlap: n2's TXID 6 committed after n1's first commit from TXID 5 (split brain).
    writeFabricatedChain(path.join(root, "n2"), DB, { ...early, from: 6n, startMs: T0 + 4000 + 500 });
    const overlapping = await checkChaos({ ...input, allowFailoverReuse: true });
    assert.equal(overlapping.ok, false);
    assert.match(overlapping.violations.join("\n"), /split brain/);
  });

  test("a reference whose history is a snapshot: the winner and a branch's start come from a replica's verified chain", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const dirs = ["n1", "n2", "n3"].map((n) => path.join(root, n));
    // n1, the final primary, was sent a snapshot at TXID 5, then committed TXID 6.
    const snapshot = writeFabricatedSnapshot(dirs[0], DB, {
      maxTxid: 5n,
      nodeId: 1n,
      timestampMs: T0 + 4000,
    });
    const six = { txid: 6n, nodeId: 1n, timestampMs: T0 + 5000, preApply: snapshot, postApply: 66n };
    writeFabricatedTx(dirs[0], DB, six);
    // n2 and n3 hold node 1's transactions one by one, reaching the same state at TXID 5.
    for (const dir of [dirs[1], dirs[2]]) {
      const sums = writeFabricatedChain(dir, DB, { from: 1n, to: 4n, nodeId: 1n, startMs: T0 });
      writeFabricatedTx(dir, DB, {
        txid: 5n,
        nodeId: 1n,
        timestampMs: T0 + 4000,
        preApply: sums.get(4n)!,
        postApply: snapshot & ~(1n << 63n),
      });
      writeFabricatedTx(dir, DB, six);
    }
    // n3 had been primary and committed TXIDs 4..5 itself before node 1 did: quarantined, in a folder
    // that also holds the shared prefix 1..3 (a whole history set aside).
    const folder = "20261130T120000Z-1-5";
    const shared = writeFabricatedChain(dirs[2], DB, {
      from: 1n,
      to: 3n,
      nodeId: 1n,
      startMs: T0,
      quarantine: folder,
    });
    writeFabricatedChain(dirs[2], DB, {
      from: 4n,
      to: 5n,
      nodeId: 3n,
      startMs: T0 + 3000 - 2000,
      preApply: shared.get(3n),
      salt: 3n,
      quarantine: folder,
    });
    const input = await checkInput(dirs, { allowFailoverReuse: true, requireConverged: true });
    const report = await checkChaos(input);
    assert.ok(report.ok, formatCheckReport(report));
    assert.equal(report.duplicates.filter((d) => d.excused).length, 2);
    // The same losing branch committed after node 1's TXID 4 overlaps its tenure: split brain.
    writeFabricatedChain(dirs[2], DB, {
      from: 4n,
      to: 5n,
      nodeId: 3n,
      startMs: T0 + 3000 + 500,
      preApply: shared.get(3n),
      salt: 3n,
      quarantine: folder,
    });
    const overlapping = await checkChaos(input);
    assert.match(
      overlapping.violations.join("\n"),
      /TXID 0000000000000005 committed by 2 nodes: .*split brain/,
    );
  });

  test("a TXID whose every version is quarantined: judged by the versions' own tenures", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const dirs = ["n1", "n2", "n3"].map((n) => path.join(root, n));
    // Everyone's live history is a snapshot at TXID 5, then TXID 6: no live file names a winner below.
    const snapshot = writeFabricatedSnapshot(dirs[0], DB, {
      maxTxid: 5n,
      nodeId: 3n,
      timestampMs: T0 + 5000,
    });
    for (const dir of dirs.slice(1)) {
      writeFabricatedSnapshot(dir, DB, { maxTxid: 5n, nodeId: 3n, timestampMs: T0 + 5000 });
    }
    for (const dir of dirs) {
      writeFabricatedTx(dir, DB, {
        txid: 6n,
        nodeId: 3n,
        timestampMs: T0 + 6000,
        preApply: snapshot,
        postApply: 66n,
      });
    }
    // Set aside, whole histories: n2 had node 1's TXIDs 1..3 and wrote TXID 4 itself; n3 had node 1's
    // 1..2 and, as the next primary, wrote 3 (at T0 + 3000) and 4 (at T0 + 3200).
    const shared = writeFabricatedChain(dirs[1], DB, {
      from: 1n,
      to: 3n,
      nodeId: 1n,
      startMs: T0,
      quarantine: "a",
    });
    writeFabricatedChain(dirs[2], DB, { from: 1n, to: 2n, nodeId: 1n, startMs: T0, quarantine: "b" });
    writeFabricatedChain(dirs[2], DB, {
      from: 3n,
      to: 4n,
      nodeId: 3n,
      startMs: T0 + 3000,
      preApply: shared.get(2n),
      salt: 3n,
      quarantine: "b",
    });
    const n2Wrote = (timestampMs: number): void => {
      writeFabricatedTx(dirs[1], DB, {
        txid: 4n,
        nodeId: 2n,
        timestampMs,
        preApply: shared.get(3n)!,
        postApply: 44n,
        quarantine: "a",
      });
    };
    n2Wrote(T0 + 2900); // before n3's tenure began
    const input = await checkInput(dirs, { allowFailoverReuse: true, requireConverged: true });
    const excused = await checkChaos(input);
    assert.ok(excused.ok, formatCheckReport(excused));
    assert.equal(excused.duplicates.filter((d) => d.excused).length, 2); // TXIDs 3 and 4
    n2Wrote(T0 + 3100); // while n3 was primary: overlapping tenures
    const overlapping = await checkChaos(input);
    assert.match(
      overlapping.violations.join("\n"),
      /TXID 0000000000000004 committed by 2 nodes: .*no live version.*split brain/,
    );
  });

  test("failover reuse with identical contents: excused before the new tenure, split brain after", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input, sums } = await goodCluster(root);
    // n3 (at TXID 4) had committed TXID 5 itself, with exactly n1's contents (a retried write), and
    // kept it live: nothing diverged when it rejoined.
    const n3 = path.join(root, "n3");
    const same = { txid: 5n, nodeId: 3n, preApply: sums.get(4n)!, postApply: sums.get(5n)! & ~(1n << 63n) };
    writeFabricatedTx(n3, DB, { ...same, timestampMs: T0 + 4000 - 500 });
    const before = await checkChaos({ ...input, allowFailoverReuse: true });
    assert.ok(before.ok, formatCheckReport(before));
    assert.equal(before.duplicates.length, 1);
    writeFabricatedTx(n3, DB, { ...same, timestampMs: T0 + 4000 + 500 });
    const after = await checkChaos({ ...input, allowFailoverReuse: true });
    assert.match(after.violations.join("\n"), /TXID 0000000000000005 committed by 2 nodes: .*split brain/);
    // But when the history goes on from n3's tenure (TXID 6 is n3's), n1 had written TXID 5 first and
    // stopped there (killed right after; its client retried on n3, the next primary): excused.
    for (const node of ["n1", "n2"]) {
      writeFabricatedTx(path.join(root, node), DB, {
        txid: 6n,
        nodeId: 3n,
        timestampMs: T0 + 5000,
        preApply: sums.get(5n)!,
        postApply: sums.get(6n)! & ~(1n << 63n),
      });
    }
    const followed = await checkChaos({ ...input, allowFailoverReuse: true });
    assert.ok(followed.ok, formatCheckReport(followed));
  });

  test("lost acknowledged writes: excused only inside a window and quarantined; otherwise dropped", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input, sums } = await goodCluster(root);
    // Write 8 was acknowledged by n2 as primary just before a fault, and kept in its quarantine.
    writeFabricatedChain(path.join(root, "n2"), DB, {
      from: 5n,
      to: 5n,
      nodeId: 2n,
      startMs: T0 + 1000,
      preApply: sums.get(4n),
      salt: 2n,
      quarantine: "20261130T120000Z-5-5",
      tokens: new Map([[5n, [8]]]),
    });
    const acked = [
      ...input.acked,
      { id: 8, ackedAtMs: T0 + 1500, via: "n2" },
      { id: 9, ackedAtMs: T0 + 60_000, via: "n1" },
    ];
    const window = { label: "kill9@n2", startMs: T0 + 2000, endMs: T0 + 10_000 };
    const report = await checkChaos({ ...input, acked, asyncWindows: [window], allowFailoverReuse: true });
    assert.deepEqual(
      report.lost.map((l) => [l.id, l.quarantined, l.window]),
      [
        [8, true, "kill9@n2"],
        [9, false, null],
      ],
    );
    const text = report.violations.join("\n");
    assert.match(text, /write 9 .* lost outside any async window/);
    assert.match(text, /write 9 .* silently dropped/);
    assert.doesNotMatch(text, /write 8 /);
  });

  test("a corrupt database fails integrity_check", async (t) => {
    const root = makeTempDir("chaos-check");
    t.after(() => removeTempDir(root));
    const { input } = await goodCluster(root);
    const file = path.join(root, "n3", "sql.db");
    await writeAcksDatabase(
      path.join(root, "big.db"),
      Array.from({ length: 2000 }, (_, i) => i + 1),
    );
    fs.copyFileSync(path.join(root, "big.db"), file);
    const bytes = fs.readFileSync(file);
    bytes.fill(0x5a, 4096 * 2 + 200, 4096 * 2 + 1200); // scribble over a b-tree page
    fs.writeFileSync(file, bytes);
    const report = await checkChaos(input);
    assert.match(report.violations.join("\n"), /n3: integrity_check/);
  });

  test("longestGap measures the longest stretch without an acknowledged write over a fault", () => {
    assert.equal(longestGap([0, 100, 200, 1500, 1600], 150, 300, 2000), 1300);
    assert.equal(longestGap([0, 100], 150, 300, 2000), 1850);
  });
});

const support = mountSupport();
/**
 * One suite chaos run: its report as test diagnostics; fails when no write was acknowledged (the run
 * would check nothing). The caller asserts the verdict (and what else its schedule must have done).
 */
async function suiteRun(
  t: { diagnostic: (line: string) => void },
  options: Omit<ChaosRunOptions, "log">,
): Promise<{ run: ChaosRunResult; report: string }> {
  const lines: string[] = [];
  const run = await runChaos({
    ...options,
    log: (line) => lines.push(`${new Date().toISOString().slice(11, 23)} ${line}`),
  });
  const text = formatChaosRun(run);
  for (const line of text.split("\n")) t.diagnostic(line);
  const report = `${text}\n--- log ---\n${lines.join("\n")}`;
  assert.ok(run.workload.acked.length > 0, `no write was acknowledged\n${report}`);
  return { run, report };
}

test(
  "chaos: 3 nodes, seeded faults, the checker passes",
  { skip: support.supported ? false : support.reason, timeout: 6 * 60_000 },
  async (t) => {
    // A fixed schedule by default, so that the suite is repeatable; CHAOS_SEED=random explores.
    const seed = chaosSeed(SUITE_SEED);
    // etcd (all nodes candidates, failover) unless CHAOS_LEASE=static asks for the fixed primary.
    const lease = process.env.CHAOS_LEASE === "static" ? "static" : "etcd";
    t.diagnostic(`chaos seed ${seed} lease ${lease} (replay with CHAOS_SEED=${seed} CHAOS_LEASE=${lease})`);
    const { run, report } = await suiteRun(t, { seed, lease, durationMs: 75_000, maxFaults: 6 });
    assert.ok(run.ok, report);
  },
);

test(
  "chaos: planned lease moves (litefs promote, SIGTERM of the primary) lose no acknowledged write",
  { skip: support.supported ? false : support.reason, timeout: 4 * 60_000 },
  async (t) => {
    // Each handoff paces the old primary's commits until its target is close (src/node/handoff-pacer.ts);
    // neither kind opens an asynchronous window, so the checker counts any lost write as a violation.
    const seed = chaosSeed(PLANNED_SEED);
    t.diagnostic(`chaos seed ${seed} (replay with CHAOS_SEED=${seed})`);
    const { run, report } = await suiteRun(t, {
      seed,
      lease: "etcd",
      kinds: PLANNED_KINDS,
      durationMs: 30_000,
      maxFaults: 5,
    });
    assert.ok(
      run.faults.some((f) => f.notes.some((n) => n.startsWith("handed off to"))),
      `no handoff happened (the schedule checks nothing)\n${report}`,
    );
    assert.ok(
      run.faults.some((f) => f.kind === "sigterm" && f.role === "primary"),
      `no primary was stopped with SIGTERM (none known at the time?)\n${report}`,
    );
    assert.ok(run.ok, report);
  },
);
