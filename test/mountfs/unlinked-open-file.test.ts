// A file unlinked while a handle is open on it lives on, nameless, until that handle is closed (as in
// POSIX): SQLite unlinks `-shm` while it still has it mapped, and writes through the old handle must
// not bring the name back.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import Database from "better-sqlite3";

import { LitefsNode } from "../support/litefs-node.js";

let node: LitefsNode;

before(async () => {
  node = await LitefsNode.start();
});

after(async () => {
  await node.cleanup();
});

test("sqlite3's -shm is gone after its last connection closes", () => {
  const db = node.dbPath("w.db");
  execFileSync("sqlite3", [db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);"]);
  const names = fs.readdirSync(path.dirname(db));
  assert.ok(names.includes("w.db"), names.join(" "));
  assert.ok(!names.includes("w.db-shm"), `-shm came back: ${names.join(" ")}`);
  assert.equal(execFileSync("sqlite3", [db, "SELECT count(*) FROM t;"]).toString().trim(), "1");
});

test("writes through a handle opened before the unlink reach the orphan, not the name", () => {
  const dbPath = node.dbPath("o.db");
  const shmPath = dbPath + "-shm";
  const conn = new Database(dbPath);
  conn.pragma("journal_mode=WAL");
  conn.exec("CREATE TABLE t(x); INSERT INTO t VALUES(1)");
  const fd = fs.openSync(shmPath, "r+");
  try {
    conn.close(); // the last connection: SQLite checkpoints and unlinks -wal and -shm
    assert.equal(fs.existsSync(shmPath), false, "-shm still there after the last close");
    const data = Buffer.from("written after the unlink");
    assert.equal(fs.writeSync(fd, data, 0, data.length, 0), data.length);
    assert.equal(fs.existsSync(shmPath), false, "a write through the old handle re-created -shm");
    const back = Buffer.alloc(data.length);
    assert.equal(fs.readSync(fd, back, 0, back.length, 0), back.length);
    assert.deepEqual(back, data);
    fs.ftruncateSync(fd, 4);
    assert.equal(fs.fstatSync(fd).size, 4);
    assert.equal(fs.existsSync(shmPath), false);
  } finally {
    fs.closeSync(fd);
  }
  // A new connection creates a fresh -shm and sees the data.
  const again = new Database(dbPath);
  try {
    assert.equal((again.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 1);
  } finally {
    again.close();
  }
});
