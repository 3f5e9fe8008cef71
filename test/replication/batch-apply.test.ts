// A replica that falls behind applies the transactions waiting in its stream in batches
// (node/replica-applier.ts `more`, api/replica-client.ts): a replica stopped (SIGSTOP) while the
// primary commits 300 WAL transactions, then continued, finds them queued in its socket; it must end
// byte-identical to the primary, at the primary's position, having applied several transactions per
// lock round — and a reader on the replica meanwhile never sees a row count that no transaction
// committed (every transaction adds exactly 10 rows).

import assert from "node:assert/strict";
import { after, test } from "node:test";

import Database from "better-sqlite3";

import { REPLICA_RUN_MAX_FILES } from "../../src/store/replica-apply.js";

import {
  assertSameDatabase,
  Cluster,
  logRecords,
  readPosText,
  waitForRecords,
  waitForSync,
} from "./cluster.js";

const DB = "batch.db";
let cluster: Cluster | undefined;
after(async () => {
  await cluster?.cleanup();
});

test("a replica behind by hundreds of transactions catches up in batches, whole and byte-identical", async () => {
  cluster = await Cluster.start({ replicas: 1 });
  const { primary } = cluster;
  const [replica] = cluster.replicas;
  const writer = new Database(primary.dbPath(DB));
  try {
    writer.pragma("journal_mode = wal");
    writer.pragma("synchronous = normal");
    writer.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
    await waitForSync(primary, [replica], [DB]);

    process.kill(replica.pid, "SIGSTOP");
    let stopped = true;
    try {
      const insert = writer.prepare("INSERT INTO t (v) VALUES (randomblob(100))");
      const tx = writer.transaction(() => {
        for (let i = 0; i < 10; i++) insert.run();
      });
      for (let i = 0; i < 300; i++) tx();
      process.kill(replica.pid, "SIGCONT");
      stopped = false;
    } finally {
      if (stopped) process.kill(replica.pid, "SIGCONT");
    }

    // A reader on the replica while it catches up: only whole transactions.
    const reader = new Database(replica.dbPath(DB), { readonly: true, fileMustExist: true });
    const counts = new Set<number>();
    try {
      const count = reader.prepare("SELECT count(*) AS n FROM t");
      const deadline = Date.now() + 20_000;
      for (;;) {
        const n = (count.get() as { n: number }).n;
        counts.add(n);
        if (n === 3000) break;
        assert.ok(Date.now() < deadline, `the replica stayed at ${n} rows`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    } finally {
      reader.close();
    }
    for (const n of counts) assert.equal(n % 10, 0, `a reader saw ${n} rows: part of a transaction`);
    writer.pragma("wal_checkpoint(TRUNCATE)"); // the primary's database file then holds every page
    await waitForSync(primary, [replica], [DB]);
    assertSameDatabase(primary, replica, DB, "after the catch-up");

    // The replica's log comes through a pipe this process reads only when its event loop turns, which
    // it may not have done since SIGCONT (the reader's first count can be 3000 already): wait for the
    // record of the apply that reached the final position, so that every record before it is in.
    const finalTxid = readPosText(primary, DB)!.slice(0, 16);
    await waitForRecords(replica, "replicated transaction applied", 1, (r) => r.txid === finalTxid);
    const flushes = logRecords(replica, "replicated transaction applied");
    const batched = flushes.filter((r) => Number(r.transactions) > 1);
    const most = Math.max(...flushes.map((r) => Number(r.transactions)));
    assert.ok(batched.length > 0, `no batch: ${flushes.length} applies one by one`);
    // The stream is read far enough ahead (replica-client.ts STREAM_READ_AHEAD_BYTES) that a run can
    // reach its own limit: with Node's default buffer a read held ~80 KiB, at most ~10 of these files.
    assert.ok(
      most >= REPLICA_RUN_MAX_FILES,
      `batches of at most ${most} transactions (sizes: ${flushes.map((r) => r.transactions).join(" ")})`,
    );
  } finally {
    writer.close();
  }
});
