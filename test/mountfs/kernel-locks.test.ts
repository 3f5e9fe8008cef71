// The mount in kernel-locks mode (config fuse.kernel-locks: the kernel keeps every fcntl lock; the
// mount never sees one, docs/fuse.md "Kernel-locks mode"). What the default mode proves with locks
// must hold from data alone:
//  - capture: a subset of the mount matrix (matrix-case.ts) — WAL and DELETE × two clients × page
//    4096, plus WAL 512 and DELETE 65536 — one LTX per commit, byte-for-byte replay, `<db>-pos`;
//  - a rolled-back transaction leaves no LTX, also one that spilled frames into the WAL;
//  - SIGKILL under a WAL write load (crash-scenario.ts): every acknowledged row survives;
//  - the commit gate: a transaction open across a demotion fails cleanly (role-change-kit.ts), also
//    one whose frames were already in the WAL (the writer is "in flight" by its data);
//  - replication: a replica (its own locks held by the lock helper, which alone may open files for
//    writing there) applies the primary's transactions, waits for a local reader's open WAL read
//    transaction to end first, and that reader's open connection then sees them;
//  - the locks really stay in the kernel: another process's F_GETLK sees SQLite's locks, and the file
//    system got no lock request while readers and writers ran; `-shm` use is seen from open handles.
// And, on the store alone, the commit-frame trigger: several frames (and commits) in one request, the
// "writer in flight" flag, and a capture that fails voiding its frame.
// Replay a failure with LITEFS_TEST_SEED=<seed printed>.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";

import BetterSqlite3 from "better-sqlite3";

import type { FileLock } from "../../src/fuse/file-system.js";
import { checksumDatabaseBytes } from "../../src/ltx/checksum.js";
import { LitefsNode } from "../support/litefs-node.js";
import { listLtxFiles } from "../support/ltx-chain.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { PYTHON3 } from "../support/paths.js";
import { testSeed } from "../support/prng.js";
import { runSqlJob } from "../support/sql-clients.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { openStore, replayChain, tempDir } from "../store/store-test-kit.js";
import { Cluster, waitForSync } from "../replication/cluster.js";
import { runCrashScenario } from "./crash-scenario.js";
import { type MatrixCase, matrixCase, runMatrixCase } from "./matrix-case.js";
import {
  cleanupStack,
  refusedCommitCase,
  removeUnmountedTempDir,
  rows,
  shell,
  SqlSession,
  TestMount,
  txidOf,
} from "./role-change-kit.js";

const KERNEL_LOCKS = { fuse: { "kernel-locks": true } };
const baseSeed = testSeed();
let scratchDir: string;

before(() => {
  scratchDir = makeTempDir("kernel-locks-scratch");
});

after(() => {
  if (scratchDir !== undefined) removeTempDir(scratchDir);
});

describe(`kernel-locks mode: capture (LITEFS_TEST_SEED=${baseSeed})`, () => {
  let node: LitefsNode;
  before(async () => {
    node = await LitefsNode.start({ config: KERNEL_LOCKS });
  });
  after(async () => {
    await node?.cleanup();
  });

  test("the node says it leaves locks to the kernel", () => {
    assert.match(node.logs(), /"msg":"mount locks".*"mode":"kernel"/);
  });

  const cases: MatrixCase[] = [];
  for (const journalMode of ["WAL", "DELETE"] as const) {
    for (const client of ["sqlite3", "better-sqlite3"] as const) {
      cases.push(matrixCase(journalMode, 4096, client, baseSeed + cases.length, "k"));
    }
  }
  cases.push(matrixCase("WAL", 512, "python", baseSeed + cases.length, "k"));
  cases.push(matrixCase("DELETE", 65536, "python", baseSeed + cases.length, "k"));

  describe("matrix subset", { concurrency: 2 }, () => {
    for (const c of cases) {
      test(`${c.journalMode} page ${c.pageSize} via ${c.client}`, async () => {
        await runMatrixCase(node, c, scratchDir);
      });
    }
  });

  for (const mode of ["WAL", "DELETE"] as const) {
    test(`${mode}: a rolled-back transaction leaves no LTX, even one that spilled`, async () => {
      const db = `rollback-${mode.toLowerCase()}.db`;
      const dbPath = node.dbPath(db);
      await runSqlJob("sqlite3", {
        dbPath,
        pragmas: [`PRAGMA journal_mode=${mode}`],
        scripts: [
          "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
          "INSERT INTO t (v) VALUES (zeroblob(10))",
        ],
      });
      const pos = node.readPos(db);
      const ltx = listLtxFiles(node.ltxDir(db)).length;
      // A small page cache makes the transaction spill pages (WAL frames, or database-file pages
      // behind a journal) before its ROLLBACK.
      await runSqlJob("sqlite3", {
        dbPath,
        pragmas: [`PRAGMA journal_mode=${mode}`, "PRAGMA cache_size=10"],
        scripts: [`BEGIN; INSERT INTO t (v) SELECT randomblob(3000) FROM ${rows(200)}; ROLLBACK`],
      });
      assert.deepEqual(node.readPos(db), pos, "position unchanged");
      assert.equal(listLtxFiles(node.ltxDir(db)).length, ltx, "no LTX for a rolled-back transaction");
      // The next commit (over the rolled-back frames in WAL mode) is the next TXID and replays.
      await runSqlJob("sqlite3", {
        dbPath,
        pragmas: [`PRAGMA journal_mode=${mode}`],
        scripts: ["INSERT INTO t (v) VALUES (randomblob(100))"],
        queries: mode === "WAL" ? ["PRAGMA wal_checkpoint(TRUNCATE)"] : [],
      });
      assert.equal(node.readPos(db).txid, pos.txid + 1n);
      await verifyLtxChainMatchesDatabase({
        dbFile: dbPath,
        posFile: node.posPath(db),
        ltxDir: node.ltxDir(db),
        scratchDir,
      });
    });
  }
});

describe("kernel-locks mode: crash", () => {
  test("WAL via better-sqlite3, page 4096: 3 kills under load", async (t) => {
    const node = await LitefsNode.start({ config: KERNEL_LOCKS });
    t.after(() => node.cleanup());
    await runCrashScenario({
      node,
      db: "crash-wal.db",
      scenario: { journalMode: "WAL", client: "better-sqlite3", pageSize: 4096, kills: 3 },
      seed: (baseSeed + 100) >>> 0,
      scratchDir,
      diagnostic: (line) => t.diagnostic(line),
    });
  });
});

describe("kernel-locks mode: commit gate", () => {
  for (const mode of ["WAL", "DELETE"] as const) {
    test(`${mode}: a demotion while a write transaction is open refuses its commit`, async (t) => {
      await refusedCommitCase(t, mode, "demote", { kernelLocks: true });
    });
  }

  test("WAL: a transaction whose frames are in the WAL at the demotion is refused at its commit frame", async (t) => {
    const defer = cleanupStack(t);
    const root = makeTempDir("kernel-locks-gate");
    defer(() => removeUnmountedTempDir(root));
    const mount = await TestMount.start(defer, root, "n", "primary", { kernelLocks: true });
    const db = "spilled.db";
    const file = mount.path(db);
    await shell(file, "WAL", [
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
      "INSERT INTO t (v) VALUES ('a')",
    ]);
    const posBefore = await mount.pos(db);
    const ltxBefore = mount.ltxFiles(db).length;
    const client = new SqlSession(defer, `file:${file}`);
    await client.ok("PRAGMA cache_size=10");
    await client.ok("BEGIN");
    // Spills: frames reach the WAL before the demotion, so the writer is in flight by its data and
    // its later frames are let through to meet the gate at the commit frame.
    await client.ok(`INSERT INTO t (v) SELECT hex(randomblob(2000)) FROM ${rows(100)}`);
    assert.ok(fs.statSync(mount.store.mustDb(db).files.path("wal")).size > 32 + 4096 * 10, "frames spilled");
    await mount.setRole("replica");
    const commit = await client.run("COMMIT");
    assert.equal(commit.ok, false, "COMMIT must fail on a demoted node");
    assert.match(commit.error, /disk I\/O error/);
    assert.equal(await mount.pos(db), posBefore, "position unchanged");
    assert.equal(mount.ltxFiles(db).length, ltxBefore, "no LTX for a refused commit");
    await client.run("ROLLBACK");
    assert.deepEqual(await client.ok("SELECT count(*) FROM t"), [[1]]);
    await mount.setRole("primary");
    await client.ok("INSERT INTO t (v) VALUES ('b')");
    client.close();
    assert.equal(txidOf(await mount.pos(db)), txidOf(posBefore) + 1n);
    await shell(file, "WAL", ["PRAGMA wal_checkpoint(TRUNCATE)"]);
    const scratch = path.join(root, "scratch");
    fs.mkdirSync(scratch);
    await mount.verifyChain(db, scratch);
  });
});

describe("kernel-locks mode: replication", () => {
  test("a replica applies WAL and DELETE transactions, after a local reader's open transaction", async (t) => {
    const cluster = await Cluster.start({
      replicas: 1,
      primaryConfig: KERNEL_LOCKS,
      replicaConfig: KERNEL_LOCKS,
    });
    t.after(() => cluster.cleanup());
    const defer = cleanupStack(t);
    const { primary } = cluster;
    const replica = cluster.replicas[0];
    for (const mode of ["WAL", "DELETE"] as const) {
      const db = `repl-${mode.toLowerCase()}.db`;
      await shell(primary.dbPath(db), mode, [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
        `INSERT INTO t (v) SELECT hex(randomblob(200)) FROM ${rows(20)}`,
      ]);
      await waitForSync(primary, [replica], [db]);
      const reader = new SqlSession(defer, `file:${replica.dbPath(db)}?mode=ro`);
      assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[20]]);
      // A read transaction held open: the replica must not apply under it.
      await reader.ok("BEGIN");
      assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[20]]);
      await shell(primary.dbPath(db), mode, ["INSERT INTO t (v) VALUES ('next')"]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(await reader.ok("SELECT count(*) FROM t"), [[20]], `${mode}: the open snapshot holds`);
      assert.notEqual(
        fs.readFileSync(replica.posPath(db), "utf8"),
        fs.readFileSync(primary.posPath(db), "utf8"),
        `${mode}: applied under an open read transaction\n${cluster.logs()}`,
      );
      await reader.ok("COMMIT");
      await waitForSync(primary, [replica], [db]);
      assert.deepEqual(
        await reader.ok("SELECT count(*) FROM t"),
        [[21]],
        `${mode}: the open connection sees it`,
      );
      assert.deepEqual(await reader.ok("PRAGMA integrity_check"), [["ok"]]);
      reader.close();
      // Local writes on the replica are still refused.
      await assert.rejects(shell(replica.dbPath(db), mode, ["INSERT INTO t (v) VALUES ('no')"]));
    }
    assert.match(replica.logs(), /"msg":"mount locks".*"mode":"kernel"/);
  });
});

const execFileAsync = promisify(execFile);

/** F_GETLK from a separate process: [type, pid] of a lock conflicting with a write lock on `byte`. */
async function getlk(file: string, byte: number): Promise<{ type: string; pid: number }> {
  const script = `
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
req = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, int(sys.argv[2]), 1, 0)
t, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, req))
print({fcntl.F_RDLCK: "read", fcntl.F_WRLCK: "write", fcntl.F_UNLCK: "none"}[t], pid)
`;
  const { stdout } = await execFileAsync(PYTHON3, ["-c", script, file, String(byte)], { timeout: 30_000 });
  const [type, pid] = stdout.trim().split(" ");
  return { type, pid: Number(pid) };
}

describe("kernel-locks mode: locks stay in the kernel", () => {
  test("F_GETLK sees SQLite's locks; no lock request reaches the mount under readers and writers", async (t) => {
    const defer = cleanupStack(t);
    const root = makeTempDir("kernel-locks-kernel");
    defer(() => removeUnmountedTempDir(root));
    const mount = await TestMount.start(defer, root, "n", "primary", { kernelLocks: true });
    const seen: string[] = [];
    // Counts what reaches the file system's lock handlers (the dispatcher calls them per request).
    const fsys = mount.fileSystem as unknown as Record<string, unknown>;
    for (const op of ["setlk", "getlk"]) {
      fsys[op] = (): FileLock | null => {
        seen.push(op);
        throw new Error(`${op} reached the mount in kernel-locks mode`);
      };
    }

    const wal = mount.path("k-wal.db");
    await shell(wal, "WAL", ["CREATE TABLE t (a INTEGER)"]);
    const writer = new SqlSession(defer, `file:${wal}`);
    await writer.ok("BEGIN IMMEDIATE");
    assert.deepEqual(await getlk(wal + "-shm", 120), { type: "write", pid: writer.pid }, "WAL write lock");
    assert.ok(mount.fileSystem.shmInUse("k-wal.db"), "-shm is open by a connection");
    await writer.ok("ROLLBACK");
    writer.close();

    const rollback = mount.path("k-delete.db");
    await shell(rollback, "DELETE", ["CREATE TABLE t (a INTEGER)"]);
    const holder = new SqlSession(defer, `file:${rollback}`);
    await holder.ok("BEGIN IMMEDIATE");
    const RESERVED = 0x40000001;
    assert.deepEqual(await getlk(rollback, RESERVED), { type: "write", pid: holder.pid }, "RESERVED");
    await holder.ok("ROLLBACK");
    holder.close();

    // Writers add pairs (x, -x) per transaction; readers must never see half a pair.
    const write = (n: number) =>
      runSqlJob("sqlite3", {
        dbPath: wal,
        busyTimeoutMs: 30_000,
        scripts: Array.from(
          { length: n },
          (_, i) => `BEGIN; INSERT INTO t VALUES (${i + 1}), (${-(i + 1)}); COMMIT`,
        ),
      });
    const read = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const { results } = await runSqlJob("python", {
          dbPath: wal,
          busyTimeoutMs: 30_000,
          queries: ["SELECT count(*) AS n, coalesce(sum(a), 0) AS s FROM t"],
        });
        assert.equal(Number(results[0][0].n) % 2, 0, "a reader saw half a transaction");
        assert.equal(results[0][0].s, 0, "a reader saw half a transaction");
      }
    };
    await Promise.all([write(150), write(150), read(8), read(8)]);
    const { results } = await runSqlJob("sqlite3", { dbPath: wal, queries: ["SELECT count(*) AS n FROM t"] });
    assert.equal(results[0][0].n, 600);
    assert.deepEqual(seen, [], "no lock request reached the mount");
    // Every connection closed: no handle of -shm is left (RELEASE may trail the close a little).
    const deadline = Date.now() + 5000;
    while (mount.fileSystem.shmInUse("k-wal.db") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(mount.fileSystem.shmInUse("k-wal.db"), false, "-shm no longer in use");
  });
});

describe("kernel-locks mode: the commit-frame trigger (store)", () => {
  /** A WAL database made by SQLite on a plain directory, and a store database holding its first state. */
  function setup(t: { after(fn: () => void | Promise<void>): void }, label: string) {
    const dir = tempDir(t, label);
    const plain = path.join(dir, "plain.db");
    const sqlite = new BetterSqlite3(plain);
    t.after(() => {
      sqlite.close();
    });
    sqlite.pragma("page_size = 4096");
    sqlite.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("wal_autocheckpoint = 0");
    const dataDir = path.join(dir, "data");
    const store = openStore(dataDir);
    t.after(() => store.close());
    const db = store.createDatabase("f.db");
    db.create("journal");
    db.write("database", 0, fs.readFileSync(plain));
    db.unlink("journal");
    db.create("wal");
    const wal = (): Buffer => fs.readFileSync(plain + "-wal");
    return { sqlite, store, db, dataDir, wal };
  }

  test("several frames and two commits in one write request: both captured, once", (t) => {
    const { sqlite, db, dataDir, wal } = setup(t, "multi");
    sqlite.exec("INSERT INTO t (v) VALUES (randomblob(9000))"); // several frames, one commit
    sqlite.exec("INSERT INTO t (v) VALUES (randomblob(10))");
    const bytes = wal();
    db.write("wal", 0, bytes); // header + every frame in one request
    assert.equal(db.pos.txid, 3n, "both transactions captured by the one write");
    assert.equal(db.walWritesPastCapture, false);
    assert.equal(db.captureWal(), 0, "nothing left for a lock release");
    assert.equal(db.pos.checksum, checksumDatabaseBytes(sqlite.serialize(), 4096));
    assert.ok(replayChain(dataDir, "f.db").image.equals(sqlite.serialize()));
  });

  test("frames past the last captured commit mark a writer in flight until the commit", (t) => {
    const { sqlite, db, wal } = setup(t, "inflight");
    sqlite.exec("INSERT INTO t (v) VALUES (randomblob(9000))");
    const bytes = wal();
    const frameSize = 24 + 4096;
    db.write("wal", 0, bytes.subarray(0, 32));
    assert.equal(db.walWritesPastCapture, false, "a fresh WAL header is no transaction");
    const frames = (bytes.length - 32) / frameSize;
    for (let i = 0; i < frames; i++) {
      const at = 32 + i * frameSize;
      db.write("wal", at, bytes.subarray(at, at + 24));
      if (i === frames - 1) {
        assert.equal(db.walWritesPastCapture, true, "the commit frame's header alone commits nothing");
        assert.equal(db.pos.txid, 1n);
      }
      db.write("wal", at + 24, bytes.subarray(at + 24, at + frameSize));
      if (i < frames - 1) assert.equal(db.walWritesPastCapture, true, `frame ${i + 1} of ${frames}`);
    }
    assert.equal(db.pos.txid, 2n);
    assert.equal(db.walWritesPastCapture, false, "captured at the commit frame");
  });

  test("a capture that fails voids its commit frame: no later trigger captures it", (t) => {
    const { sqlite, db, wal } = setup(t, "void");
    sqlite.exec("INSERT INTO t (v) VALUES (randomblob(100))");
    const bytes = wal();
    db.write("wal", 0, bytes.subarray(0, 32));
    db.write("wal", 32, bytes.subarray(32, 56));
    const ltxDir = db.dir.ltxDir;
    fs.renameSync(ltxDir, ltxDir + ".away"); // the LTX file cannot be renamed into place
    try {
      assert.throws(() => db.write("wal", 56, bytes.subarray(56, 32 + 24 + 4096)), { code: "ECAPTURE" });
    } finally {
      fs.renameSync(ltxDir + ".away", ltxDir);
    }
    assert.equal(db.pos.txid, 1n);
    const header = fs.readFileSync(db.files.path("wal")).subarray(32, 56);
    assert.ok(
      header.every((b) => b === 0),
      "the commit frame's header is zeroed",
    );
    assert.equal(db.captureWal(), 0, "a lock release finds no transaction");
    assert.equal(db.pos.txid, 1n);
  });
});
