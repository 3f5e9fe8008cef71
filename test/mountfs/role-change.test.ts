// Role changes at run time inside one process: mounts of a Store whose role and commit gate the test
// flips, driven by real SQLite clients in child processes (Python's sqlite3 for a transaction held open
// across the flip, the sqlite3 shell for everything else).
//
// - A commit refused by the gate (mayCommit false, or a demotion while the transaction is open) fails
//   for the client, captures nothing, leaves the database at its last committed state with no hot
//   journal (a fresh read-only connection works) — in DELETE, TRUNCATE, PERSIST and WAL — and the next
//   allowed commit continues the chain (TXID+1) which still replays to the database byte for byte.
// - `.primary`: a missing one is an error, not a cached negative entry (a named primary shows at once).
// - Promotion of a replica that applied replicated transactions, then demotion of the old primary,
//   which then applies the new primary's transactions over its own history — in every journal mode.

import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";

import { runSqlJob, SqlClientError } from "../support/sql-clients.js";
import { makeTempDir } from "../support/temp-dir.js";
import { readLtxHeader } from "../support/ltx-chain.js";
import {
  cleanupStack,
  JOURNAL_MODES,
  readOnlyView,
  refusedCommitCase,
  removeUnmountedTempDir,
  rows,
  shell,
  SqlSession,
  TestMount,
  txidOf,
} from "./role-change-kit.js";

for (const mode of JOURNAL_MODES) {
  test(`${mode}: a commit refused by mayCommit fails cleanly and captures nothing`, async (t) => {
    await refusedCommitCase(t, mode, "mayCommit");
  });
}

test("WAL: a demoted primary keeps an empty -wal for its readers; a missing one is never cached", async (t) => {
  const defer = cleanupStack(t);
  const root = makeTempDir("replica-wal");
  defer(() => removeUnmountedTempDir(root));
  const node = await TestMount.start(defer, root, "a", "primary");
  const walSeen = (db: string): Promise<boolean> =>
    fsp.access(node.path(db) + "-wal").then(
      () => true,
      () => false,
    );
  for (const db of ["hidden.db", "demoted.db"]) {
    await shell(node.path(db), "WAL", [
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
      "INSERT INTO t (v) VALUES ('x')",
    ]);
    // The shell's last connection closed: SQLite checkpointed and removed the -wal.
    assert.equal(await walSeen(db), false, db);
  }
  // Created behind the kernel's back, as a turn to replica does: a cached "no -wal" (the mount's 1 s
  // negative entries) would hide it; a WAL-mode database's missing -wal is an error, never cached.
  node.store.db("hidden.db")!.create("wal");
  assert.equal(await walSeen("hidden.db"), true, "the kernel answered from a cached negative entry");

  // A read-only connection cannot create the -wal on a replica: the turn to replica does.
  await node.setRole("replica");
  assert.equal((await fsp.stat(node.path("demoted.db") + "-wal")).size, 0);
  assert.deepEqual(await readOnlyView(node.path("demoted.db")), { integrity: "ok", rows: 1 });
});

for (const mode of ["DELETE", "WAL"] as const) {
  test(`${mode}: a demotion while a write transaction is open refuses its commit`, async (t) => {
    await refusedCommitCase(t, mode, "demote");
  });
}

for (const mode of JOURNAL_MODES) {
  test(`${mode}: a replica is promoted in place, and the old primary demoted applies its transactions`, async (t) => {
    const defer = cleanupStack(t);
    const root = makeTempDir("role-swap");
    defer(() => removeUnmountedTempDir(root));
    const scratch = path.join(root, "scratch");
    fs.mkdirSync(scratch);
    const a = await TestMount.start(defer, root, "a", "primary");
    const b = await TestMount.start(defer, root, "b", "replica");
    const db = `swap-${mode.toLowerCase()}.db`;

    await shell(a.path(db), mode, ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]);
    // A connection of a's app stays open across the demotion: in WAL mode it keeps a's WAL (with
    // committed frames) alive and its -shm mapped, and afterwards it must see the new primary's
    // transactions (the applier publishes the wal-index header behind the kernel, never through the
    // mount: wal-index-publisher.ts).
    const appOnA = new SqlSession(defer, `file:${a.path(db)}`);
    assert.deepEqual(await appOnA.ok("SELECT count(*) FROM t"), [[0]]);
    await shell(a.path(db), mode, [
      `INSERT INTO t (v) SELECT hex(randomblob(500)) FROM ${rows(50)}`,
      "UPDATE t SET v = 'a' WHERE id % 3 = 0",
    ]);
    assert.ok((await b.applyFrom(a, db)) >= 2);
    assert.equal(await b.pos(db), await a.pos(db));
    assert.deepEqual(await readOnlyView(b.path(db)), { integrity: "ok", rows: 50 });
    assert.equal(await b.mode(db), 0o444);
    // The inode the node names to its lock helper is the one the mount answers (kernel-node-locks.ts).
    assert.equal(b.fileSystem.inodeOf(db, "database"), fs.statSync(b.path(db)).ino);
    assert.equal(b.fileSystem.inodeOf("absent.db", "database"), undefined);
    await assert.rejects(shell(b.path(db), mode, ["INSERT INTO t (v) VALUES ('no')"]), (err: unknown) => {
      assert.ok(err instanceof SqlClientError);
      assert.match(err.stderr, /readonly|read-only|disk I\/O/i);
      return true;
    });

    // Hand the role over: a steps down (its commits refused from now on), b takes over in place.
    a.mayCommit = false;
    await a.setRole("replica");
    await b.setRole("primary");
    assert.equal(await b.mode(db), 0o666, "modes follow the role at once");
    assert.equal(await a.mode(db), 0o444);

    const handedOver = await b.pos(db);
    await shell(b.path(db), mode, [
      "INSERT INTO t (v) VALUES ('b1')",
      "DELETE FROM t WHERE id % 5 = 0",
      "UPDATE t SET v = hex(randomblob(900)) WHERE id % 7 = 1",
    ]);
    const bFiles = b.ltxFiles(db);
    const firstOwn = bFiles.find((f) => readLtxHeader(f).minTxid === txidOf(handedOver) + 1n);
    assert.ok(firstOwn !== undefined, "b's first own transaction is the next TXID");
    assert.equal(readLtxHeader(firstOwn).preApplyChecksum, handedOver.split("/")[1]);
    if (mode === "WAL") await shell(b.path(db), mode, ["PRAGMA wal_checkpoint(TRUNCATE)"]);
    await b.verifyChain(db, scratch);

    // a, written locally as primary, now applies b's transactions as a replica.
    assert.equal(await a.applyFrom(b, db), 3);
    assert.equal(await a.pos(db), await b.pos(db));
    const expected = await runSqlJob("sqlite3", {
      dbPath: b.path(db),
      queries: ["SELECT count(*) AS n, sum(length(v)) AS bytes FROM t"],
    });
    const seen = await runSqlJob("sqlite3", {
      dbPath: `file:${a.path(db)}?mode=ro`,
      queries: ["SELECT count(*) AS n, sum(length(v)) AS bytes FROM t", "PRAGMA integrity_check"],
    });
    assert.deepEqual(seen.results[0], expected.results[0]);
    assert.equal(seen.results[1][0].integrity_check, "ok");
    assert.deepEqual(await appOnA.ok("SELECT count(*), sum(length(v)) FROM t"), [
      [expected.results[0][0].n, expected.results[0][0].bytes],
    ]);
    assert.deepEqual(await appOnA.ok("PRAGMA integrity_check"), [["ok"]]);
    appOnA.close();
    await a.verifyChain(db, scratch);
    await assert.rejects(shell(a.path(db), mode, ["INSERT INTO t (v) VALUES ('no')"]), SqlClientError);
  });
}

for (const mode of JOURNAL_MODES) {
  const after =
    mode === "WAL" ? "stays read-only after a promotion" : "writes after a promotion, not reopened";
  test(`${mode}: a connection opened on a replica refuses writes with SQLITE_READONLY and ${after}`, async (t) => {
    const defer = cleanupStack(t);
    const root = makeTempDir("replica-conn");
    defer(() => removeUnmountedTempDir(root));
    const a = await TestMount.start(defer, root, "a", "primary");
    const b = await TestMount.start(defer, root, "b", "replica");
    const db = `conn-${mode.toLowerCase()}.db`;
    await shell(a.path(db), mode, [
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
      "INSERT INTO t (v) VALUES ('a1')",
    ]);
    await b.applyFrom(a, db);

    // An application's connection on the replica, opened before any promotion and kept.
    const app = new SqlSession(defer, `file:${b.path(db)}`);
    assert.deepEqual(await app.ok("SELECT count(*) FROM t"), [[1]]);
    const replicaPos = await b.pos(db);
    for (const sql of ["INSERT INTO t (v) VALUES ('no')", "CREATE TABLE u (x)", "DELETE FROM t"]) {
      const answer = await app.run(sql);
      assert.ok(!answer.ok, `${sql} succeeded on a replica`);
      assert.match(answer.code ?? "", /^SQLITE_READONLY/, `${sql}: ${answer.error}`);
      assert.match(answer.error, /readonly database/);
    }
    // BEGIN IMMEDIATE succeeds (on a read-write connection it only takes a lock), and the first write
    // in it is refused. (Held open, it would delay replication like any open transaction.)
    await app.ok("BEGIN IMMEDIATE");
    const inside = await app.run("INSERT INTO t (v) VALUES ('no')");
    assert.match(inside.ok ? "" : (inside.code ?? ""), /^SQLITE_READONLY/, JSON.stringify(inside));
    await app.ok("ROLLBACK");
    assert.equal(await b.pos(db), replicaPos, "a refused write changed the replica");
    assert.equal(b.ltxFiles(db).length, a.ltxFiles(db).length);
    // The refusals left no lock or journal behind: the replica applies, the connection sees it.
    await shell(a.path(db), mode, ["INSERT INTO t (v) VALUES ('a2')"]);
    assert.equal(await b.applyFrom(a, db), 1);
    assert.deepEqual(await app.ok("SELECT count(*) FROM t"), [[2]]);
    assert.deepEqual(await readOnlyView(b.path(db)), { integrity: "ok", rows: 2 });

    a.mayCommit = false;
    await a.setRole("replica");
    await b.setRole("primary");
    const written = await app.run("INSERT INTO t (v) VALUES ('b1')");
    if (mode === "WAL") {
      // SQLite opened the database (and WAL) read-only: the application must reopen to write.
      assert.ok(!written.ok);
      assert.match(written.code ?? "", /^SQLITE_READONLY/, written.error);
      app.close();
      await shell(b.path(db), mode, ["INSERT INTO t (v) VALUES ('b1')"]);
    } else {
      assert.ok(
        written.ok,
        `the kept connection could not write on the new primary: ${JSON.stringify(written)}`,
      );
      assert.deepEqual(await app.ok("SELECT count(*) FROM t"), [[3]]);
    }
    assert.equal(txidOf(await b.pos(db)), txidOf(await a.pos(db)) + 1n, "one transaction, the next TXID");
    if (mode === "WAL") await shell(b.path(db), mode, ["PRAGMA wal_checkpoint(TRUNCATE)"]);
    const scratch = path.join(root, "scratch");
    fs.mkdirSync(scratch);
    await b.verifyChain(db, scratch);

    // On the old primary, now a replica, a new connection is refused cleanly too — in TRUNCATE and
    // PERSIST mode its journal is still there, and the database opens read-only (replica-access.ts).
    const onA = new SqlSession(defer, `file:${a.path(db)}`);
    const refused = await onA.run("INSERT INTO t (v) VALUES ('no')");
    assert.ok(!refused.ok);
    assert.match(refused.code ?? "", /^SQLITE_READONLY/, refused.error);
  });
}

for (const kernelLocks of [true, false]) {
  const locks = kernelLocks ? "kernel locks" : "table locks";
  test(`${locks}: a replica's read-write connection with its journal OFF or in MEMORY writes nothing`, async (t) => {
    // Such a connection writes the database file with no journal to create, the step that refuses
    // the other modes' writes on a replica: the commit gate must refuse these writes themselves.
    const defer = cleanupStack(t);
    const root = makeTempDir("replica-nojournal");
    defer(() => removeUnmountedTempDir(root));
    const a = await TestMount.start(defer, root, "a", "primary", { kernelLocks });
    const b = await TestMount.start(defer, root, "b", "replica", { kernelLocks });
    const db = "nojournal.db";
    await shell(a.path(db), "DELETE", [
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
      "INSERT INTO t (v) VALUES ('a1')",
    ]);
    await b.applyFrom(a, db);
    const pos = await b.pos(db);
    const files = b.ltxFiles(db).length;
    for (const journalMode of ["OFF", "MEMORY"]) {
      const app = new SqlSession(defer, `file:${b.path(db)}`);
      assert.deepEqual(await app.ok(`PRAGMA journal_mode=${journalMode}`), [[journalMode.toLowerCase()]]);
      for (const sql of ["INSERT INTO t (v) VALUES ('no')", "UPDATE t SET v = 'no'", "CREATE TABLE u (x)"]) {
        const answer = await app.run(sql);
        assert.ok(!answer.ok, `${journalMode}: ${sql} succeeded on a replica`);
      }
      assert.deepEqual(await app.ok("SELECT count(*), max(v) FROM t"), [[1, "a1"]]);
      app.close();
    }
    assert.equal(await b.pos(db), pos);
    assert.equal(b.ltxFiles(db).length, files);
    assert.deepEqual(await readOnlyView(b.path(db)), { integrity: "ok", rows: 1 });
    const scratch = path.join(root, "scratch");
    fs.mkdirSync(scratch);
    await b.verifyChain(db, scratch);
  });
}

test("`.primary`: absent is an error the kernel does not cache, so a named primary shows at once", async (t) => {
  const defer = cleanupStack(t);
  const root = makeTempDir("primary-file");
  defer(() => removeUnmountedTempDir(root));
  const node = await TestMount.start(defer, root, "a", "replica");
  const file = path.join(node.dir, "mnt", ".primary");
  // Read through the thread pool (fs/promises): a synchronous read would block the thread answering it.
  const read = (): Promise<string> => fsp.readFile(file, "utf8");
  const absent = async (when: string): Promise<void> => {
    await assert.rejects(read(), { code: "ENOENT" }, when);
  };

  await absent("a replica that knows no primary");
  // The mount answers 1 s negative timeouts for other names; had it answered this lookup with a
  // negative entry, the kernel would say ENOENT for up to a second after the primary became known.
  node.primaryHostname = "node-b";
  assert.equal(await read(), "node-b\n");
  node.primaryHostname = "node-ccc"; // content is never cached either, whatever its length
  assert.equal(await read(), "node-ccc\n");

  await node.setRole("primary");
  await absent("on a primary");
  await node.setRole("replica");
  assert.equal(await read(), "node-ccc\n");
  // A name the kernel has cached stays until dropped: the node drops it (roleChanged) on every change
  // of role or primary (litefs-node.ts #publishRole), as here.
  node.primaryHostname = null;
  await node.setRole("replica");
  await absent("once the primary is unknown again");
});
