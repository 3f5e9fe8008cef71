// Soak: replica readers under replication and planned handoffs, counting failed reads. It is the shape
// of test/cluster/failover-handoff ("zero failed reads"), longer and with more readers — how session 14
// reproduced a replica's "database disk image is malformed" (docs/reliability.md, finding 5): a scratch
// version of this run with one better-sqlite3 and one C reader per node had it in 16 of 57 runs before
// the fix, 0 of 14 after. Each run starts a fresh cluster (etcd, three candidate nodes), a writer
// following the primary, `--readers` better-sqlite3 read loops on every node
// (test/cluster/reader-child.ts), then `--handoffs` `litefs promote` calls `--gap-ms` apart; it prints
// every failed read and, at the end, how many runs had one.
//   node dist/bench/replica-read-soak.js [--runs 10] [--handoffs 3] [--gap-ms 10000] [--readers 2]
// Exit code 1 when any read failed. Not part of the test suite: a run takes ~50 s.
import { parseArgs } from "node:util";

import { createSchema, DB, ReadLoad, type ReadSummary } from "../test/cluster/cluster-kit.js";
import { FollowingWriter } from "../test/cluster/following-writer.js";
import { LeasedCluster } from "../test/support/leased-cluster.js";
import { runLitefsCli } from "../test/support/litefs-cli.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    handoffs: { type: "string", default: "3" },
    "gap-ms": { type: "string", default: "10000" },
    readers: { type: "string", default: "2" },
  },
});
const runs = Number(values.runs);
const handoffs = Number(values.handoffs);
const gapMs = Number(values["gap-ms"]);
const readersPerNode = Number(values.readers);
for (const [flag, n] of Object.entries({ runs, handoffs, "gap-ms": gapMs, readers: readersPerNode })) {
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${flag}: a whole number ≥ 0 is needed, got ${n}`);
}

/** One run: returns the failed reads' descriptions (empty: none failed). */
async function oneRun(run: number): Promise<string[]> {
  const cluster = await LeasedCluster.start({ nodes: 3, ttl: "2s" });
  const failures: string[] = [];
  let writer: FollowingWriter | undefined;
  try {
    let primary = await cluster.primary();
    await createSchema(primary);
    writer = FollowingWriter.start(cluster, DB, 80_808);
    if ((await writer.waitForAckAfter(0, 30_000)) === null) throw new Error("no write acknowledged");
    await cluster.waitConverged([DB]).catch(() => undefined);
    const readMs = 1_500 + handoffs * (gapMs + 1_500);
    const loads: ReadLoad[] = [];
    for (const node of cluster.nodes) {
      for (let i = 0; i < readersPerNode; i++) loads.push(await ReadLoad.start(node, readMs));
    }
    for (let i = 0; i < handoffs; i++) {
      await new Promise((resolve) => setTimeout(resolve, i === 0 ? 1_000 : gapMs));
      await cluster.waitForReplicasConnected(primary);
      const target = cluster.others(primary)[i % 2];
      const promote = await runLitefsCli(["promote", "--url", target.node.httpUrl], { timeoutMs: 30_000 });
      if (promote.code !== 0) failures.push(`promote to ${target.name} failed: ${promote.stderr.trim()}`);
      primary = await cluster.waitForPrimary({ not: primary, timeoutMs: 10_000 });
    }
    const results: ReadSummary[] = await Promise.all(loads.map((l) => l.result()));
    let reads = 0;
    let failed = 0;
    for (const r of results) {
      reads += r.ok;
      failed += r.failed;
      for (const e of r.errors) failures.push(`${r.node}: ${e}`);
    }
    console.log(`run ${run}: ${reads} reads, ${failed} failed, ${writer.acks.length} writes`);
    for (const f of failures) console.log(`  ${f}`);
    return failures;
  } finally {
    await writer?.stop();
    await cluster.cleanup();
  }
}

let failedRuns = 0;
for (let run = 1; run <= runs; run++) {
  if ((await oneRun(run)).length > 0) failedRuns++;
}
console.log(
  `\n${failedRuns} of ${runs} runs had a failed read (${handoffs} handoffs, ${readersPerNode} readers per node)`,
);
process.exit(failedRuns > 0 ? 1 : 0);
