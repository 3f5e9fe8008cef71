import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import BetterSqlite3 from "better-sqlite3";

import { checksumDatabaseBytes } from "../../src/ltx/checksum.js";
import type { Database } from "../../src/store/database.js";
import { encodeJournalHeader, encodeJournalRecord } from "../../src/store/journal-format.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import type { Store } from "../../src/store/store.js";
import { changedPages, openStore, replayChain, tempDir } from "./store-test-kit.js";

// Restarts of a store on the same data directory: clean (no page read), after a crash (only the
// pages a crash could have touched), with a hot journal (rolled back, and rolled forward when its
// LTX was already durable), with uncaptured WAL frames (captured), and with bad state on disk.

const PAGE = 4096;

/** A journal holding the original pages that `next` will overwrite in `prev` (a hot journal). */
function hotJournal(prev: Buffer, next: Buffer): Buffer {
  const nonce = 0x1234;
  const writes = changedPages(prev, next, PAGE).filter(([offset]) => offset < prev.length);
  const parts: Uint8Array[] = [
    encodeJournalHeader({
      recordCount: writes.length,
      nonce,
      initialPageCount: prev.length / PAGE,
      sectorSize: 512,
      pageSize: PAGE,
    }),
  ];
  for (const [offset] of writes)
    parts.push(encodeJournalRecord(offset / PAGE + 1, prev.subarray(offset, offset + PAGE), nonce));
  return Buffer.concat(parts);
}

/** Runs `sql` on a plain database and commits its changes through `db` as a journal transaction. */
class Writer {
  readonly sqlite: BetterSqlite3.Database;
  image: Buffer = Buffer.alloc(0);

  constructor(file: string) {
    this.sqlite = new BetterSqlite3(file);
    this.sqlite.pragma(`page_size = ${PAGE}`);
  }

  /** Applies `sql`; returns the images before and after. */
  run(sql: string): { prev: Buffer; next: Buffer } {
    this.sqlite.exec(sql);
    const prev = this.image;
    this.image = this.sqlite.serialize();
    return { prev, next: this.image };
  }

  commit(db: Database, sql: string): void {
    const { prev, next } = this.run(sql);
    db.create("journal");
    db.write("journal", 0, hotJournal(prev, next));
    for (const [offset, bytes] of changedPages(prev, next, PAGE)) db.write("database", offset, bytes);
    db.unlink("journal");
  }
}

function setup(
  t: { after(fn: () => void): void },
  label: string,
): { dir: string; data: string; store: Store; db: Database; writer: Writer } {
  const dir = tempDir(t, label);
  const data = path.join(dir, "data");
  const store = openStore(data);
  const db = store.createDatabase("r.db");
  const writer = new Writer(path.join(dir, "plain.db"));
  t.after(() => writer.sqlite.close());
  writer.commit(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  for (let i = 0; i < 5; i++) writer.commit(db, `INSERT INTO t (v) VALUES (randomblob(${1000 + i * 3000}))`);
  return { dir, data, store, db, writer };
}

test("a clean restart reads no page and keeps the position", (t) => {
  const { data, store, db } = setup(t, "clean");
  const pos = db.pos;
  store.close();
  const again = openStore(data);
  t.after(() => again.close());
  assert.deepEqual(again.mustDb("r.db").pos, pos);
  const report = again.recoveryReport("r.db")!;
  assert.equal(report.checksumSource, "clean");
  assert.equal(report.pagesRead, 0);
});

test("a restart after a crash rechecks only the pages committed since the last saved checksums", (t) => {
  const { data, store, db, writer } = setup(t, "crash");
  store.saveChecksums(); // the periodic base
  writer.commit(db, "UPDATE t SET v = randomblob(10) WHERE id = 2");
  const pos = db.pos;
  // No close(): the process died.
  const again = openStore(data);
  t.after(() => again.close());
  assert.deepEqual(again.mustDb("r.db").pos, pos);
  const report = again.recoveryReport("r.db")!;
  assert.equal(report.checksumSource, "partial");
  assert.ok(
    report.pagesRead > 0 && report.pagesRead < again.mustDb("r.db").pageCount,
    `read ${report.pagesRead}`,
  );
});

test("--verify recomputes every page", (t) => {
  const { data, store } = setup(t, "verify");
  store.close();
  const again = openStore(data, { verify: true });
  t.after(() => again.close());
  const report = again.recoveryReport("r.db")!;
  assert.equal(report.checksumSource, "full");
  assert.equal(report.fullPassReason, "--verify");
});

test("a hot journal of an unfinished transaction is rolled back; the position stays", (t) => {
  const { data, db, writer } = setup(t, "hot");
  const pos = db.pos;
  const committed = Buffer.from(writer.image);
  const { prev, next } = writer.run("UPDATE t SET v = randomblob(50) WHERE id > 1");
  db.create("journal");
  db.write("journal", 0, hotJournal(prev, next));
  for (const [offset, bytes] of changedPages(prev, next, PAGE)) db.write("database", offset, bytes);
  // Crash before the journal is unlinked.
  const again = openStore(data);
  t.after(() => again.close());
  const reopened = again.mustDb("r.db");
  assert.deepEqual(reopened.pos, pos);
  assert.equal(again.recoveryReport("r.db")!.journalRolledBack, true);
  assert.equal(reopened.exists("journal"), false);
  assert.ok(fs.readFileSync(reopened.files.path("database")).equals(committed));
});

test("a transaction whose LTX is durable but whose journal survived is rolled forward", (t) => {
  const { data, db, writer } = setup(t, "forward");
  const { prev, next } = writer.run("DELETE FROM t WHERE id = 3");
  const journal = hotJournal(prev, next);
  db.create("journal");
  db.write("journal", 0, journal);
  for (const [offset, bytes] of changedPages(prev, next, PAGE)) db.write("database", offset, bytes);
  db.unlink("journal"); // LTX written …
  const pos = db.pos;
  fs.writeFileSync(db.files.path("journal"), journal); // … but the crash came before the unlink
  const again = openStore(data);
  t.after(() => again.close());
  const reopened = again.mustDb("r.db");
  assert.equal(again.recoveryReport("r.db")!.rolledForward, true);
  assert.deepEqual(reopened.pos, pos);
  assert.ok(fs.readFileSync(reopened.files.path("database")).equals(next));
  assert.equal(checksumDatabaseBytes(next, PAGE), pos.checksum);
});

test("WAL transactions committed but not captured before a crash are captured at open", (t) => {
  const dir = tempDir(t, "walcrash");
  const data = path.join(dir, "data");
  const plain = path.join(dir, "plain.db");
  const sqlite = new BetterSqlite3(plain);
  t.after(() => sqlite.close());
  sqlite.exec("CREATE TABLE t (v)");
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("wal_autocheckpoint = 0");
  const store = openStore(data);
  const db = store.createDatabase("w.db");
  db.create("journal");
  db.write("database", 0, fs.readFileSync(plain));
  db.unlink("journal");
  sqlite.exec("INSERT INTO t VALUES (1)");
  db.create("wal");
  db.write("wal", 0, fs.readFileSync(plain + "-wal"));
  db.captureWal();
  sqlite.exec("INSERT INTO t VALUES (2)");
  sqlite.exec("INSERT INTO t VALUES (3)");
  fs.writeFileSync(db.files.path("wal"), fs.readFileSync(plain + "-wal")); // two commits, never captured: crash
  assert.equal(db.pos.txid, 2n);
  const again = openStore(data);
  t.after(() => again.close());
  const reopened = again.mustDb("w.db");
  assert.equal(reopened.pos.txid, 4n, "one LTX per uncaptured commit");
  assert.equal(reopened.pos.checksum, checksumDatabaseBytes(sqlite.serialize(), 4096));
  assert.ok(replayChain(data, "w.db").image.equals(sqlite.serialize()));
});

test("a database changed behind the node's back is refused with ECHECKSUM, nothing modified", (t) => {
  const { data, store, db } = setup(t, "tamper");
  store.close();
  const file = db.files.path("database");
  const bytes = fs.readFileSync(file);
  bytes[PAGE + 100] ^= 0xff;
  fs.writeFileSync(file, bytes);
  assert.throws(() => openStore(data), { code: "ECHECKSUM" });
  assert.ok(fs.readFileSync(file).equals(bytes), "the file is left as found");
});

test("a corrupt last LTX file is refused with an error naming it", (t) => {
  const { data, store, db } = setup(t, "corrupt");
  store.close();
  const last = listLtxFiles(db.dir.ltxDir).at(-1)!;
  const bytes = fs.readFileSync(last.path);
  bytes[bytes.length - 20] ^= 0x01;
  fs.writeFileSync(last.path, bytes);
  assert.throws(
    () => openStore(data),
    (err: Error) => err.message.includes(last.name),
  );
});

test("saved checksums older than the retained LTX files force a full pass, and say why", (t) => {
  const { data, store, db, writer } = setup(t, "retention");
  store.saveChecksums();
  for (let i = 0; i < 3; i++) writer.commit(db, `INSERT INTO t (v) VALUES (randomblob(${100 + i}))`);
  const files = listLtxFiles(db.dir.ltxDir);
  for (const f of files.slice(0, -1)) fs.rmSync(f.path); // retention kept only the newest
  const again = openStore(data);
  t.after(() => again.close());
  const report = again.recoveryReport("r.db")!;
  assert.equal(report.checksumSource, "full");
  assert.match(report.fullPassReason ?? "", /removed by retention/);
});
