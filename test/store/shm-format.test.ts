// The wal-index (-shm) header: what SQLite writes is parsed field for field (cross-checked against the
// WAL scan), re-encoding reproduces SQLite's bytes, and the header a replica builds is accepted by live
// SQLite readers (better-sqlite3 in this process, the sqlite3 shell in another) without recovery and
// makes them drop their page cache.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import {
  READMARK_NOT_USED,
  SHM_HEADER_SIZE,
  WAL_INDEX_HEADER_SIZE,
  buildReplicaShmHeader,
  decodeShmPageSize,
  encodeShmPageSize,
  encodeWalIndexHeader,
  parseShmHeader,
} from "../../src/store/shm-format.js";
import { SqliteFormatError } from "../../src/store/sqlite-header.js";
import { SHM_LOCK_FIRST } from "../../src/store/sqlite-locks.js";
import {
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  parseWalHeader,
  scanWal,
} from "../../src/store/wal-format.js";
import { Prng, testSeed } from "../support/prng.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import {
  copyFileOutOfProcess,
  openWalDatabase,
  randomTransaction,
  readFile,
  readFileOutOfProcess,
  runSqliteCli,
  writeFileOutOfProcess,
} from "./sqlite-files.js";

const seed = testSeed();
const tmp = makeTempDir("store-shm");
after(() => removeTempDir(tmp));

function readShmHeader(file: string): Uint8Array {
  return readFile(file + "-shm").subarray(0, SHM_HEADER_SIZE);
}

/** The header read by another process: this one holds SQLite locks that a close() here would drop. */
function readShmHeaderOutOfProcess(file: string): Uint8Array {
  return readFileOutOfProcess(file + "-shm", SHM_HEADER_SIZE);
}

describe("parseShmHeader on -shm files written by SQLite", () => {
  for (const pageSize of [512, 4096, 65536]) {
    test(`page size ${pageSize}: fields agree with the WAL; re-encoding gives SQLite's bytes`, () => {
      const dir = fs.mkdtempSync(path.join(tmp, `p${pageSize}-`));
      const file = path.join(dir, "db");
      const db = openWalDatabase(file, pageSize);
      try {
        const prng = new Prng(seed + pageSize);
        let previousChange: number | undefined;
        for (let i = 0; i < 5; i++) {
          randomTransaction(db, prng, pageSize * 2);
          const shmBytes = readShmHeader(file);
          const wal = readFile(file + "-wal");
          const walHeader = parseWalHeader(wal);
          const scan = scanWal(wal, walHeader);
          const last = scan.commits[scan.commits.length - 1];
          const shm = parseShmHeader(shmBytes);
          const h = shm.header;
          assert.ok(shm.usable && shm.copiesMatch && shm.checksumValid, `usable header [seed ${seed}]`);
          assert.equal(h.version, 3007000);
          assert.equal(h.isInit, true);
          assert.equal(h.bigEndianChecksum, false);
          assert.equal(h.pageSize, pageSize);
          assert.equal(h.mxFrame, last.lastFrame);
          assert.equal(h.mxFrame, (wal.length - WAL_HEADER_SIZE) / (WAL_FRAME_HEADER_SIZE + pageSize));
          assert.equal(h.nPage, last.dbPageCount);
          assert.deepEqual(h.frameChecksum, last.checksum);
          assert.equal(h.salt1, walHeader.salt1);
          assert.equal(h.salt2, walHeader.salt2);
          assert.equal(shm.checkpoint.nBackfill, 0);
          if (previousChange !== undefined)
            assert.notEqual(h.change, previousChange, "iChange moves with each commit");
          previousChange = h.change;
          if (pageSize === 65536)
            assert.deepEqual([...shmBytes.subarray(14, 16)], [1, 0], "65536 is stored as 1");
          assert.deepEqual(encodeWalIndexHeader(h), shmBytes.subarray(0, WAL_INDEX_HEADER_SIZE));
        }
        const mxFrame = parseShmHeader(readShmHeader(file)).header.mxFrame;
        db.pragma("wal_checkpoint(PASSIVE)");
        const after = parseShmHeader(readShmHeader(file));
        assert.equal(after.checkpoint.nBackfill, mxFrame);
        assert.equal(after.checkpoint.nBackfillAttempted, mxFrame);
        assert.equal(after.header.mxFrame, mxFrame, "a checkpoint does not reset the log by itself");
      } finally {
        db.close();
      }
    });
  }

  test("damaged headers are reported unusable, as SQLite would treat them", () => {
    const dir = fs.mkdtempSync(path.join(tmp, "damage-"));
    const file = path.join(dir, "db");
    const db = openWalDatabase(file, 4096);
    let good: Uint8Array;
    try {
      good = readShmHeader(file).slice();
    } finally {
      db.close();
    }
    assert.equal(parseShmHeader(good).usable, true);
    const copy2 = good.slice();
    copy2[WAL_INDEX_HEADER_SIZE + 16] ^= 1;
    assert.deepEqual([parseShmHeader(copy2).copiesMatch, parseShmHeader(copy2).usable], [false, false]);
    const both = good.slice();
    both[16] ^= 1;
    both[WAL_INDEX_HEADER_SIZE + 16] ^= 1;
    assert.deepEqual([parseShmHeader(both).copiesMatch, parseShmHeader(both).checksumValid], [true, false]);
    const uninit = good.slice();
    uninit[12] = 0;
    uninit[WAL_INDEX_HEADER_SIZE + 12] = 0;
    assert.equal(parseShmHeader(uninit).usable, false);
    assert.throws(
      () => parseShmHeader(good.subarray(0, 100)),
      (e) => e instanceof SqliteFormatError && e.code === "ESHMHEADER",
    );
  });
});

describe("buildReplicaShmHeader", () => {
  test("live readers accept it without recovery and reload the changed database", () => {
    const dir = fs.mkdtempSync(path.join(tmp, "replica-"));
    const side = fs.mkdtempSync(path.join(tmp, "side-"));
    const file = path.join(dir, "db");
    const pageSize = 4096;
    const writer = openWalDatabase(file, pageSize);
    let reader: Database.Database | undefined;
    try {
      writer.exec("INSERT INTO t(id, v) VALUES (1, 'old')");
      writer.prepare("INSERT INTO t(v) VALUES (?)").run(Buffer.alloc(10_000, 7));
      writer.pragma("wal_checkpoint(TRUNCATE)");
      // Two later states of the same database, made elsewhere (as a primary would): A and B.
      copyFileOutOfProcess(file, path.join(side, "db"));
      runSqliteCli(
        path.join(side, "db"),
        "UPDATE t SET v = 'new-A' WHERE id = 1; INSERT INTO t(v) VALUES (randomblob(20000)); PRAGMA wal_checkpoint(TRUNCATE);",
      );
      const imageA = readFile(path.join(side, "db"));
      runSqliteCli(
        path.join(side, "db"),
        "UPDATE t SET v = 'new-B' WHERE id = 1; PRAGMA wal_checkpoint(TRUNCATE);",
      );
      const imageB = readFile(path.join(side, "db"));
      assert.equal(imageA.length, imageB.length);

      // The live database has WAL frames (mxFrame > 0) and a reader that has cached its pages.
      writer.exec("UPDATE t SET v = 'wal' WHERE id = 1");
      reader = new Database(file);
      const value = (): unknown => reader!.prepare("SELECT v FROM t WHERE id = 1").pluck().get();
      assert.equal(value(), "wal");
      const walFrames = parseShmHeader(readShmHeaderOutOfProcess(file)).header.mxFrame;
      assert.ok(walFrames > 0);

      // Control: a header with a wrong checksum is not trusted; SQLite rebuilds the index from the WAL.
      writeFileOutOfProcess(file, imageA, imageA.length);
      const broken = buildReplicaShmHeader(readShmHeaderOutOfProcess(file), {
        pageSize,
        pageCount: imageA.length / pageSize,
      });
      broken[40] ^= 0xff;
      broken[WAL_INDEX_HEADER_SIZE + 40] ^= 0xff;
      writeFileOutOfProcess(file + "-shm", broken);
      try {
        value();
      } catch {
        // The mix of WAL frames and a foreign database file may read as corrupt: beside the point.
      }
      assert.equal(
        parseShmHeader(readShmHeaderOutOfProcess(file)).header.mxFrame,
        walFrames,
        "recovery rebuilt the index",
      );

      // The real thing: the replica's header. Readers take it as is and see state A.
      const built = buildReplicaShmHeader(readShmHeaderOutOfProcess(file), {
        pageSize,
        pageCount: imageA.length / pageSize,
      });
      const before = parseShmHeader(readShmHeaderOutOfProcess(file)).header;
      const parsed = parseShmHeader(built);
      assert.equal(parsed.usable, true);
      assert.equal(parsed.header.mxFrame, 0);
      assert.equal(parsed.header.change, (before.change + 1) >>> 0);
      assert.equal(parsed.header.nPage, imageA.length / pageSize);
      assert.deepEqual([parsed.header.salt1, parsed.header.salt2], [before.salt1, before.salt2]);
      assert.deepEqual(parsed.checkpoint.readMarks, [
        0,
        0,
        READMARK_NOT_USED,
        READMARK_NOT_USED,
        READMARK_NOT_USED,
      ]);
      assert.equal(parsed.checkpoint.nBackfill, 0);
      writeFileOutOfProcess(file + "-shm", built);
      assert.equal(value(), "new-A");
      assert.equal(reader.prepare("SELECT count(*) FROM t").pluck().get(), 3);
      assert.equal(reader.pragma("integrity_check", { simple: true }), "ok");
      assert.deepEqual(readShmHeaderOutOfProcess(file), built, "no recovery rewrote the header");
      // Another process (it cannot reset the shm: this process holds DMS) reads the same.
      assert.equal(runSqliteCli(file, "SELECT v FROM t WHERE id = 1;").trim(), "new-A");
      assert.deepEqual(readShmHeaderOutOfProcess(file), built);

      // Why the change counter matters: the database file changes again. With the header untouched the
      // reader keeps serving its cached page; the rebuilt header (only iChange differs) makes it reload.
      writeFileOutOfProcess(file, imageB, imageB.length);
      assert.equal(value(), "new-A", "stale cache while the header is unchanged");
      const again = buildReplicaShmHeader(readShmHeaderOutOfProcess(file), {
        pageSize,
        pageCount: imageB.length / pageSize,
      });
      const differing = [...again.subarray(0, 40)].flatMap((b, i) => (b === built[i] ? [] : [i]));
      assert.ok(
        differing.length > 0 && differing.every((i) => i >= 8 && i < 12),
        `only iChange differs: ${differing}`,
      );
      writeFileOutOfProcess(file + "-shm", again);
      assert.equal(value(), "new-B");
      assert.equal(
        runSqliteCli(file, "SELECT v FROM t WHERE id = 1; PRAGMA integrity_check;").trim(),
        "new-B\nok",
      );
    } finally {
      reader?.close();
      writer.close();
    }
  });

  test("without a usable current header: change counter from copy 1, zero salts, lock bytes kept", () => {
    const fresh = parseShmHeader(buildReplicaShmHeader(undefined, { pageSize: 65536, pageCount: 9 }));
    assert.equal(fresh.usable, true);
    assert.deepEqual(
      [
        fresh.header.change,
        fresh.header.pageSize,
        fresh.header.nPage,
        fresh.header.salt1,
        fresh.header.mxFrame,
      ],
      [1, 65536, 9, 0, 0],
    );
    const garbage = new Uint8Array(SHM_HEADER_SIZE).fill(0xee);
    const built = buildReplicaShmHeader(garbage, { pageSize: 1024, pageCount: 3 });
    const parsed = parseShmHeader(built);
    assert.equal(parsed.usable, true);
    assert.equal(parsed.header.change, (0xeeeeeeee + 1) >>> 0);
    assert.deepEqual([parsed.header.salt1, parsed.header.salt2], [0, 0]);
    assert.deepEqual([...built.subarray(SHM_LOCK_FIRST, SHM_LOCK_FIRST + 8)], new Array(8).fill(0xee));
    assert.throws(
      () => buildReplicaShmHeader(undefined, { pageSize: 4096, pageCount: -1 }),
      (e) => e instanceof SqliteFormatError && e.code === "ESHMHEADER",
    );
  });

  test("byte order: a big-endian host's header parses with littleEndian false", () => {
    const fields = {
      change: 5,
      bigEndianChecksum: true,
      pageSize: 8192,
      mxFrame: 77,
      nPage: 12,
      frameChecksum: [0x01020304, 0xa0b0c0d0] as const,
      salt1: 0x11223344,
      salt2: 0x55667788,
    };
    const shm = new Uint8Array(SHM_HEADER_SIZE);
    const hdr = encodeWalIndexHeader(fields, { littleEndian: false });
    shm.set(hdr, 0);
    shm.set(hdr, WAL_INDEX_HEADER_SIZE);
    const parsed = parseShmHeader(shm, { littleEndian: false });
    assert.equal(parsed.usable, true);
    assert.deepEqual(
      { ...parsed.header, version: undefined, isInit: undefined, checksum: undefined },
      { ...fields, version: undefined, isInit: undefined, checksum: undefined },
    );
    assert.equal(parseShmHeader(shm, { littleEndian: true }).usable, false);
  });

  test("szPage encoding round-trips every page size", () => {
    for (let size = 512; size <= 65536; size *= 2) {
      assert.equal(decodeShmPageSize(encodeShmPageSize(size)), size);
      assert.ok(encodeShmPageSize(size) <= 0xffff);
    }
  });
});
