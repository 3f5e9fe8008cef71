// The guestbook's storage across a LiteFS role change, on plain files: a connection SQLite could only
// open read-only (as on a replica) is reopened when a write is refused, so the app writes once its
// node is primary; and a database that is not there yet at startup (a replica before replication
// brought it) is opened on first use. An immutable file (chattr +i) stands in for the replica.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import Database from "better-sqlite3";

import { GuestbookDb, GuestbookReadOnlyError } from "../../examples/guestbook/guestbook-db.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";

test("a connection opened read-only is reopened once the database can be written", async (t) => {
  const dir = makeTempDir("guestbook-roles");
  t.after(() => removeTempDir(dir));
  const dbPath = path.join(dir, "book.db");
  const seed = new Database(dbPath);
  seed.exec("PRAGMA journal_mode=delete");
  seed.close();
  try {
    execFileSync("chattr", ["+i", dbPath], { stdio: "pipe" });
  } catch (err) {
    t.skip(`chattr +i is not supported here (${(err as Error).message.split("\n")[0]})`);
    return;
  }
  let db: GuestbookDb;
  try {
    db = new GuestbookDb({ path: dbPath, journalMode: "delete" });
    assert.equal(db.writable, false);
    assert.throws(() => db.add("a", "while read-only"), GuestbookReadOnlyError);
  } finally {
    execFileSync("chattr", ["-i", dbPath]);
  }
  t.after(() => db.close());
  const entry = db.add("b", "after the role change");
  assert.equal(entry.message, "after the role change");
  assert.equal(db.writable, true);
  assert.deepEqual(
    db.list().map((e) => e.message),
    ["after the role change"],
  );
});

test("a database that is not there yet is opened on first use; a missing folder still fails", async (t) => {
  const dir = makeTempDir("guestbook-roles");
  t.after(() => removeTempDir(dir));
  const dbPath = path.join(dir, "later.db");
  const db = new GuestbookDb({ path: dbPath, readOnly: true });
  t.after(() => db.close());
  assert.equal(db.opened, false);
  assert.deepEqual(db.list(), []);
  assert.throws(() => db.add("a", "b"), GuestbookReadOnlyError);
  const writer = new GuestbookDb({ path: dbPath, journalMode: "delete" });
  writer.add("w", "arrived by replication");
  writer.close();
  assert.deepEqual(
    db.list().map((e) => e.message),
    ["arrived by replication"],
  );
  assert.equal(db.opened, true);
  assert.throws(() => db.add("a", "b"), GuestbookReadOnlyError, "opened read-only on purpose: never writes");
  assert.ok(!fs.existsSync(path.join(dir, "missing")));
  assert.throws(() => new GuestbookDb({ path: path.join(dir, "missing", "x.db") }));
});
