import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import BetterSqlite3 from "better-sqlite3";

import { checksumDatabaseBytes } from "../../src/ltx/checksum.js";
import { importDatabaseFile } from "../../src/store/database-import.js";
import { readLtxHeaderAndTrailer } from "../../src/store/ltx-file-reader.js";
import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { openStore, replayChain, tempDir } from "./store-test-kit.js";

// Import through the store: a database file becomes ONE LTX holding every page (a snapshot for a new
// database, the next TXID otherwise), the file is moved into place, and a bad file changes nothing.

function makeDatabase(file: string, rows: number, pageSize = 4096): Buffer {
  const sqlite = new BetterSqlite3(file);
  sqlite.pragma(`page_size = ${pageSize}`);
  sqlite.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  const insert = sqlite.prepare("INSERT INTO t (v) VALUES (randomblob(?))");
  sqlite.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(500 + (i % 7) * 100);
  })();
  sqlite.close();
  return fs.readFileSync(file);
}

test("import of a new database is one snapshot LTX; a second import is the next TXID", async (t) => {
  const dir = tempDir(t, "import");
  const data = path.join(dir, "data");
  const store = openStore(data);
  t.after(() => store.close());
  const db = store.createDatabase("imp.db");
  const first = makeDatabase(path.join(dir, "a.db"), 2000);
  const upload = path.join(data, "upload.tmp");
  fs.copyFileSync(path.join(dir, "a.db"), upload);
  await importDatabaseFile(db, upload);
  assert.equal(fs.existsSync(upload), false, "the upload was moved into place");
  assert.equal(db.pos.txid, 1n);
  assert.equal(db.pos.checksum, checksumDatabaseBytes(first, 4096));
  const [ltx] = listLtxFiles(db.dir.ltxDir);
  assert.equal(readLtxHeaderAndTrailer(ltx.path).header.minTxid, 1n);

  const second = makeDatabase(path.join(dir, "b.db"), 300, 1024);
  fs.copyFileSync(path.join(dir, "b.db"), upload);
  await importDatabaseFile(db, upload);
  assert.equal(db.pos.txid, 2n);
  assert.equal(db.pageSize, 1024);
  const header = readLtxHeaderAndTrailer(listLtxFiles(db.dir.ltxDir)[1].path).header;
  assert.equal(
    header.preApplyChecksum,
    checksumDatabaseBytes(first, 4096),
    "pre-apply is the replaced database",
  );
  assert.ok(fs.readFileSync(db.files.path("database")).equals(second));
  assert.ok(replayChain(data, "imp.db").image.equals(second));
});

test("a truncated or non-SQLite file is refused with EIMPORT and nothing changes", async (t) => {
  const dir = tempDir(t, "import-bad");
  const data = path.join(dir, "data");
  const store = openStore(data);
  t.after(() => store.close());
  const db = store.createDatabase("bad.db");
  const good = makeDatabase(path.join(dir, "a.db"), 100);
  const upload = path.join(data, "upload.tmp");
  fs.writeFileSync(upload, good.subarray(0, good.length - 4096));
  await assert.rejects(importDatabaseFile(db, upload), { code: "EIMPORT" });
  fs.writeFileSync(upload, Buffer.alloc(8192, 1));
  await assert.rejects(importDatabaseFile(db, upload), { code: "EIMPORT" });
  assert.equal(db.pos.txid, 0n);
  assert.equal(listLtxFiles(db.dir.ltxDir).length, 0);
});
