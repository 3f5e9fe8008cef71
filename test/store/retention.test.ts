import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { listLtxFiles } from "../../src/store/ltx-directory.js";
import { formatFileName } from "../../src/ltx/file-name.js";
import { filesToRetire, LtxRetention, type RetentionTarget } from "../../src/store/retention.js";
import { openStore, tempDir } from "./store-test-kit.js";

interface File {
  name: string;
  maxTxid: bigint;
  mtimeMs: number;
}
const f = (txid: number, mtimeMs: number): File => ({ name: String(txid), maxTxid: BigInt(txid), mtimeMs });
const mtime = (file: File): number => file.mtimeMs;

test("filesToRetire: old files go, the newest always stays, removal stops at the first young file", () => {
  const now = 1_000_000;
  assert.deepEqual(filesToRetire([], now, 10, mtime), []);
  assert.deepEqual(filesToRetire([f(1, 0)], now, 10, mtime), [], "a lone file is the newest");
  assert.deepEqual(
    filesToRetire([f(3, 0), f(1, 0), f(2, 0)], now, 10, mtime).map((x) => x.name),
    ["1", "2"],
  );
  // A young file in the middle keeps everything after it (the chain stays contiguous).
  assert.deepEqual(
    filesToRetire([f(1, 0), f(2, now), f(3, 0), f(4, 0)], now, 10, mtime).map((x) => x.name),
    ["1"],
  );
  assert.deepEqual(
    filesToRetire([f(1, now - 10), f(2, 0)], now, 10, mtime),
    [],
    "exactly the retention age stays",
  );
  // The clock is asked in TXID order, only up to the first young file; a file gone meanwhile is skipped.
  const asked: string[] = [];
  const files = [f(1, 0), f(2, 0), f(3, now), f(4, 0), f(5, 0)];
  const gone = new Set(["2"]);
  const retired = filesToRetire(files, now, 10, (file) => {
    asked.push(file.name);
    return gone.has(file.name) ? undefined : file.mtimeMs;
  });
  assert.deepEqual(
    retired.map((x) => x.name),
    ["1"],
  );
  assert.deepEqual(asked, ["1", "2", "3"], "files after the first young one are never looked at");
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

test("LtxRetention walks on from the oldest file by name, and lists the directory only when it must", (t) => {
  const dir = tempDir(t, "retention-walk");
  const now = Date.now();
  const old = (now - 60_000) / 1000;
  const target = {
    dir: { ltxDir: dir, ltxFile: (a: bigint, b: bigint) => path.join(dir, formatFileName(a, b)) },
    pos: { txid: 0n, checksum: 0n },
  };
  const at = (txid: bigint): RetentionTarget => ({ ...target, pos: { txid, checksum: 1n } });
  const write = (min: number, max: number, young = false): void => {
    const file = path.join(dir, formatFileName(BigInt(min), BigInt(max)));
    fs.writeFileSync(file, Buffer.alloc(100 + min));
    if (!young) fs.utimesSync(file, old, old);
  };
  const left = (): string[] => fs.readdirSync(dir).sort();
  const retention = new LtxRetention();
  // One object per database: the walk's memory is kept per target.
  const db = at(5n);
  const retire = (txid: bigint): ReturnType<LtxRetention["retire"]> => {
    (db as { pos: { txid: bigint; checksum: bigint } }).pos = { txid, checksum: 1n };
    return retention.retire(db, now, 30_000);
  };

  // A snapshot (1..3) and single files: the first pass lists, removes all but the newest.
  write(1, 3);
  for (const txid of [4, 5]) write(txid, txid);
  assert.deepEqual(retire(5n), { files: 2, bytes: 101 + 104, upToTxid: 4n });
  assert.deepEqual(left(), [formatFileName(5n, 5n)]);

  // The next pass walks from 5: an old stray file behind it (which a listing would remove) stays.
  write(2, 2);
  for (const txid of [6, 7]) write(txid, txid);
  write(8, 8, true);
  assert.deepEqual(retire(8n), { files: 3, bytes: 105 + 106 + 107, upToTxid: 7n });
  assert.deepEqual(
    left(),
    [2n, 8n].map((x) => formatFileName(x, x)),
    "8 is young (and the newest): kept",
  );

  // A name the walk expects is gone (files replaced by a range file): it lists the directory again.
  for (const name of left()) fs.rmSync(path.join(dir, name));
  write(1, 9);
  write(10, 10);
  write(11, 11, true);
  assert.deepEqual(retire(11n), { files: 2, bytes: 101 + 110, upToTxid: 10n });
  assert.deepEqual(left(), [formatFileName(11n, 11n)]);
  assert.deepEqual(retire(11n), { files: 0, bytes: 0, upToTxid: 0n }, "the newest file always stays");
});
