// A replica process stopped (SIGSTOP, or any stall) for longer than its stream's idle timeout (5 s)
// keeps its stream when it runs again: the primary's heartbeats are waiting in its socket, and the
// client reads them before it judges the stream idle (replica-client.ts `nextWithin`). Before, the
// idle timer, due first, dropped a healthy stream (ESTREAMIDLE) and the replica reconnected.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import Database from "better-sqlite3";

import { Cluster, logRecords, readPosText, waitForRecords, waitForSync } from "./cluster.js";

const DB = "stopped.db";
let cluster: Cluster | undefined;
after(async () => {
  await cluster?.cleanup();
});

test("a replica stopped past the idle timeout keeps its stream: the heartbeats wait in its socket", async () => {
  cluster = await Cluster.start({ replicas: 1 });
  const { primary } = cluster;
  const [replica] = cluster.replicas;
  const writer = new Database(primary.dbPath(DB));
  try {
    writer.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    await waitForSync(primary, [replica], [DB]);
    const connects = logRecords(replica, "connected to the primary").length;
    assert.ok(connects >= 1);

    process.kill(replica.pid, "SIGSTOP");
    try {
      await new Promise((resolve) => setTimeout(resolve, 3000));
      writer.exec("INSERT INTO t (v) VALUES ('while stopped')");
      await new Promise((resolve) => setTimeout(resolve, 4000)); // 7 s stopped in all
    } finally {
      process.kill(replica.pid, "SIGCONT");
    }
    writer.exec("INSERT INTO t (v) VALUES ('after')");
    await waitForSync(primary, [replica], [DB]);
    // Every log line up to the apply of the final position has come through the pipe.
    const finalTxid = readPosText(primary, DB)!.slice(0, 16);
    await waitForRecords(replica, "replicated transaction applied", 1, (r) => r.txid === finalTxid);

    const failures = logRecords(replica, "replication stream ended with an error; reconnecting");
    assert.deepEqual(
      failures.map((r) => r.code),
      [],
      "the stream was dropped after the stop",
    );
    assert.equal(logRecords(replica, "connected to the primary").length, connects, "the replica reconnected");
  } finally {
    writer.close();
  }
});
