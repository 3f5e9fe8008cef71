// HALT locks with real nodes (one static primary, two replicas, `litefs mount` processes): the sqlite3
// shell writes on a replica after a helper takes the lock on `<db>-lock`; the transaction is on the
// primary and every replica with byte-identical LTX chains; two replicas contend; the primary's own
// writers wait while a replica holds the lock; `litefs run --with-halt-lock-on` runs a migration.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  assertSameDatabase,
  Cluster,
  replicaConfig,
  waitForLog,
  waitForSync,
} from "../replication/cluster.js";
import { LitefsNode } from "../support/litefs-node.js";
import { runCommand, runLitefsCli } from "../support/litefs-cli.js";
import { SQLITE3_CLI } from "../support/paths.js";
import { querySql } from "../support/sql-clients.js";
import { SqlSession } from "../mountfs/role-change-kit.js";
import {
  assertSameLtxChains,
  holdHaltLock,
  killHelpers,
  runUnderHaltLock,
  settledWithin,
  withKernelLocks,
  withTableLocks,
} from "./halt-kit.js";

const DB = "app.db";

async function sqlite(
  path: string,
  sql: string,
  timeoutMs = 10_000,
): Promise<{ code: number | null; out: string }> {
  const r = await runCommand(SQLITE3_CLI, ["-cmd", `.timeout ${timeoutMs}`, path, sql], {
    timeoutMs: 60_000,
  });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** `litefs run --with-halt-lock-on DB -- sqlite3 <node's DB> SQL`, through `node`'s API. */
function sqliteUnderHaltRun(node: LitefsNode, sql: string): ReturnType<typeof runLitefsCli> {
  return runLitefsCli([
    "run",
    "--url",
    node.httpUrl,
    "--with-halt-lock-on",
    DB,
    "--",
    SQLITE3_CLI,
    node.dbPath(DB),
    sql,
  ]);
}

async function count(path: string, table = "t"): Promise<number> {
  const rows = await querySql("sqlite3", path, `SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0].n);
}

/** Starts a cluster, creates table t with one row on the primary and waits until every replica has it. */
async function startWithTable(start: () => Promise<Cluster>): Promise<Cluster> {
  const cluster = await start();
  try {
    const made = await sqlite(cluster.primary.dbPath(DB), "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    assert.equal(made.code, 0, made.out);
    await waitForSync(cluster.primary, cluster.replicas, [DB]);
    return cluster;
  } catch (err) {
    await cluster.cleanup(); // the caller never gets it to clean up
    throw err;
  }
}

// Every client-side case runs with both lock modes: with kernel locks `<db>-lock` is a link into the
// node's lock-file mount, which answers fcntl locks (mountfs/lock-file-system.ts).
for (const mode of ["table", "kernel"] as const) {
  const withLocks = mode === "table" ? withTableLocks : withKernelLocks;
  describe(`HALT lock (${mode} locks)`, { timeout: 120_000 }, () => {
    let cluster: Cluster;

    before(async () => {
      cluster = await startWithTable(() => withLocks(() => Cluster.start({ replicas: 2 })));
    });

    after(async () => {
      killHelpers();
      await cluster?.cleanup();
    });

    test("sqlite3 on a replica writes under the lock (POSIX, rollback journal)", async () => {
      const [replica] = cluster.replicas;
      const refused = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (0);");
      assert.notEqual(refused.code, 0, "a replica without the HALT lock must refuse writes");
      assert.match(refused.out, /readonly/);

      const r = await runUnderHaltLock(replica, DB, [
        SQLITE3_CLI,
        replica.dbPath(DB),
        "INSERT INTO t VALUES (2);",
      ]);
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${cluster.logs()}`);
      assert.match(r.stdout, /locked\n[^]*unlocked/);
      assert.equal(await count(cluster.primary.dbPath(DB)), 2, cluster.logs());
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
      for (const node of cluster.replicas) assert.equal(await count(node.dbPath(DB)), 2);
      assertSameLtxChains([cluster.primary, ...cluster.replicas], DB, "after a HALT write");
      for (const node of cluster.replicas)
        assertSameDatabase(cluster.primary, node, DB, "after a HALT write");
      const primaryMetrics = await (await fetch(`${cluster.primary.httpUrl}/metrics`)).text();
      assert.match(primaryMetrics, /litefs_halt_events_total\{event="applied"\} 1\b/);
      assert.match(primaryMetrics, /litefs_halt_locks_held 0\b/);
      const replicaMetrics = await (await fetch(`${replica.httpUrl}/metrics`)).text();
      assert.match(replicaMetrics, /litefs_halt_events_total\{event="confirmed"\} 1\b/);
    });

    test("a connection opened on a replica before the lock writes under it (rollback journal)", async (t) => {
      const [replica] = cluster.replicas;
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
      const closers: Array<() => unknown> = [];
      t.after(() => closers.forEach((close) => close()));
      const app = new SqlSession((close) => closers.push(close), `file:${replica.dbPath(DB)}`);
      const [[before]] = await app.ok("SELECT count(*) FROM t");
      const refused = await app.run("INSERT INTO t VALUES (3)");
      assert.ok(!refused.ok, "a replica without the HALT lock must refuse writes");
      assert.match(refused.code ?? "", /^SQLITE_READONLY/, refused.error);

      const held = holdHaltLock(replica, DB);
      assert.equal(await held.outcome, "locked");
      try {
        await app.ok("INSERT INTO t VALUES (3)");
        // A HALT commit is applied on the primary before it returns.
        assert.equal(await count(cluster.primary.dbPath(DB)), Number(before) + 1, cluster.logs());
        await app.ok("DELETE FROM t WHERE rowid = last_insert_rowid()"); // the next tests count rows
      } finally {
        await held.release();
      }
      const again = await app.run("INSERT INTO t VALUES (4)");
      assert.ok(!again.ok, "the lock was released: the replica refuses again");
      assert.match(again.code ?? "", /^SQLITE_READONLY/, again.error);
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
      assert.deepEqual(await app.ok("SELECT count(*) FROM t"), [[before]]);
      assertSameLtxChains([cluster.primary, ...cluster.replicas], DB, "after a HALT write");
    });

    test("two replicas contend; the primary's own writers wait while a replica holds the lock", async () => {
      const [first, second] = cluster.replicas;
      const held = holdHaltLock(first, DB);
      try {
        assert.equal(await held.outcome, "locked", cluster.logs());
        const busy = await runUnderHaltLock(second, DB, ["true"], { wait: false });
        assert.equal(busy.code, 3, busy.stdout + busy.stderr);
        assert.equal(busy.stdout.trim(), "busy");

        const waiting = holdHaltLock(second, DB, { kind: "ofd" });
        assert.equal(await settledWithin(waiting.outcome, 500), "pending", "the second replica must wait");

        const local = await sqlite(cluster.primary.dbPath(DB), "INSERT INTO t VALUES (-1);", 300);
        assert.notEqual(
          local.code,
          0,
          "a primary writer must not get through while a replica holds the lock",
        );
        assert.match(local.out, /locked|busy/i);

        // The holder's node lets any local client write while it holds the lock.
        const write = await sqlite(first.dbPath(DB), "INSERT INTO t VALUES (3);");
        assert.equal(write.code, 0, write.out + cluster.logs());
        await held.release();
        assert.equal(await waiting.outcome, "locked", cluster.logs());
        const second3 = await sqlite(second.dbPath(DB), "INSERT INTO t VALUES (4);");
        assert.equal(second3.code, 0, second3.out + cluster.logs());
        await waiting.release();
      } finally {
        await held.release();
      }
      const after = await sqlite(cluster.primary.dbPath(DB), "INSERT INTO t VALUES (5);");
      assert.equal(after.code, 0, after.out);
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
      assert.equal(await count(cluster.primary.dbPath(DB)), 5);
      assertSameLtxChains([cluster.primary, ...cluster.replicas], DB, "after contention");
    });

    test("two processes on one replica: the second gets the lock when the first dies holding it", async () => {
      const [replica] = cluster.replicas;
      const first = holdHaltLock(replica, DB);
      assert.equal(await first.outcome, "locked", cluster.logs());
      const second = holdHaltLock(replica, DB, { kind: "ofd" });
      try {
        assert.equal(await settledWithin(second.outcome, 300), "pending");
        await first.kill(); // no unlock: closing its file releases the lock
        assert.equal(await settledWithin(second.outcome, 15_000), "locked", cluster.logs());
        const write = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (6);");
        assert.equal(write.code, 0, write.out + cluster.logs());
      } finally {
        await first.release();
        await second.release();
      }
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
    });

    test("litefs run --with-halt-lock-on runs a migration from a replica", async () => {
      const [, replica] = cluster.replicas;
      const r = await sqliteUnderHaltRun(
        replica,
        "CREATE TABLE migrated(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO migrated(note) VALUES ('v2');",
      );
      assert.equal(r.code, 0, r.stdout + r.stderr + cluster.logs());
      const rows = await querySql("sqlite3", cluster.primary.dbPath(DB), "SELECT note FROM migrated");
      assert.deepEqual(rows, [{ note: "v2" }]);
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
      for (const node of cluster.replicas) assert.equal(await count(node.dbPath(DB), "migrated"), 1);

      const failing = await runLitefsCli([
        "run",
        "--url",
        replica.httpUrl,
        "--with-halt-lock-on",
        DB,
        "--",
        "false",
      ]);
      assert.equal(failing.code, 1, "litefs run exits with the command's code");
      const skipped = await runLitefsCli(["run", "--url", replica.httpUrl, "--if-candidate", "--", "false"]);
      assert.equal(skipped.code, 0, skipped.stdout + skipped.stderr);
      assert.match(skipped.stdout, /not a lease candidate/);
      const promoted = await runLitefsCli([
        "run",
        "--url",
        cluster.primary.httpUrl,
        "--promote",
        "--",
        "true",
      ]);
      assert.equal(promoted.code, 0, `--promote on the primary is a no-op: ${promoted.stderr}`);
      const refused = await runLitefsCli(["run", "--url", replica.httpUrl, "--promote", "--", "true"]);
      assert.equal(refused.code, 1, "a static lease cannot be moved: the command must not run");
      assert.match(refused.stderr, /promote/);
    });

    test("the HALT routes refuse what they must, with stable codes", async () => {
      const [replica] = cluster.replicas;
      const call = async (base: string, method: string, route: string, body?: Uint8Array) => {
        const res = await fetch(`${base}${route}`, { method, body }).catch((err: unknown) => {
          throw new Error(`${method} ${route}: ${String(err)}\n${cluster.logs()}`);
        });
        return { status: res.status, body: (await res.json()) as { code?: string; error?: string } };
      };
      const onReplica = await call(replica.httpUrl, "POST", `/halt?db=${DB}`);
      assert.deepEqual([onReplica.status, onReplica.body.code], [503, "ENOTPRIMARY"]);
      const unknown = await call(
        cluster.primary.httpUrl,
        "POST",
        `/tx?db=${DB}&halt=nope&txid=1`,
        new Uint8Array(8),
      );
      assert.deepEqual([unknown.status, unknown.body.code], [409, "EHALTGONE"]);
      const badTxid = await call(cluster.primary.httpUrl, "POST", `/tx?db=${DB}&halt=nope&txid=zz`);
      assert.deepEqual([badTxid.status, badTxid.body.code], [400, "EHALTREQUEST"]);
      const noDb = await call(cluster.primary.httpUrl, "POST", "/halt?db=missing.db");
      assert.equal(noDb.status, 404);

      // A granted halt: garbage as a transaction is refused and changes nothing; the halt is released.
      const before = cluster.primary.readPos(DB);
      const grant = await call(cluster.primary.httpUrl, "POST", `/halt?db=${DB}&wait=5000`);
      assert.equal(grant.status, 200, JSON.stringify(grant.body));
      const { id, txid } = grant.body as { id: string; txid: string };
      const next = (BigInt("0x" + txid) + 1n).toString(16);
      const garbage = await call(
        cluster.primary.httpUrl,
        "POST",
        `/tx?db=${DB}&halt=${id}&txid=${next}`,
        new Uint8Array(200).fill(7),
      );
      assert.deepEqual([garbage.status, garbage.body.code], [400, "EHALTREQUEST"]);
      const stale = await call(
        cluster.primary.httpUrl,
        "POST",
        `/tx?db=${DB}&halt=${id}&txid=1`,
        new Uint8Array(8),
      );
      assert.deepEqual([stale.status, stale.body.code], [409, "EHALTPOS"]);
      const released = await call(cluster.primary.httpUrl, "DELETE", `/halt?db=${DB}&halt=${id}`);
      assert.deepEqual(released.body, { released: true });
      assert.deepEqual(cluster.primary.readPos(DB), before);
      const write = await sqlite(cluster.primary.dbPath(DB), "INSERT INTO t VALUES (7);", 2000);
      assert.equal(write.code, 0, "the released halt no longer blocks the primary's writers: " + write.out);
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
    });

    test("WAL mode, OFD lock: the write reaches every node and later primary writes still apply", async () => {
      const wal = await sqlite(cluster.primary.dbPath(DB), "PRAGMA journal_mode=WAL;");
      assert.equal(wal.code, 0, wal.out);
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
      const [first, second] = cluster.replicas;
      const before = await count(cluster.primary.dbPath(DB));
      const r = await runUnderHaltLock(
        second,
        DB,
        [SQLITE3_CLI, second.dbPath(DB), "INSERT INTO t VALUES (10); INSERT INTO t VALUES (11);"],
        { kind: "ofd" },
      );
      assert.equal(r.code, 0, r.stdout + r.stderr + cluster.logs());
      assert.equal(await count(cluster.primary.dbPath(DB)), before + 2, cluster.logs());
      const primaryWrite = await sqlite(cluster.primary.dbPath(DB), "INSERT INTO t VALUES (12);");
      assert.equal(primaryWrite.code, 0, primaryWrite.out);
      const again = await runUnderHaltLock(first, DB, [
        SQLITE3_CLI,
        first.dbPath(DB),
        "INSERT INTO t VALUES (13);",
      ]);
      assert.equal(again.code, 0, again.stdout + again.stderr + cluster.logs());
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
      for (const node of [cluster.primary, ...cluster.replicas]) {
        assert.equal(await count(node.dbPath(DB)), before + 4, cluster.logs());
        const check = await querySql("sqlite3", node.dbPath(DB), "PRAGMA integrity_check");
        assert.deepEqual(check, [{ integrity_check: "ok" }]);
      }
      assertSameLtxChains([cluster.primary, ...cluster.replicas], DB, "WAL");
    });
  });

  describe(`HALT lock: expiry and a primary that moves on (${mode} locks)`, { timeout: 120_000 }, () => {
    const EXPIRY_MS = 1500;
    let primary: LitefsNode;
    let replica: LitefsNode;
    const logs = (): string =>
      `${primary.logs().slice(-5000)}\n==== replica ====\n${replica.logs().slice(-5000)}`;

    before(async () => {
      primary = await withLocks(() =>
        LitefsNode.start({ env: { ...process.env, LITEFS_HALT_EXPIRY_MS: String(EXPIRY_MS) } }),
      );
      replica = await withLocks(() => LitefsNode.start({ config: replicaConfig(primary) }));
      const made = await sqlite(primary.dbPath(DB), "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
      assert.equal(made.code, 0, made.out);
      await waitForSync(primary, [replica], [DB]);
    });

    after(async () => {
      killHelpers();
      if (replica?.running) process.kill(replica.pid, "SIGCONT");
      await replica?.cleanup();
      await primary?.cleanup();
    });

    test("a holder that stops renewing loses the lock after the expiry", async () => {
      const held = holdHaltLock(replica, DB);
      try {
        assert.equal(await held.outcome, "locked", logs());
        const write = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (2);");
        assert.equal(write.code, 0, write.out + logs());
        process.kill(replica.pid, "SIGSTOP"); // the replica can no longer renew
        try {
          await waitForLog(primary, /HALT lock expired/, 10_000);
          const local = await sqlite(primary.dbPath(DB), "INSERT INTO t VALUES (3);");
          assert.equal(local.code, 0, local.out);
        } finally {
          process.kill(replica.pid, "SIGCONT");
        }
        // The replica's renewal now fails: its clients can no longer write, and nothing they try diverges.
        await waitForLog(replica, /HALT lock renewal failed: local|not confirmed/, 10_000);
        const refused = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (-1);");
        assert.notEqual(refused.code, 0, "a replica whose HALT lock expired must not write");
      } finally {
        await held.release();
      }
      await waitForSync(primary, [replica], [DB]);
      assert.equal(await count(replica.dbPath(DB)), 3);
      assertSameDatabase(primary, replica, DB, "after the expiry");
    });

    test("a primary restart while the lock is held fails the replica's next commit cleanly", async () => {
      const xs = async (node: LitefsNode): Promise<unknown[]> =>
        (await querySql("sqlite3", node.dbPath(DB), "SELECT x FROM t ORDER BY rowid")).map((r) => r.x);
      const before = await xs(primary);
      const held = holdHaltLock(replica, DB, { kind: "ofd" });
      try {
        assert.equal(await held.outcome, "locked", logs());
        const first = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (4);");
        assert.equal(first.code, 0, first.out + logs());
        await primary.stop();
        await primary.restart();
        const second = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (5);");
        assert.notEqual(second.code, 0, "the commit must fail: the primary forgot the HALT lock\n" + logs());
      } finally {
        await held.release();
      }
      const onPrimary = await sqlite(primary.dbPath(DB), "INSERT INTO t VALUES (6);");
      assert.equal(onPrimary.code, 0, onPrimary.out);
      await waitForSync(primary, [replica], [DB]);
      assert.deepEqual(
        await xs(replica),
        [...before, 4, 6],
        "the refused transaction is nowhere, the acknowledged one everywhere",
      );
      assertSameDatabase(primary, replica, DB, "after the primary's restart");
      // Either the renewal found the halt gone first, or the commit was refused: both fail the client.
      assert.match(replica.lastRunLogs(), /HALT lock renewal failed: local|HALT commit not confirmed/);
    });
  });
}

describe("HALT lock with kernel locks (fuse.kernel-locks: true)", { timeout: 120_000 }, () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startWithTable(() => withKernelLocks(() => Cluster.start({ replicas: 1 })));
  });

  after(async () => {
    await cluster?.cleanup();
  });

  test("a replica refuses writes; litefs run --with-halt-lock-on writes through it in both journal modes", async () => {
    const [replica] = cluster.replicas;
    assert.match(cluster.primary.logs(), /"mode":"kernel"/, "the nodes run with kernel locks");
    const refused = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (2);", 0);
    assert.notEqual(refused.code, 0, "a write on a replica without the HALT lock must fail");
    assert.match(refused.out, /readonly|read-only/i);

    for (const [mode, note] of [
      ["DELETE", "rollback"],
      ["WAL", "wal"],
    ] as const) {
      if (mode === "WAL") {
        const wal = await sqlite(cluster.primary.dbPath(DB), "PRAGMA journal_mode=WAL;");
        assert.equal(wal.code, 0, wal.out);
        await waitForSync(cluster.primary, cluster.replicas, [DB]);
      }
      const r = await sqliteUnderHaltRun(
        replica,
        `CREATE TABLE IF NOT EXISTS migrated(note TEXT); INSERT INTO migrated VALUES ('${note}');`,
      );
      assert.equal(r.code, 0, r.stdout + r.stderr + cluster.logs());
      await waitForSync(cluster.primary, cluster.replicas, [DB]);
    }
    const rows = await querySql(
      "sqlite3",
      cluster.primary.dbPath(DB),
      "SELECT note FROM migrated ORDER BY note",
    );
    assert.deepEqual(rows, [{ note: "rollback" }, { note: "wal" }]);
    // The primary's own writers go on once the lock is gone (no node lock left behind).
    const after = await sqlite(cluster.primary.dbPath(DB), "INSERT INTO t VALUES (3);", 0);
    assert.equal(after.code, 0, after.out + cluster.logs());
    await waitForSync(cluster.primary, cluster.replicas, [DB]);
    assertSameDatabase(cluster.primary, cluster.replicas[0], DB, "after HALT writes with kernel locks");
  });

  test("a client's own fcntl on `<db>-lock` (a link into the lock-file mount) is the HALT lock", async () => {
    const [replica] = cluster.replicas;
    const lockPath = replica.dbPath(DB) + "-lock";
    assert.equal(fs.readlinkSync(lockPath), path.join(replica.dataDir, "locks", DB + "-lock"));
    const before = await count(cluster.primary.dbPath(DB));

    // POSIX lock, then sqlite3 writes on the replica; the primary has the row.
    const r = await runUnderHaltLock(replica, DB, [
      SQLITE3_CLI,
      replica.dbPath(DB),
      "INSERT INTO t VALUES (7);",
    ]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${cluster.logs()}`);
    assert.equal(await count(cluster.primary.dbPath(DB)), before + 1, cluster.logs());

    // An OFD lock held by one client: the node's own HALT (`litefs run`) waits for it — both ways of
    // taking the lock meet in the same table — and gets it once the client lets go.
    const held = holdHaltLock(replica, DB, { kind: "ofd" });
    let run: Promise<{ code: number | null; stdout: string; stderr: string }> | undefined;
    try {
      assert.equal(await held.outcome, "locked", cluster.logs());
      run = sqliteUnderHaltRun(replica, "INSERT INTO t VALUES (8);");
      assert.equal(await settledWithin(run, 1000), "pending", "litefs run must wait for the client's lock");
    } finally {
      await held.release();
    }
    const ran = await run;
    assert.equal(ran.code, 0, ran.stdout + ran.stderr + cluster.logs());
    await waitForSync(cluster.primary, cluster.replicas, [DB]);
    assert.equal(await count(cluster.replicas[0].dbPath(DB)), before + 2);
    assertSameDatabase(cluster.primary, replica, DB, "after fcntl HALT writes with kernel locks");
    // Released on close: a replica without the lock refuses writes again.
    const refused = await sqlite(replica.dbPath(DB), "INSERT INTO t VALUES (9);", 0);
    assert.notEqual(refused.code, 0, "the HALT lock must be gone after the holder closed its file");
  });
});
