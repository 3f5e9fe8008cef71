import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import BetterSqlite3 from "better-sqlite3";

import { checksumDatabaseBytes } from "../../src/ltx/checksum.js";
import { readLtxHeaderAndTrailer } from "../../src/store/ltx-file-reader.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { changedPages, feedNewWalBytes, openStore, replayChain, tempDir } from "./store-test-kit.js";

// Drives the WAL commit path with WAL files written by SQLite on a plain directory: the bytes SQLite
// appended to `-wal` since the last step are written through the store the way SQLite writes them
// (header, then each frame's 24-byte header and page separately), so the completed commit frame
// triggers the capture; the write-lock release (captureWal) then finds nothing left. The logical
// database after each transaction (better-sqlite3's serialize) must match the store's position, and
// the LTX chain must reproduce it.

test("WAL commits: one LTX per transaction with WAL fields; checkpoints and restarts add none", (t) => {
  const dir = tempDir(t, "wal");
  const plain = path.join(dir, "plain.db");
  const sqlite = new BetterSqlite3(plain);
  t.after(() => sqlite.close());
  sqlite.pragma("page_size = 4096");
  sqlite.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("wal_autocheckpoint = 0");

  const store = openStore(path.join(dir, "data"));
  t.after(() => store.close());
  const db = store.createDatabase("w.db");
  // The database as it was before WAL mode began (CREATE TABLE + the version switch): a journal commit.
  let dbImage = fs.readFileSync(plain);
  db.create("journal");
  db.write("database", 0, dbImage);
  db.unlink("journal");
  assert.equal(db.pos.txid, 1n);
  assert.equal(db.walMode, true, "page 1 says WAL");

  let wal = Buffer.alloc(0);
  db.create("wal");
  let txid = 1n;
  const step = (sql: string, expectCommit: boolean): void => {
    sqlite.exec(sql);
    const next = fs.existsSync(plain + "-wal") ? fs.readFileSync(plain + "-wal") : Buffer.alloc(0);
    if (next.length < wal.length) db.truncate("wal", next.length);
    feedNewWalBytes(db, next.length < wal.length ? Buffer.alloc(0) : wal, next);
    wal = next;
    const nextDb = fs.readFileSync(plain);
    for (const [offset, bytes] of changedPages(dbImage, nextDb, 4096)) db.write("database", offset, bytes);
    if (nextDb.length < dbImage.length) db.truncate("database", nextDb.length);
    dbImage = nextDb;
    assert.equal(db.captureWal(), 0, `${sql}: captured at the commit frame, nothing left at the unlock`);
    if (expectCommit) txid++;
    assert.equal(db.pos.txid, txid, sql);
    assert.equal(db.pos.checksum, checksumDatabaseBytes(sqlite.serialize(), 4096), `checksum after ${sql}`);
  };
  step("INSERT INTO t (v) VALUES (randomblob(5000))", true);
  step("INSERT INTO t (v) VALUES (randomblob(100))", true);
  step("UPDATE t SET v = randomblob(200) WHERE id = 1", true);
  step("BEGIN; INSERT INTO t (v) VALUES (1); ROLLBACK", false);
  step("PRAGMA wal_checkpoint(TRUNCATE)", false);
  step("INSERT INTO t (v) VALUES (randomblob(9000))", true); // a restarted WAL (new salts)
  step("DELETE FROM t WHERE id = 1", true);
  step("PRAGMA wal_checkpoint(PASSIVE)", false);

  const files = listLtxFiles(db.dir.ltxDir);
  assert.equal(files.length, Number(txid));
  const last = readLtxHeaderAndTrailer(files.at(-1)!.path).header;
  assert.ok(last.walOffset >= 32 && last.walSize > 0, "a WAL transaction records its WAL segment");
  const replay = replayChain(path.join(dir, "data"), "w.db");
  assert.ok(replay.image.equals(sqlite.serialize()), "the chain reproduces the logical database");
});

test("a WAL restart captures frames a failed write-lock release left behind", (t) => {
  const dir = tempDir(t, "wal-late");
  const plain = path.join(dir, "plain.db");
  const sqlite = new BetterSqlite3(plain);
  t.after(() => sqlite.close());
  sqlite.exec("CREATE TABLE t (v)");
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("wal_autocheckpoint = 0");
  const store = openStore(path.join(dir, "data"));
  t.after(() => store.close());
  const db = store.createDatabase("l.db");
  db.create("journal");
  db.write("database", 0, fs.readFileSync(plain));
  db.unlink("journal");
  sqlite.exec("INSERT INTO t VALUES (1)");
  const wal = fs.readFileSync(plain + "-wal");
  db.create("wal");
  db.write("wal", 0, wal.subarray(0, 32));
  fs.writeFileSync(db.files.path("wal"), wal); // frames that reached the file but whose capture failed
  assert.equal(db.pos.txid, 1n);
  db.write("wal", 0, wal.subarray(0, 32)); // the next writer restarts the WAL
  assert.equal(db.pos.txid, 2n, "captured before the frames could be lost");
});
