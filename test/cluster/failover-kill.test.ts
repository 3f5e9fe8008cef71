// Failover on a real etcd: three candidates, TTL 2 s, a write load that follows the primary. The
// primary is killed with SIGKILL; another node must take the lease and accept writes, the old one
// must come back as a replica, and every node must end with the same bytes. Every acknowledged
// batch must be there, except those acknowledged by the dead primary inside the asynchronous
// replication window just before its death (counted and printed, never silently accepted).
import assert from "node:assert/strict";
import { test } from "node:test";

import { LeasedCluster } from "../support/leased-cluster.js";
import {
  assertConsistent,
  batchIds,
  createSchema,
  DB,
  lostAcks,
  rollBackKilledWriter,
} from "./cluster-kit.js";
import { describeGenerations, FollowingWriter } from "./following-writer.js";

/** Generous: the goal is TTL + ~1 s, but the test machine is shared and loaded. */
const FAILOVER_BOUND_MS = 15_000;
/** Acks older than this before the kill must have reached some replica. */
const ASYNC_WINDOW_MS = 2_000;

test(
  "kill -9 of the primary under writes: a new primary, the old one rejoins, same bytes everywhere",
  {
    timeout: 150_000,
  },
  async (t) => {
    const cluster = await LeasedCluster.start({ nodes: 3, ttl: "2s" });
    t.after(() => cluster.cleanup());
    const first = await cluster.primary();
    await createSchema(first);
    const writer = FollowingWriter.start(cluster, DB, 60_601);
    t.after(() => writer.stop());
    assert.ok((await writer.waitForAckAfter(0, 30_000)) !== null, `no write acknowledged\n${cluster.logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    const killedAt = Date.now();
    await cluster.kill9(first);
    const next = await cluster.waitForPrimary({ not: first, timeoutMs: FAILOVER_BOUND_MS });
    const primaryAfterMs = Date.now() - killedAt;
    const firstAck = await writer.waitForAckAfter(killedAt, FAILOVER_BOUND_MS, first.name);
    assert.ok(firstAck !== null, `no write acknowledged after the kill\n${cluster.logs()}`);
    const writableAfterMs = firstAck.at - killedAt;
    t.diagnostic(
      `new primary ${next.name} after ${primaryAfterMs} ms; first write acked after ${writableAfterMs} ms`,
    );
    assert.ok(writableAfterMs < FAILOVER_BOUND_MS);

    // The old primary rejoins as a replica of the new one while writes go on.
    await cluster.restart(first);
    const deadline = Date.now() + 30_000;
    while ((await cluster.status(first))?.role !== "replica") {
      assert.ok(Date.now() < deadline, `${first.name} did not come back as a replica\n${cluster.logs()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await cluster.waitForPrimary({ timeoutMs: 5_000 }), next, "the primary moved again");
    const beforeStop = writer.acks.length;
    // +1: an ack already counted may carry this very millisecond; only a later one proves writes go on.
    const rejoinedAt = Date.now() + 1;
    assert.ok((await writer.waitForAckAfter(rejoinedAt, 10_000)) !== null, "writes stopped after the rejoin");
    await writer.stop();
    for (const line of describeGenerations(writer).split("\n")) t.diagnostic(line);
    assert.ok(writer.acks.length > beforeStop);

    await rollBackKilledWriter(await cluster.primary());
    await cluster.waitConverged([DB]);
    for (const node of cluster.nodes) await assertConsistent(node);
    const present = await batchIds(next);
    const lost = lostAcks(writer.acks, present);
    t.diagnostic(
      `${writer.acks.length} writes acknowledged, ${lost.length} lost in the asynchronous window ` +
        `(${writer.generations.length} writer generations)`,
    );
    for (const ack of lost) {
      assert.equal(
        ack.node,
        first.name,
        `batch ${ack.batchId} acked by ${ack.node} (not the killed primary) is lost`,
      );
      assert.ok(
        ack.at >= killedAt - ASYNC_WINDOW_MS,
        `batch ${ack.batchId} acked ${killedAt - ack.at} ms before the kill is lost`,
      );
    }
  },
);
