// A real `litefs mount` process on temp fuse/data dirs, driven by the sqlite3 shell and better-sqlite3
// (each in its own process) in DELETE and WAL modes: every committed transaction becomes exactly one
// LTX file, `<db>-pos` equals `litefs ltx checksum` of the database, the LTX chain replayed onto an
// empty file reproduces it byte for byte, a rollback leaves no LTX, and SIGTERM unmounts cleanly.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { litefsCliOk, runLitefsCli } from "../support/litefs-cli.js";
import { LitefsNode, litefsNodeConfig, writeLitefsConfig } from "../support/litefs-node.js";
import { listLtxFiles, readLtxHeader } from "../support/ltx-chain.js";
import { verifyLtxChainMatchesDatabase } from "../support/ltx-verify.js";
import { isMounted } from "../support/mounts.js";
import { runSqlJob, type SqlClientName } from "../support/sql-clients.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

let node: LitefsNode;
let scratch: string;

before(async () => {
  node = await LitefsNode.start();
  scratch = makeTempDir("basic-scratch");
});

after(async () => {
  await node.cleanup();
  removeTempDir(scratch);
});

function ltxCount(db: string): number {
  return listLtxFiles(node.ltxDir(db)).length;
}

/** Runs each script as its own job (one connection each) and checks it added exactly `ltx[i]` files. */
async function runEach(
  client: SqlClientName,
  db: string,
  mode: string,
  scripts: [string, number][],
): Promise<void> {
  for (const [script, added] of scripts) {
    const before = ltxCount(db);
    await runSqlJob(client, {
      dbPath: node.dbPath(db),
      pragmas: [`PRAGMA journal_mode=${mode}`],
      scripts: [script],
    });
    assert.equal(ltxCount(db) - before, added, `${client} ${mode}: ${script}`);
  }
}

async function verify(db: string): Promise<void> {
  await verifyLtxChainMatchesDatabase({
    dbFile: node.dbPath(db),
    posFile: node.posPath(db),
    ltxDir: node.ltxDir(db),
    scratchDir: scratch,
  });
}

test("DELETE mode through the sqlite3 shell: one LTX per transaction, none for a rollback", async () => {
  await runSqlJob("sqlite3", {
    dbPath: node.dbPath("shell.db"),
    pragmas: ["PRAGMA journal_mode=DELETE"],
    scripts: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"],
  });
  assert.equal(ltxCount("shell.db"), 1);
  await runEach("sqlite3", "shell.db", "DELETE", [
    ["INSERT INTO t (v) VALUES ('a')", 1],
    ["INSERT INTO t (v) SELECT hex(randomblob(2000)) FROM t", 1],
    ["BEGIN; INSERT INTO t (v) VALUES ('gone'); ROLLBACK", 0],
    ["UPDATE t SET v = 'b' WHERE id = 1", 1],
    ["DELETE FROM t WHERE id = 2", 1],
    ["VACUUM", 1],
  ]);
  const first = readLtxHeader(listLtxFiles(node.ltxDir("shell.db"))[0].path);
  assert.equal(first.minTxid, 1n, "the first transaction of a new database is a snapshot");
  assert.equal(first.preApplyChecksum, "0000000000000000");
  await verify("shell.db");
});

test("WAL mode through better-sqlite3: one LTX per transaction, checkpoints add none", async () => {
  await runSqlJob("better-sqlite3", {
    dbPath: node.dbPath("wal.db"),
    pragmas: ["PRAGMA journal_mode=WAL"],
    scripts: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"],
  });
  const created = ltxCount("wal.db");
  assert.ok(created >= 1 && created <= 2, `switch to WAL + CREATE TABLE: ${created} LTX files`);
  await runEach("better-sqlite3", "wal.db", "WAL", [
    ["INSERT INTO t (v) VALUES (randomblob(100))", 1],
    ["INSERT INTO t (v) SELECT randomblob(3000) FROM t", 1],
    ["BEGIN; DELETE FROM t; ROLLBACK", 0],
    ["UPDATE t SET v = randomblob(10) WHERE id = 1", 1],
    ["PRAGMA wal_checkpoint(TRUNCATE)", 0],
    ["INSERT INTO t (v) VALUES (randomblob(50000))", 1],
  ]);
  await verify("wal.db");
  const rows = await runSqlJob("sqlite3", {
    dbPath: node.dbPath("wal.db"),
    queries: ["SELECT count(*) AS n FROM t"],
  });
  assert.equal(rows.results[0][0].n, 3);
});

for (const mode of ["TRUNCATE", "PERSIST"] as const) {
  test(`${mode} mode through the sqlite3 shell and better-sqlite3`, async () => {
    const db = `${mode.toLowerCase()}.db`;
    await runEach("sqlite3", db, mode, [
      ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", 1],
      ["INSERT INTO t (v) VALUES ('a'), ('b')", 1],
      ["BEGIN; UPDATE t SET v = 'x'; ROLLBACK", 0],
    ]);
    await runEach("better-sqlite3", db, mode, [
      ["UPDATE t SET v = hex(randomblob(5000)) WHERE id = 1", 1],
      ["DELETE FROM t WHERE id = 2", 1],
    ]);
    await verify(db);
  });
}

for (const pageSize of [512, 65536]) {
  for (const mode of ["DELETE", "WAL"] as const) {
    test(`page size ${pageSize} in ${mode} mode with VACUUM and checkpoints`, async () => {
      const db = `p${pageSize}-${mode.toLowerCase()}.db`;
      await runSqlJob("better-sqlite3", {
        dbPath: node.dbPath(db),
        pragmas: [`PRAGMA page_size=${pageSize}`, `PRAGMA journal_mode=${mode}`],
        scripts: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"],
      });
      await runEach("better-sqlite3", db, mode, [
        ["INSERT INTO t (v) SELECT randomblob(700) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3)", 1],
        ["INSERT INTO t (v) SELECT randomblob(900) FROM t", 1],
        ["DELETE FROM t WHERE id % 2 = 0", 1],
        ["PRAGMA wal_checkpoint(FULL)", 0],
        ["VACUUM", 1],
        ["PRAGMA wal_checkpoint(RESTART)", 0],
        ["UPDATE t SET v = randomblob(10)", 1],
      ]);
      await verify(db);
      const header = readLtxHeader(listLtxFiles(node.ltxDir(db)).at(-1)!.path);
      assert.equal(header.pageSize, pageSize);
    });
  }
}

test("two writer processes in WAL mode: every acknowledged transaction is captured", async () => {
  await runSqlJob("sqlite3", {
    dbPath: node.dbPath("busy.db"),
    pragmas: ["PRAGMA journal_mode=WAL"],
    scripts: ["CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"],
  });
  const before = ltxCount("busy.db");
  const inserts = (who: string): string[] =>
    Array.from({ length: 40 }, () => `INSERT INTO t (who) VALUES ('${who}')`);
  await Promise.all([
    runSqlJob("better-sqlite3", { dbPath: node.dbPath("busy.db"), scripts: inserts("a") }),
    runSqlJob("sqlite3", { dbPath: node.dbPath("busy.db"), scripts: inserts("b") }),
  ]);
  assert.equal(ltxCount("busy.db") - before, 80);
  await verify("busy.db");
});

test("import and export through the running node (litefs import / export)", async () => {
  const source = path.join(scratch, "source.db");
  await runSqlJob("sqlite3", {
    dbPath: source,
    scripts: [
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
      "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000) INSERT INTO t (v) SELECT hex(randomblob(200)) FROM s",
    ],
  });
  const url = node.httpUrl;
  await litefsCliOk(["import", "--name", "imported.db", "--url", url, source]);
  assert.equal(ltxCount("imported.db"), 1, "an import is one LTX");
  assert.ok(fs.readFileSync(node.dbPath("imported.db")).equals(fs.readFileSync(source)));
  await runEach("sqlite3", "imported.db", "DELETE", [["DELETE FROM t WHERE id > 100", 1]]);
  await verify("imported.db");
  const info = (await (await fetch(`${url}/info`)).json()) as { dbs: Record<string, { pos: string }> };
  const pos = (await (await fetch(`${url}/pos`)).json()) as Record<string, string>;
  const posFile = fs.readFileSync(node.posPath("imported.db"), "utf8").trim();
  assert.equal(info.dbs["imported.db"].pos, posFile);
  assert.equal(pos["imported.db"], posFile);
  const exported = path.join(scratch, "exported.db");
  await litefsCliOk(["export", "--name", "imported.db", "--url", url, exported]);
  assert.ok(fs.readFileSync(exported).equals(fs.readFileSync(node.dbPath("imported.db"))));
  const bad = path.join(scratch, "bad.db");
  fs.writeFileSync(bad, fs.readFileSync(source).subarray(0, 5000));
  const refused = await runLitefsCli(["import", "--name", "imported.db", "--url", url, bad]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /EIMPORT|not an importable/);
  assert.equal(ltxCount("imported.db"), 2, "a refused import changes nothing");
});

test("switching journal modes DELETE → WAL → DELETE keeps one chain", async () => {
  await runEach("better-sqlite3", "switch.db", "DELETE", [
    ["CREATE TABLE t (v)", 1],
    ["INSERT INTO t VALUES (1)", 1],
  ]);
  await runEach("better-sqlite3", "switch.db", "WAL", [["INSERT INTO t VALUES (2)", 2]]); // version switch + insert
  await runEach("sqlite3", "switch.db", "DELETE", [["INSERT INTO t VALUES (3)", 2]]); // version switch + insert
  await verify("switch.db");
});

test("deleting a database through the mount writes a deletion LTX", async () => {
  await runSqlJob("sqlite3", { dbPath: node.dbPath("gone.db"), scripts: ["CREATE TABLE t (v)"] });
  fs.rmSync(node.dbPath("gone.db"));
  const files = listLtxFiles(node.ltxDir("gone.db"));
  assert.equal(files.length, 2);
  assert.equal(readLtxHeader(files[1].path).commit, 0);
  assert.equal(fs.existsSync(node.dbPath("gone.db")), false);
  assert.equal(fs.readFileSync(node.posPath("gone.db"), "utf8").slice(0, 16), "0000000000000002");
});

test("files that are not SQLite's are refused and change nothing", () => {
  assert.throws(() => fs.mkdirSync(path.join(node.fuseDir, "dir")), { code: "EPERM" });
  assert.throws(() => fs.writeFileSync(node.posPath("shell.db"), "x"), { code: "EACCES" });
  assert.throws(() => fs.renameSync(node.dbPath("shell.db"), node.dbPath("other.db")), { code: "EPERM" });
  assert.equal(fs.readFileSync(path.join(node.fuseDir, ".lag"), "utf8"), "+000000000\n");
  assert.ok(!fs.readdirSync(node.fuseDir).includes("shell.db-lock"), "-lock is found by lookup only");
  assert.ok(fs.existsSync(path.join(node.fuseDir, "shell.db-lock")));
});

test("journal modes that cannot be captured fail the write with an error instead of silently", async () => {
  for (const [pragma, name] of [
    ["PRAGMA journal_mode=OFF", "off.db"],
    ["PRAGMA journal_mode=MEMORY", "memory.db"],
  ] as const) {
    await assert.rejects(
      runSqlJob("sqlite3", { dbPath: node.dbPath(name), pragmas: [pragma], scripts: ["CREATE TABLE t (v)"] }),
      /disk I\/O error|SQLITE_IOERR/,
      name,
    );
    assert.equal(ltxCount(name), 0, `${name}: nothing captured after the refusal`);
  }
  assert.match(node.logs(), /journal_mode=MEMORY or OFF cannot be replicated/);
});

test("WAL with locking_mode=EXCLUSIVE: refused when the mount answers locks, captured with kernel locks", async () => {
  const pragmas = ["PRAGMA locking_mode=EXCLUSIVE", "PRAGMA journal_mode=WAL"];
  // Table locks (LiteFS's way, asked for explicitly): a WAL write without the WAL write lock cannot be
  // told from a writer that bypasses the lock, so it is refused. The switch to WAL (a rollback
  // transaction) is captured.
  const tableNode = await LitefsNode.start({ config: { fuse: { "kernel-locks": false } } });
  try {
    await assert.rejects(
      runSqlJob("sqlite3", {
        dbPath: tableNode.dbPath("exclusive.db"),
        pragmas,
        scripts: ["CREATE TABLE t (v)"],
      }),
      /disk I\/O error|SQLITE_IOERR/,
    );
    assert.equal(listLtxFiles(tableNode.ltxDir("exclusive.db")).length, 1, "only the switch to WAL");
    assert.match(tableNode.logs(), /locking_mode=EXCLUSIVE/);
  } finally {
    await tableNode.cleanup();
  }

  // Kernel locks: the commit is captured from the write completing its commit frame; no lock needed.
  const kernelNode = await LitefsNode.start({ config: { fuse: { "kernel-locks": true } } });
  try {
    await runSqlJob("sqlite3", {
      dbPath: kernelNode.dbPath("exclusive.db"),
      pragmas,
      scripts: ["CREATE TABLE t (v)"],
    });
    assert.equal(listLtxFiles(kernelNode.ltxDir("exclusive.db")).length, 2, "the switch and the CREATE");
    await verifyLtxChainMatchesDatabase({
      dbFile: kernelNode.dbPath("exclusive.db"),
      posFile: kernelNode.posPath("exclusive.db"),
      ltxDir: kernelNode.ltxDir("exclusive.db"),
      scratchDir: scratch,
    });
  } finally {
    await kernelNode.cleanup();
  }
});

test("exec: the command runs once the mount is ready and litefs exits with its code, unmounted", async () => {
  const base = makeTempDir("exec");
  try {
    const fuseDir = path.join(base, "fuse");
    fs.mkdirSync(fuseDir);
    const config = litefsNodeConfig({
      fuseDir,
      dataDir: path.join(base, "data"),
      httpPort: 0,
      retention: "1h",
    });
    writeLitefsConfig(path.join(base, "litefs.yml"), config);
    const script = `sqlite3 ${path.join(fuseDir, "x.db")} 'CREATE TABLE t (v)' && exit 7`;
    const result = await runLitefsCli([
      "mount",
      "-config",
      path.join(base, "litefs.yml"),
      "--",
      "sh",
      "-c",
      script,
    ]);
    assert.equal(result.code, 7, result.stderr);
    assert.equal(isMounted(fuseDir), false);
    assert.equal(listLtxFiles(path.join(base, "data", "dbs", "x.db", "ltx")).length, 1);
  } finally {
    removeTempDir(base);
  }
});

test("SIGTERM unmounts cleanly and a restart finds every database at its position", async () => {
  const pos = fs.readFileSync(node.posPath("shell.db"), "utf8");
  const status = await node.stop();
  assert.equal(status.code, 0, node.logs());
  assert.equal(isMounted(node.fuseDir), false);
  await node.restart();
  assert.equal(fs.readFileSync(node.posPath("shell.db"), "utf8"), pos);
  assert.match(node.logs(), /"checksums":"clean"/);
});
