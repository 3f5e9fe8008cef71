import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { filesToRetire } from "../../src/store/retention.js";
import { openStore, tempDir } from "./store-test-kit.js";

const f = (txid: number, mtimeMs: number): { name: string; maxTxid: bigint; mtimeMs: number } => ({
  name: String(txid),
  maxTxid: BigInt(txid),
  mtimeMs,
});

test("filesToRetire: old files go, the newest always stays, removal stops at the first young file", () => {
  const now = 1_000_000;
  assert.deepEqual(filesToRetire([], now, 10), []);
  assert.deepEqual(filesToRetire([f(1, 0)], now, 10), [], "a lone file is the newest");
  assert.deepEqual(
    filesToRetire([f(3, 0), f(1, 0), f(2, 0)], now, 10).map((x) => x.name),
    ["1", "2"],
  );
  // A young file in the middle keeps everything after it (the chain stays contiguous).
  assert.deepEqual(
    filesToRetire([f(1, 0), f(2, now), f(3, 0), f(4, 0)], now, 10).map((x) => x.name),
    ["1"],
  );
  assert.deepEqual(filesToRetire([f(1, now - 10), f(2, 0)], now, 10), [], "exactly the retention age stays");
});

test("Store.enforceRetention removes aged LTX files of every database but the newest", (t) => {
  const dir = tempDir(t, "retention");
  let now = Date.now();
  const store = openStore(path.join(dir, "data"), { now: () => now });
  t.after(() => store.close());
  const db = store.createDatabase("a.db");
  const page = Buffer.alloc(4096);
  Buffer.from("SQLite format 3\0").copy(page);
  page.writeUInt16BE(4096, 16);
  page[18] = 1;
  page[19] = 1;
  page[21] = 64;
  page[22] = 32;
  page[23] = 32;
  for (let i = 1; i <= 5; i++) {
    page.writeUInt32BE(i, 24); // change counter
    page.writeUInt32BE(1, 28); // page count
    page.writeUInt32BE(i, 92); // version-valid-for
    db.create("journal");
    db.write("database", 0, page);
    db.unlink("journal");
  }
  const files = listLtxFiles(db.dir.ltxDir);
  assert.equal(files.length, 5);
  const old = (now - 60_000) / 1000;
  for (const file of files) fs.utimesSync(file.path, old, old);
  now += 1000;
  assert.equal(db.recentHistory(256).length, 5, "the chain, seeded from the files");
  assert.equal(store.enforceRetention(30_000), 4);
  assert.deepEqual(
    db.recentHistory(256).map((l) => l.maxTxid),
    [5n],
    "the links of retired files are gone from the chain kept in memory too",
  );
  assert.deepEqual(
    listLtxFiles(db.dir.ltxDir).map((x) => x.maxTxid),
    [5n],
  );
  assert.equal(store.enforceRetention(30_000), 0, "the newest file is never removed");
});
