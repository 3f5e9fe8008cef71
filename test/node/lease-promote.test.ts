// `lease.promote: true` on a real etcd: a candidate that starts while another node is primary first
// syncs as a replica, then asks the primary to hand the lease over; it becomes primary without a TTL
// wait and the old primary follows it.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { EtcdCluster } from "../support/etcd.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { sqlite } from "./node-kit.js";
import { nodeStatus, startEtcdNode, waitConverged, waitFor, waitFollowing } from "./lease-kit.js";

const DB = "app.db";

test(
  "lease.promote: a synced candidate takes the lease over through a handoff",
  { timeout: 60_000 },
  async () => {
    const etcd = await EtcdCluster.start({ label: "lease-promote" });
    const nodes: LitefsNode[] = [];
    after(async () => {
      for (const node of nodes) await node.cleanup().catch(() => undefined);
      await etcd.stop();
    });
    const old = await startEtcdNode("old", etcd.endpoints, "/litefs/promote");
    nodes.push(old);
    await sqlite(old.dbPath(DB), "CREATE TABLE t(v); INSERT INTO t VALUES (1);");
    const oldEpoch = BigInt((await nodeStatus(old)).epoch);

    const started = performance.now();
    const fresh = await startEtcdNode("fresh", etcd.endpoints, "/litefs/promote", { promote: true });
    nodes.push(fresh);
    await waitFor("the promoting node is primary", async () =>
      (await nodeStatus(fresh)).role === "primary" ? true : undefined,
    );
    const tookMs = performance.now() - started;
    assert.ok(BigInt((await nodeStatus(fresh)).epoch) > oldEpoch);
    await waitFollowing(old, fresh, "the old primary follows");
    // It had synced first: the row written before it started is there, and new writes replicate back.
    assert.equal((await sqlite(fresh.dbPath(DB), "SELECT count(*) FROM t;")).trim(), "1");
    await sqlite(fresh.dbPath(DB), ".timeout 5000\nINSERT INTO t VALUES (2);");
    await waitConverged(fresh, [old], DB);
    // The old primary paced its commits until the target was close behind before it stopped them
    // (there was nothing to apply here: the pace's effect on a backlog and on a writer is
    // test/node/handoff-backlog's), and found it close.
    const [pace] = old
      .lastRunLogs()
      .split("\n")
      .filter((line) => line.includes('"msg":"handoff: the pace step ended"'))
      .map((line) => JSON.parse(line) as { url?: string; close?: boolean });
    assert.deepEqual([pace?.url, pace?.close], [fresh.httpUrl, true], JSON.stringify(pace));
    // …and counted it where an operator looks.
    const metrics = await (await fetch(`${old.httpUrl}/metrics`)).text();
    assert.match(metrics, /^litefs_handoff_pace_seconds_count 1$/m);
    // A planned handoff is no error: the replica streams' refusals on the way (no primary known yet,
    // the node asked not primary yet) are logged at info.
    for (const node of [old, fresh]) {
      const errors = node
        .lastRunLogs()
        .split("\n")
        .filter((line) => line.startsWith("{") && (JSON.parse(line) as { level?: string }).level === "error");
      assert.deepEqual(errors, [], `error lines in a handoff's logs`);
    }
    console.log(`lease.promote: primary ${Math.round(tookMs)} ms after its start began`);
  },
);
