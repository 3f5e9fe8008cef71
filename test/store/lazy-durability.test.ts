import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import BetterSqlite3 from "better-sqlite3";

import { checksumDatabaseBytes } from "../../src/ltx/checksum.js";
import type { Database } from "../../src/store/database.js";
import { listLtxFiles, type LtxFileEntry } from "../../src/store/ltx-directory.js";
import { MAX_UNSYNCED_LTX_FILES } from "../../src/store/pending-ltx-sync.js";
import type { Store } from "../../src/store/store.js";
import { feedNewWalBytes, openStore, replayChain, tempDir } from "./store-test-kit.js";

// Lazy durability of WAL transactions' LTX files (docs/store.md "Durability"): they are written
// without fsync and made durable later, so a power failure may tear or lose the newest of them — or
// keep them while the (unsynced) WAL loses its frames. These tests make the store write real WAL
// commits (fsyncs on), then damage the data directory the way a power failure can, and reopen it:
// the chain must come back without a gap or a torn file, matching the database and WAL, re-captured
// from the WAL wherever the WAL still holds a transaction.

const PAGE = 4096;

/** Writes the bytes SQLite appended to its WAL since `prev` through `db`, frame by frame, as SQLite does. */
interface WalRun {
  data: string;
  store: Store;
  db: Database;
  /** The logical database after each TXID (index = TXID). */
  images: Buffer[];
  /** WAL file length right after each TXID's commit (index = TXID; 0 for the journal commit). */
  walEnds: number[];
}

/** A store (fsyncs on) holding TXID 1 (journal commit) and `commits` WAL transactions, none checkpointed. */
function walRun(
  t: { after(fn: () => void): void },
  label: string,
  commits: number,
  onCommit: (db: Database) => void = () => undefined,
): WalRun {
  const dir = tempDir(t, label);
  const data = path.join(dir, "data");
  const plain = path.join(dir, "plain.db");
  const sqlite = new BetterSqlite3(plain);
  t.after(() => sqlite.close());
  sqlite.pragma(`page_size = ${PAGE}`);
  sqlite.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("wal_autocheckpoint = 0");
  const store = openStore(data, { noSync: false });
  t.after(() => store.close());
  const db = store.createDatabase("w.db");
  db.create("journal");
  db.write("database", 0, fs.readFileSync(plain));
  db.unlink("journal");
  const images = [Buffer.alloc(0), sqlite.serialize()];
  const walEnds = [0, 0];
  let wal = Buffer.alloc(0);
  db.create("wal");
  for (let i = 0; i < commits; i++) {
    sqlite.exec(`INSERT INTO t (v) VALUES (randomblob(${300 + (i % 8) * 700}))`);
    const next = fs.readFileSync(plain + "-wal");
    feedNewWalBytes(db, wal, next);
    wal = next;
    images.push(sqlite.serialize());
    walEnds.push(next.length);
    onCommit(db);
  }
  assert.equal(db.pos.txid, BigInt(commits + 1));
  return { data, store, db, images, walEnds };
}

function ltxOf(run: WalRun, txid: number): LtxFileEntry {
  const entry = listLtxFiles(run.db.dir.ltxDir).find((f) => f.maxTxid === BigInt(txid));
  assert.ok(entry !== undefined, `no LTX file for TXID ${txid}`);
  return entry;
}

/** Reopens the data directory as after a power failure (the old store is simply abandoned). */
function reopen(t: { after(fn: () => void): void }, run: WalRun): { store: Store; db: Database } {
  const store = openStore(run.data, { noSync: false });
  t.after(() => store.close());
  return { store, db: store.mustDb("w.db") };
}

function assertChainMatches(run: WalRun, db: Database, txid: number): void {
  assert.equal(db.pos.txid, BigInt(txid));
  assert.equal(db.pos.checksum, checksumDatabaseBytes(run.images[txid], PAGE));
  const replay = replayChain(run.data, "w.db");
  assert.equal(replay.files, txid, "one file per TXID, no gap");
  assert.ok(replay.image.equals(run.images[txid]), "the chain reproduces the database");
}

test("WAL transactions' LTX files are not fsynced per commit; SQLite's WAL fsync makes them durable", (t) => {
  const run = walRun(t, "lazy-pending", 4);
  assert.equal(run.db.unsyncedLtxFiles, 4, "the four WAL transactions' files wait for a sync");
  run.db.sync("wal"); // synchronous=FULL commit, or the checkpoint's WAL sync
  assert.equal(run.db.unsyncedLtxFiles, 0);
});

test("the background timer makes pending LTX files durable without any request", async (t) => {
  const run = walRun(t, "lazy-timer", 3);
  assert.equal(run.db.unsyncedLtxFiles, 3);
  for (let waited = 0; run.db.unsyncedLtxFiles > 0 && waited < 10_000; waited += 50)
    await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(run.db.unsyncedLtxFiles, 0);
});

test("a journal commit makes earlier lazy files durable first (recovery checks only a lazy tail)", (t) => {
  const run = walRun(t, "lazy-journal", 3);
  assert.equal(run.db.unsyncedLtxFiles, 3);
  // Deleting the database is a journal-style commit (an LTX with commit 0, fsynced).
  run.db.unlink("database");
  assert.equal(run.db.unsyncedLtxFiles, 0);
});

test("power failure: a torn tail (cut short, zero-filled, missing) is dropped and re-captured from the WAL", (t) => {
  const run = walRun(t, "lazy-torn", 5); // TXIDs 2..6 are WAL transactions
  const cut = ltxOf(run, 4);
  fs.truncateSync(cut.path, Math.floor(fs.statSync(cut.path).size / 2));
  const zeroed = ltxOf(run, 5);
  const bytes = fs.readFileSync(zeroed.path);
  bytes.fill(0, bytes.length - 200);
  fs.writeFileSync(zeroed.path, bytes);
  fs.rmSync(ltxOf(run, 6).path);

  const { store, db } = reopen(t, run);
  assert.deepEqual(
    [...store.recoveryReport("w.db")!.lostLtxFiles],
    [cut.name, zeroed.name],
    "the torn files are reported",
  );
  assertChainMatches(run, db, 6); // the WAL still held TXIDs 4..6: captured again
});

test("power failure: an intact file after a torn one is dropped too (no gap), then re-captured", (t) => {
  const run = walRun(t, "lazy-gap", 5);
  const torn = ltxOf(run, 3);
  fs.truncateSync(torn.path, 0);
  const { store, db } = reopen(t, run);
  assert.equal(store.recoveryReport("w.db")!.lostLtxFiles.length, 4, "TXIDs 3..6 dropped");
  assertChainMatches(run, db, 6);
});

test("power failure: the WAL lost frames its LTX files kept — the chain is cut back to the WAL", (t) => {
  const run = walRun(t, "lazy-walcut", 5);
  const kept = listLtxFiles(run.db.dir.ltxDir).map((f) => f.name);
  // The WAL's unsynced tail is gone: only TXIDs 2..4 survive in it.
  fs.truncateSync(run.db.files.path("wal"), run.walEnds[4]);
  const { store, db } = reopen(t, run);
  assert.deepEqual([...store.recoveryReport("w.db")!.lostLtxFiles], kept.slice(4), "TXIDs 5 and 6 dropped");
  assertChainMatches(run, db, 4);
});

test("power failure: the whole WAL lost — the chain is cut back to the database file", (t) => {
  const run = walRun(t, "lazy-walgone", 3);
  fs.rmSync(run.db.files.path("wal"));
  const { db } = reopen(t, run);
  assertChainMatches(run, db, 1);
});

test("a full-length lazy file with a flipped bit is not a power failure: an error naming it, nothing removed", (t) => {
  const run = walRun(t, "lazy-flip", 3);
  const file = ltxOf(run, 3);
  const bytes = fs.readFileSync(file.path);
  bytes[bytes.length - 40] ^= 0x5a;
  fs.writeFileSync(file.path, bytes);
  const before = listLtxFiles(run.db.dir.ltxDir).map((f) => f.name);
  assert.throws(() => openStore(run.data, { noSync: false }), new RegExp(file.name.replace(".", "\\.")));
  assert.deepEqual(
    listLtxFiles(run.db.dir.ltxDir).map((f) => f.name),
    before,
  );
});

test("a torn journal transaction's file is not taken for a lost lazy one: refused with an error", (t) => {
  const run = walRun(t, "lazy-journal-torn", 0); // TXID 1 only: a journal commit, durable when written
  const file = ltxOf(run, 1);
  fs.truncateSync(file.path, Math.floor(fs.statSync(file.path).size / 2));
  assert.throws(() => openStore(run.data, { noSync: false }), new RegExp(file.name.replace(".", "\\.")));
  assert.ok(fs.existsSync(file.path), "nothing removed");
});

test("never more than MAX_UNSYNCED_LTX_FILES files wait (the window recovery checks)", (t) => {
  let most = 0;
  const run = walRun(t, "lazy-cap", MAX_UNSYNCED_LTX_FILES + 2, (db) => {
    most = Math.max(most, db.unsyncedLtxFiles);
  });
  assert.ok(most <= MAX_UNSYNCED_LTX_FILES, `${most} files pending at once`);
  assert.ok(run.db.unsyncedLtxFiles < MAX_UNSYNCED_LTX_FILES);
});
