// Three `litefs mount` nodes, all candidates, leasing through one real etcd (TTL 2 s): the first is
// primary, the others follow it; kill -9 of the primary → another candidate takes over within the TTL
// plus a margin and the third follows it; the old primary restarts as a replica and converges; `litefs
// promote` moves the lease back through a handoff; SIGTERM on the primary hands the lease to a synced
// candidate. Times are printed (never asserted beyond generous bounds of correctness).

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { EtcdCluster } from "../support/etcd.js";
import { runLitefsCli } from "../support/litefs-cli.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { sqlite } from "./node-kit.js";
import {
  nodeStatus,
  startEtcdNode,
  TTL_MS,
  waitConverged,
  waitFor,
  waitFollowing,
  waitForPrimary,
} from "./lease-kit.js";

const DB = "app.db";
/** A second database in WAL mode: role changes must handle a WAL database on both sides. */
const WAL_DB = "wal.db";

async function writeWal(node: LitefsNode, value: string): Promise<void> {
  await sqlite(node.dbPath(WAL_DB), `.timeout 5000\nINSERT INTO w(v) VALUES ('${value}');`);
}

test(
  "etcd lease: failover after kill -9, restart as replica, promote, handoff on SIGTERM",
  { timeout: 150_000 },
  async () => {
    const etcd = await EtcdCluster.start({ label: "lease-failover" });
    const nodes: LitefsNode[] = [];
    after(async () => {
      for (const node of nodes) await node.cleanup().catch(() => undefined);
      await etcd.stop();
    });
    const key = "/litefs/failover";
    const a = await startEtcdNode("node-a", etcd.endpoints, key);
    nodes.push(a);
    assert.equal((await nodeStatus(a)).role, "primary", a.logs());
    const b = await startEtcdNode("node-b", etcd.endpoints, key);
    nodes.push(b);
    const c = await startEtcdNode("node-c", etcd.endpoints, key);
    nodes.push(c);
    assert.equal((await nodeStatus(b)).role, "replica");
    assert.equal((await nodeStatus(c)).role, "replica");
    const epochA = BigInt((await nodeStatus(a)).epoch);
    assert.ok(epochA > 0n);

    await sqlite(a.dbPath(DB), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);");
    for (let i = 0; i < 10; i++) await sqlite(a.dbPath(DB), `INSERT INTO t(v) VALUES ('a${i}');`);
    await sqlite(
      a.dbPath(WAL_DB),
      "PRAGMA journal_mode=WAL; CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT);",
    );
    await writeWal(a, "a");
    await waitConverged(a, [b, c], DB);
    await waitConverged(a, [b, c], WAL_DB);
    const bStatus = await nodeStatus(b);
    assert.equal(bStatus.primary.hostname, "node-a");
    assert.equal(bStatus.epochSeen, epochA.toString());

    // kill -9 of the primary: a new one within TTL + margin, the other replica follows it.
    const killedAt = performance.now();
    await a.crash();
    const second = await waitForPrimary([b, c], TTL_MS * 5);
    const failoverMs = performance.now() - killedAt;
    const third = second === b ? c : b;
    const epoch2 = BigInt((await nodeStatus(second)).epoch);
    assert.ok(epoch2 > epochA, `epoch ${epoch2} after ${epochA}`);
    await waitFor("the other replica follows the new primary", async () =>
      (await nodeStatus(third)).primary.url === second.httpUrl ? true : undefined,
    );
    await sqlite(second.dbPath(DB), "INSERT INTO t(v) VALUES ('after failover');");
    await writeWal(second, "after failover");
    await waitConverged(second, [third], DB);
    await waitConverged(second, [third], WAL_DB);
    console.log(`failover (kill -9 → new primary by /status): ${Math.round(failoverMs)} ms`);

    // The old primary restarts as a replica and converges byte-identically.
    await a.restart();
    assert.equal((await nodeStatus(a)).role, "replica", a.lastRunLogs());
    await sqlite(second.dbPath(DB), "INSERT INTO t(v) VALUES ('after restart');");
    const pos = await waitConverged(second, [a, third], DB);
    assert.equal(a.readPos(DB).txid, BigInt("0x" + pos.slice(0, 16)));
    await waitConverged(second, [a, third], WAL_DB);
    const rows = (await sqlite(a.dbPath(DB), "SELECT count(*) FROM t;")).trim();
    assert.equal(rows, "12");

    // litefs promote on the restarted replica: it becomes primary through a handoff, no TTL wait.
    const promoteStarted = performance.now();
    const promoted = await runLitefsCli(["promote", "--url", a.httpUrl]);
    const promoteMs = performance.now() - promoteStarted;
    assert.equal(promoted.code, 0, promoted.stderr + a.lastRunLogs() + second.lastRunLogs());
    assert.match(promoted.stdout, /is the primary \(epoch \d+/);
    assert.equal((await nodeStatus(a)).role, "primary");
    await waitFollowing(second, a, "the old primary is a replica of the promoted node");
    await sqlite(a.dbPath(DB), "INSERT INTO t(v) VALUES ('after promote');");
    await writeWal(a, "after promote");
    await waitConverged(a, [second, third], DB);
    await waitConverged(a, [second, third], WAL_DB);
    assert.equal((await sqlite(second.dbPath(WAL_DB), "SELECT count(*) FROM w;")).trim(), "3");
    const nodeMs = /, (\d+) ms\)/.exec(promoted.stdout)?.[1];
    console.log(
      `promote: ${nodeMs} ms in the node (POST /promote), ${Math.round(promoteMs)} ms for the CLI command`,
    );

    // A static-lease-only refusal path: promote on the primary itself is a no-op success.
    const again = await runLitefsCli(["promote", "--url", a.httpUrl]);
    assert.equal(again.code, 0, again.stderr);

    // SIGTERM on the primary hands the lease to a synced candidate (no TTL wait).
    await waitFor("both replicas connected and ready", async () => {
      const s = await nodeStatus(a);
      return (s.replicas ?? []).filter((r) => r.ready && r.candidate).length === 2 ? true : undefined;
    });
    const stopStarted = performance.now();
    const stopped = a.stop();
    const next = await waitForPrimary([second, third], TTL_MS * 5);
    const handoffMs = performance.now() - stopStarted;
    await stopped;
    assert.match(a.lastRunLogs(), /lease handed off before stopping/);
    await sqlite(next.dbPath(DB), "INSERT INTO t(v) VALUES ('after handoff');");
    await writeWal(next, "after handoff");
    await waitConverged(next, [next === second ? third : second], DB);
    await waitConverged(next, [next === second ? third : second], WAL_DB);
    // Lease metrics on the node that took the lease last.
    const metrics = await (await fetch(`${next.httpUrl}/metrics`)).text();
    assert.match(metrics, /^litefs_lease_acquired_total [1-9]/m);
    assert.match(metrics, /^litefs_is_primary 1/m);
    console.log(`handoff on SIGTERM (stop → other node primary by /status): ${Math.round(handoffMs)} ms`);
  },
);
