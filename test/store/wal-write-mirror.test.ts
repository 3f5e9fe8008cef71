import assert from "node:assert/strict";
import { test } from "node:test";

import fs from "node:fs";
import path from "node:path";

import BetterSqlite3 from "better-sqlite3";
import fc from "fast-check";

import { encodeWalFrame, encodeWalHeader, WAL_FRAME_HEADER_SIZE } from "../../src/store/wal-format.js";
import { MAX_MIRRORED_BYTES, WalWriteMirror } from "../../src/store/wal-write-mirror.js";
import { openStore, replayChain, tempDir } from "./store-test-kit.js";

// The mirror is a cache of the WAL file: whatever it answers must be exactly what the file holds. The
// model is a byte array standing for the file, changed by the same operations.

type Op =
  | { kind: "write"; offset: number; length: number; fill: number }
  | { kind: "append"; back: number; length: number; fill: number }
  | { kind: "truncate"; size: number }
  | { kind: "drop"; offset: number }
  | { kind: "clear"; offset: number };

const SPAN = 4096;

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("write" as const),
      offset: fc.nat(SPAN),
      length: fc.integer({ min: 1, max: 600 }),
      fill: fc.nat(255),
    }),
  },
  {
    // SQLite's usual pattern: at the end of what was written, or rewriting just before it.
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      back: fc.oneof(fc.constant(0), fc.nat(300)),
      length: fc.integer({ min: 1, max: 600 }),
      fill: fc.nat(255),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), size: fc.nat(SPAN) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("drop" as const), offset: fc.nat(SPAN) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("clear" as const), offset: fc.nat(SPAN) }) },
);

class FileModel {
  bytes = new Uint8Array(0);
  write(offset: number, data: Uint8Array): void {
    if (offset + data.length > this.bytes.length) {
      const grown = new Uint8Array(offset + data.length);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes.set(data, offset);
  }
  truncate(size: number): void {
    const cut = new Uint8Array(size);
    cut.set(this.bytes.subarray(0, Math.min(size, this.bytes.length)));
    this.bytes = cut;
  }
}

test("every answer of the mirror equals the file's bytes, whatever the writes, truncations and drops", () => {
  // How many reads the mirror answered, over all runs: a mirror that never answers would pass the
  // property vacuously. One sequence may rightly answer nothing (drops past every write), so this is
  // checked over the whole run, not per sequence.
  let served = 0;
  let asked = 0;
  fc.assert(
    fc.property(fc.array(arbOp, { maxLength: 60 }), (ops) => {
      const file = new FileModel();
      const mirror = new WalWriteMirror();
      for (const op of ops) {
        switch (op.kind) {
          case "write":
          case "append": {
            const offset = op.kind === "write" ? op.offset : Math.max(0, mirror.end - op.back);
            const data = new Uint8Array(op.length).map((_, i) => (op.fill + i) & 0xff);
            file.write(offset, data);
            mirror.written(offset, data);
            data.fill(0); // the mirror copied the bytes: the request's buffer may be reused
            break;
          }
          case "truncate":
            file.truncate(op.size);
            mirror.truncated(op.size);
            break;
          case "drop":
            mirror.dropBefore(op.offset);
            break;
          case "clear":
            mirror.clear(op.offset);
            break;
        }
        assert.ok(mirror.start <= mirror.end);
        // Every read around the mirrored range, and a few lengths.
        for (let offset = Math.max(0, mirror.start - 30); offset <= mirror.end + 30; offset += 17) {
          for (const length of [1, 24, 200]) {
            const got = mirror.read(offset, length);
            asked++;
            if (got === undefined) continue;
            served++;
            assert.ok(offset + length <= file.bytes.length, "never answers past the end of the file");
            assert.deepEqual(got, file.bytes.subarray(offset, offset + length));
          }
        }
      }
    }),
    { numRuns: 300 },
  );
  assert.ok(served > asked / 10, `the mirror answered ${served} of ${asked} reads`);
});

test("a transaction's appended frames are served from memory until captured, then from the file", () => {
  const mirror = new WalWriteMirror();
  mirror.clear(32); // a WAL (re)start: frames begin after the 32-byte header
  mirror.written(0, new Uint8Array(32).fill(9)); // the header itself is before the range
  assert.equal(mirror.read(0, 32), undefined);
  const frameHeader = new Uint8Array(24).fill(1);
  const page = new Uint8Array(4096).fill(2);
  mirror.written(32, frameHeader);
  mirror.written(56, page);
  mirror.written(56 + 4096, frameHeader);
  mirror.written(
    80 + 4096,
    page.map(() => 3),
  );
  assert.deepEqual(mirror.read(32, 24), frameHeader);
  assert.deepEqual(mirror.read(56 + 4096 + 24, 4096), new Uint8Array(4096).fill(3));
  // SQLite rewrites a frame of the transaction in place (the same page written twice).
  mirror.written(56, new Uint8Array(4096).fill(4));
  assert.deepEqual(mirror.read(56, 4096), new Uint8Array(4096).fill(4));
  // Captured up to the end of the first frame: it is read from the file from then on.
  mirror.dropBefore(56 + 4096);
  assert.equal(mirror.read(56, 4096), undefined);
  assert.deepEqual(mirror.read(56 + 4096, 24), frameHeader);
  // A write after a gap starts a new range there; the gap is never answered.
  mirror.written(20_000, frameHeader);
  assert.equal(mirror.read(56 + 4096, 24), undefined);
  assert.deepEqual(mirror.read(20_000, 24), frameHeader);
});

test("a range that would outgrow the cap is dropped and mirroring pauses until the next capture", () => {
  const mirror = new WalWriteMirror();
  mirror.clear(32);
  const chunk = new Uint8Array(1024 * 1024).fill(5);
  chunk[0] = 7;
  mirror.written(32, chunk.subarray(0, 1000)); // grows from a small buffer: the first bytes must survive
  mirror.written(1032, chunk.subarray(1000, 200_000));
  assert.deepEqual(mirror.read(32, 2), new Uint8Array([7, 5]));
  let offset = 32 + 200_000;
  for (let written = 0; written <= MAX_MIRRORED_BYTES; written += chunk.length) {
    mirror.written(offset, chunk);
    offset += chunk.length;
  }
  assert.ok(mirror.end - mirror.start <= MAX_MIRRORED_BYTES);
  assert.equal(mirror.read(32, 16), undefined, "the oldest bytes went to make room");
  mirror.written(offset, new Uint8Array(16).fill(6));
  assert.equal(mirror.read(offset, 16), undefined, "a bulk transaction is read from the file");
  offset += 16;
  mirror.dropBefore(offset); // captured: the next transaction is mirrored again
  mirror.written(offset, new Uint8Array(16).fill(8));
  assert.deepEqual(mirror.read(offset, 16), new Uint8Array(16).fill(8));
});

test("a WAL frame rewritten in place within a transaction is captured with its last bytes", (t) => {
  const dir = tempDir(t, "wal-mirror");
  const plain = path.join(dir, "plain.db");
  const sqlite = new BetterSqlite3(plain);
  sqlite.pragma("page_size = 4096");
  sqlite.exec("CREATE TABLE t (v)");
  sqlite.pragma("journal_mode = WAL");
  sqlite.close();
  const image = fs.readFileSync(plain);
  const dataDir = path.join(dir, "data");
  const store = openStore(dataDir);
  t.after(() => store.close());
  const db = store.createDatabase("m.db");
  db.create("journal");
  db.write("database", 0, image);
  db.unlink("journal"); // TXID 1: the database before WAL writes
  const pages = image.length / 4096;

  const { bytes: headerBytes, header } = encodeWalHeader({
    pageSize: 4096,
    checkpointSeq: 0,
    salt1: 7,
    salt2: 9,
  });
  db.create("wal");
  db.write("wal", 0, headerBytes);
  const frameSize = WAL_FRAME_HEADER_SIZE + 4096;
  const writeFrame = (offset: number, bytes: Uint8Array): void => {
    db.write("wal", offset, bytes.subarray(0, WAL_FRAME_HEADER_SIZE)); // SQLite's two requests per frame
    db.write("wal", offset + WAL_FRAME_HEADER_SIZE, bytes.subarray(WAL_FRAME_HEADER_SIZE));
  };
  const first = encodeWalFrame(header, header.checksum, { pgno: 2, page: new Uint8Array(4096).fill(0xaa) });
  writeFrame(32, first.bytes);
  const rewritten = encodeWalFrame(header, header.checksum, {
    pgno: 2,
    page: new Uint8Array(4096).fill(0xbb),
  });
  writeFrame(32, rewritten.bytes); // the same page changed again before the commit
  const page1 = new Uint8Array(image.subarray(0, 4096));
  const commit = encodeWalFrame(header, rewritten.checksum, { pgno: 1, page: page1, commitDbSize: pages });
  writeFrame(32 + frameSize, commit.bytes);
  assert.equal(db.pos.txid, 2n, "the commit frame's write captured the transaction");

  const { image: replayed, lastPostApply } = replayChain(dataDir, "m.db");
  assert.equal(lastPostApply, db.pos.checksum);
  assert.deepEqual(
    replayed.subarray(4096, 8192),
    Buffer.alloc(4096, 0xbb),
    "the rewritten page, not the first",
  );
  assert.deepEqual(replayed.subarray(0, 4096), Buffer.from(page1));
  // What the capture read from memory is what the file holds.
  const walFile = fs.readFileSync(db.files.path("wal"));
  assert.deepEqual(walFile.subarray(32 + WAL_FRAME_HEADER_SIZE, 32 + frameSize), Buffer.alloc(4096, 0xbb));
});
