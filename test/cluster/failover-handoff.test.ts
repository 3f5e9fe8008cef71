// Handoff under load: `litefs promote --url <replica>` moves the primary to that replica at once
// (no TTL wait) while readers on every node's mount read in a loop and a writer follows the primary.
// No read may fail; the write gap (last ack on the old primary → first ack on the new one) is
// measured and printed, not asserted beyond a generous bound.
import assert from "node:assert/strict";
import { test } from "node:test";

import { runLitefsCli } from "../support/litefs-cli.js";
import { LeasedCluster } from "../support/leased-cluster.js";
import {
  assertConsistent,
  batchIds,
  createSchema,
  DB,
  lostAcks,
  ReadLoad,
  rollBackKilledWriter,
} from "./cluster-kit.js";
import { describeGenerations, FollowingWriter } from "./following-writer.js";

const READ_MS = 12_000;

test(
  "handoff by `litefs promote` under reads and writes: zero failed reads, no lost write",
  { timeout: 150_000 },
  async (t) => {
    const cluster = await LeasedCluster.start({ nodes: 3, ttl: "2s" });
    t.after(() => cluster.cleanup());
    const old = await cluster.primary();
    await createSchema(old);
    const writer = FollowingWriter.start(cluster, DB, 80_808);
    t.after(() => writer.stop());
    assert.ok((await writer.waitForAckAfter(0, 30_000)) !== null, `no write acknowledged\n${cluster.logs()}`);
    await cluster.waitConverged([DB]).catch(() => undefined); // only to have the database everywhere
    const readers = await Promise.all(cluster.nodes.map((n) => ReadLoad.start(n, READ_MS)));
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    const target = cluster.others(old)[0];
    await cluster.waitForReplicasConnected(old);
    const promotedAt = Date.now();
    const promote = await runLitefsCli(["promote", "--url", target.node.httpUrl], { timeoutMs: 30_000 });
    const promoteMs = Date.now() - promotedAt;
    assert.equal(
      promote.code,
      0,
      `litefs promote failed\n${promote.stderr}${promote.stdout}\n${cluster.logs()}`,
    );
    assert.equal(await cluster.waitForPrimary({ not: old, timeoutMs: 10_000 }), target);
    const firstAck = await writer.waitForAckAfter(promotedAt, 15_000, old.name);
    assert.ok(
      firstAck !== null,
      `no write acknowledged on ${target.name}\n${describeGenerations(writer)}\n${cluster.logs()}`,
    );
    const lastBefore = writer.acks.filter((a) => a.node === old.name).at(-1);
    const gapMs = firstAck.at - (lastBefore?.at ?? promotedAt);
    t.diagnostic(
      `promote returned after ${promoteMs} ms; write gap ${gapMs} ms (last ack on ${old.name} → first on ${target.name})`,
    );
    assert.ok(gapMs < 15_000);
    assert.equal((await cluster.status(old))?.role, "replica");

    const results = await Promise.all(readers.map((r) => r.result()));
    await writer.stop();
    for (const r of results) t.diagnostic(`${r.node}: ${r.ok} reads, ${r.failed} failed`);
    for (const line of describeGenerations(writer).split("\n")) t.diagnostic(line);
    for (const r of results) {
      assert.equal(r.failed, 0, `${r.node}: failed reads:\n${r.errors.join("\n")}`);
      assert.ok(r.ok > 0);
    }
    await rollBackKilledWriter(await cluster.primary());
    await cluster.waitConverged([DB]);
    for (const node of cluster.nodes) await assertConsistent(node);
    // A handoff waits for the target to catch up: nothing acknowledged may be lost.
    const lost = lostAcks(writer.acks, await batchIds(target));
    assert.deepEqual(
      lost,
      [],
      `acknowledged writes lost in the handoff\n${describeGenerations(writer)}\n${cluster.logs(12_000)}`,
    );
  },
);

test(
  "handoff back to the node that handed off a moment ago (inside its lease.demote-delay)",
  { timeout: 120_000 },
  async (t) => {
    // demote-delay is 10 s by default: both handoffs below happen well inside it.
    const cluster = await LeasedCluster.start({ nodes: 3, ttl: "2s" });
    t.after(() => cluster.cleanup());
    const first = await cluster.primary();
    let from = first;
    for (const to of [cluster.others(first)[0], first, cluster.others(first)[0]]) {
      // Replicas reconnect to a new primary as soon as it serves streams (not after their backoff).
      const connectMs = await cluster.waitForReplicasConnected(from, 15_000);
      const started = Date.now();
      const promote = await runLitefsCli(["promote", "--url", to.node.httpUrl], { timeoutMs: 30_000 });
      assert.equal(
        promote.code,
        0,
        `promote ${from.name} → ${to.name} failed\n${promote.stderr}${promote.stdout}\n${cluster.logs()}`,
      );
      assert.equal(await cluster.waitForPrimary({ timeoutMs: 10_000 }), to);
      t.diagnostic(
        `${from.name} → ${to.name}: replicas connected ${connectMs} ms after the previous handoff; ` +
          `promote took ${Date.now() - started} ms`,
      );
      from = to;
    }
  },
);
