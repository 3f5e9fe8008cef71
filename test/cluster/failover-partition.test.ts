// A primary cut off from etcd (its etcd traffic silently held by a fault proxy, while it still
// reaches the other nodes): it must stop committing before its lease can expire at etcd — checked
// on the LTX files it wrote, whose headers carry its node id and the commit time — and stay up as a
// replica, while another node takes the lease. Across every node's LTX history (live and
// quarantined), no TXID may have been committed by two nodes.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LeasedCluster } from "../support/leased-cluster.js";
import { runSqlJob } from "../support/sql-clients.js";
import { assertConsistent, createSchema, DB, rollBackKilledWriter } from "./cluster-kit.js";
import { describeGenerations, FollowingWriter } from "./following-writer.js";
import { doubleCommits, hex, readLtxHistory, type LtxRecord } from "./ltx-history.js";

const TTL_MS = 2_000;

test(
  "a primary cut off from etcd stops writing before its lease expires; no TXID has two writers",
  {
    timeout: 150_000,
  },
  async (t) => {
    const cluster = await LeasedCluster.start({ nodes: 3, ttl: "2s", etcdFaultProxies: true });
    t.after(() => cluster.cleanup());
    const old = await cluster.primary();
    const oldId = BigInt("0x" + String((await cluster.status(old))?.nodeId));
    await createSchema(old);
    const writer = FollowingWriter.start(cluster, DB, 70_707);
    t.after(() => writer.stop());
    assert.ok((await writer.waitForAckAfter(0, 30_000)) !== null, `no write acknowledged\n${cluster.logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    // Nothing the old primary sends to etcd from now on arrives, so its last renewal was sent before
    // cutAt and etcd cannot expire the lease before cutAt + TTL.
    const cutAt = Date.now();
    cluster.cutFromEtcd(old, "paused");
    const next = await cluster.waitForPrimary({ not: old, timeoutMs: 20_000 });
    const failoverMs = Date.now() - cutAt;
    const nextId = BigInt("0x" + String((await cluster.status(next))?.nodeId));

    // Past the lease's expiry the old primary refuses a write through its own mount, and still runs.
    const wait = cutAt + TTL_MS - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await assert.rejects(
      runSqlJob("better-sqlite3", {
        dbPath: old.node.dbPath(DB),
        scripts: ["INSERT INTO totals VALUES (99, 0, 0, 0)"],
        busyTimeoutMs: 2_000,
        timeoutMs: 30_000,
      }),
      "a write on the cut-off primary succeeded after its lease expired",
    );
    assert.ok(old.node.running, `${old.name} exited\n${old.node.logs().slice(-4000)}`);
    assert.notEqual((await cluster.status(old))?.role, "primary");
    // Its renewals failed (the lease was lost only because they kept failing) and the metric says so.
    const metrics = await (await fetch(`${old.node.httpUrl}/metrics`)).text();
    const failures = Number(/^litefs_lease_renew_failures_total (\d+)$/m.exec(metrics)?.[1] ?? "0");
    assert.ok(failures > 0, `no failed renewal counted on the cut-off primary\n${metrics}`);

    assert.ok(
      (await writer.waitForAckAfter(cutAt, 20_000, old.name)) !== null,
      "no write on the new primary",
    );
    cluster.healEtcd(old);
    await writer.stop();
    for (const line of describeGenerations(writer).split("\n")) t.diagnostic(line);
    await rollBackKilledWriter(await cluster.primary());
    await cluster.waitConverged([DB]);
    for (const node of cluster.nodes) await assertConsistent(node);
    assert.equal((await cluster.status(old))?.role, "replica", `${old.name} is not a replica after healing`);

    const history: LtxRecord[] = cluster.nodes.flatMap((n) => readLtxHistory(n.name, n.node, DB));
    const byOld = history.filter((r) => r.writer === oldId);
    const byNext = history.filter((r) => r.writer === nextId && r.timestamp >= cutAt);
    assert.ok(byOld.length > 0 && byNext.length > 0, "expected transactions from both primaries");
    const lastOld = Math.max(...byOld.map((r) => r.timestamp));
    const firstNext = Math.min(...byNext.map((r) => r.timestamp));
    t.diagnostic(
      `new primary ${next.name} after ${failoverMs} ms; old primary's last commit ${lastOld - cutAt} ms ` +
        `after the cut, new primary's first ${firstNext - cutAt} ms after it (TTL ${TTL_MS} ms)`,
    );
    assert.ok(
      lastOld < cutAt + TTL_MS,
      `${old.name} (${hex(oldId)}) committed ${lastOld - cutAt} ms after the cut, past the TTL`,
    );
    assert.ok(lastOld < firstNext, "the old primary committed after the new one had started");
    assert.deepEqual(doubleCommits(history), [], "TXIDs committed by two nodes");
  },
);
