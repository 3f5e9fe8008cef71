// A handoff to a replica that is still applying a backlog from the old primary, on a real etcd: the target
// is frozen (SIGSTOP) while the primary commits 200 WAL transactions of ~100 KiB each (more than the
// target reads ahead plus what the sockets hold, so that the HANDOFF frame is still outside the target's
// process when it acquires), asked to promote itself while still frozen, and continued. The old primary's
// etcd transaction then goes out while a backlog is still in flight to the target, so the target's lease
// watch reports "no holder" — and its acquire through the reservation succeeds — before it reads the
// HANDOFF frame behind them. The target must keep the stream that carries them (src/node/litefs-node.ts
// `awaitingHandoffFrom`): reconnecting threw away what it had not read yet and had the old primary read it
// all back from its LTX files (session 17: a 306 ms handoff in bench/failover.ts). It ends primary with
// every transaction, on one connection.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import Database from "better-sqlite3";

import { EtcdCluster } from "../support/etcd.js";
import type { LitefsNode } from "../support/litefs-node.js";
import { nodeStatus, startEtcdNode, waitConverged, waitFor } from "./lease-kit.js";

const DB = "backlog.db";
const TRANSACTIONS = 200;
const ROWS = 100;

function count(logs: string, msg: string): number {
  return logs.split("\n").filter((line) => line.includes(`"msg":"${msg}"`)).length;
}

test(
  "a handoff target applying a backlog keeps its stream to the old primary until the HANDOFF frame",
  { timeout: 90_000 },
  async (t) => {
    const etcd = await EtcdCluster.start({ label: "handoff-backlog" });
    const nodes: LitefsNode[] = [];
    after(async () => {
      for (const node of nodes) await node.cleanup().catch(() => undefined);
      await etcd.stop();
    });
    const key = "/litefs/handoff-backlog";
    const old = await startEtcdNode("old", etcd.endpoints, key);
    nodes.push(old);
    const target = await startEtcdNode("target", etcd.endpoints, key);
    nodes.push(target);
    assert.equal((await nodeStatus(old)).role, "primary", old.logs());

    const writer = new Database(old.dbPath(DB));
    t.after(() => writer.close());
    writer.pragma("journal_mode = wal");
    writer.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
    await waitConverged(old, [target], DB);
    const connectsBefore = count(target.lastRunLogs(), "connected to the primary");

    process.kill(target.pid, "SIGSTOP");
    let frozen = true;
    const thaw = (): void => {
      if (frozen && target.running) process.kill(target.pid, "SIGCONT");
      frozen = false;
    };
    t.after(thaw);
    const insert = writer.prepare("INSERT INTO t (v) VALUES (randomblob(1000))");
    const tx = writer.transaction(() => {
      for (let i = 0; i < ROWS; i++) insert.run();
    });
    for (let i = 0; i < TRANSACTIONS; i++) tx();
    // `litefs promote`'s request (POST /promote), sent while the target is frozen: it waits in the
    // target's socket and is served as soon as the target runs, with the backlog still in flight. (A
    // CLI process started after the thaw gave the target the half second it needed to catch up, once
    // on a fresh machine's CI run, and the scenario did not happen.)
    const promoting = fetch(`${target.httpUrl}/promote`, { method: "POST" });
    await sleep(300);
    thaw();
    const promoted = await promoting;
    assert.equal(promoted.status, 200, (await promoted.text()) + target.lastRunLogs() + old.lastRunLogs());
    assert.equal((await nodeStatus(target)).role, "primary");
    const rows = Number((writer.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n);
    assert.equal(rows, TRANSACTIONS * ROWS);

    // The scenario happened: the target took the lease before it read the frame (else this test
    // checks nothing).
    const targetLogs = target.lastRunLogs();
    assert.equal(
      count(targetLogs, "lease handed over; waiting for the old primary's last transactions"),
      1,
      `the target read HANDOFF before its acquire; no backlog to keep:\n${targetLogs.slice(-4000)}`,
    );
    // …and it kept the stream: no new connection, nothing served again from the old primary's files.
    assert.equal(
      count(targetLogs, "connected to the primary"),
      connectsBefore,
      `the target reconnected during the handoff:\n${targetLogs.slice(-4000)}`,
    );
    assert.equal(
      count(
        old.lastRunLogs(),
        "the replica this node handed its lease to reconnected: sending the handoff target what it missed, then HANDOFF",
      ),
      0,
    );

    // Every transaction is on the new primary, and the old one follows it.
    const reader = new Database(target.dbPath(DB), { readonly: true, fileMustExist: true });
    try {
      assert.equal((reader.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, rows);
    } finally {
      reader.close();
    }
    writer.close();
    await waitFor("the old primary follows the target", async () => {
      const s = await nodeStatus(old);
      return s.role === "replica" && s.primary.url === target.httpUrl ? true : undefined;
    });
    const next = new Database(target.dbPath(DB));
    try {
      next.pragma("busy_timeout = 5000");
      next.exec("INSERT INTO t (v) VALUES (randomblob(100))");
    } finally {
      next.close();
    }
    await waitConverged(target, [old], DB);
  },
);
