// Sizes and counts an attacker writes into an LTX file — a page count of four billion, a v3 frame
// size of 2^32 − 1, an LZ4 block of 2 GiB, a page index whose length or entries point outside the
// file — must fail fast with an LtxError, never by allocating what the file claims (a RangeError from
// an impossible allocation, or gigabytes really allocated).

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  CHECKSUM_FLAG,
  LtxError,
  LtxPageReader,
  decodeLtx,
  encodeHeader,
  lz4FrameCompress,
  planApply,
  verifyLtxFile,
} from "../../src/ltx/index.js";
import { filled, makeHeader, tempDir } from "./ltx-fixtures.js";
import { concat, rawV1, rawV3, uvarint } from "./raw-ltx.js";

const POST = CHECKSUM_FLAG | 0x1234n;

function assertLtxError(err: unknown, code: string): true {
  assert.ok(err instanceof LtxError, `expected an LtxError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return true;
}

function u64(value: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value);
  return b;
}

test("a header claiming 2^32 - 1 pages fails on the pages, and growing a database to it is refused", async (t) => {
  const snapshot = makeHeader({ commit: 0xffffffff });
  const bytes = rawV3(snapshot, [{ pgno: 1, page: filled(512, 1) }], { postApply: POST });
  assert.throws(
    () => decodeLtx(bytes),
    (err) => assertLtxError(err, "ELTXFRAME"),
  );

  // An incremental file (no checksums) that says the database now has 2^32 - 1 pages but carries one.
  const dir = tempDir(t);
  const db = path.join(dir, "db");
  const database = filled(512 * 2, 0);
  database[16] = 0x02; // SQLite header: page size 512 (big-endian u16 at 16)
  fs.writeFileSync(db, database);
  const grow = makeHeader({ flags: 0x2, commit: 0xffffffff, minTxid: 2n, maxTxid: 2n });
  const file = path.join(dir, "grow.ltx");
  fs.writeFileSync(file, rawV3(grow, [{ pgno: 2, page: filled(512, 2) }], { postApply: 0n }));
  await assert.rejects(planApply(db, [file]), (err) => assertLtxError(err, "ELTXAPPLY"));
  assert.equal(fs.statSync(db).size, 1024, "the database was not touched");
});

test("a v3 frame size of 2^32 - 1 fails at its header, in memory and streaming", async (t) => {
  const header = makeHeader();
  const bytes = rawV3(header, [{ pgno: 1, page: filled(512, 1), size: 0xffffffff }], { postApply: POST });
  assert.throws(
    () => decodeLtx(bytes),
    (err) => assertLtxError(err, "ELTXFRAME"),
  );
  const file = path.join(tempDir(t), "frame.ltx");
  fs.writeFileSync(file, bytes);
  await assert.rejects(verifyLtxFile(file), (err) => assertLtxError(err, "ELTXFRAME"));
});

test("a v1 LZ4 block claiming 2 GiB fails at its size field", () => {
  const header = makeHeader({ flags: 0x1 });
  const bytes = rawV1(header, [{ pgno: 1, page: filled(512, 1) }], { postApply: POST });
  // The first block's size word follows the 7-byte frame descriptor (magic, FLG, BD, HC) after the header.
  const sizeAt = 100 + 7;
  const hostile = Uint8Array.from(bytes);
  new DataView(hostile.buffer).setUint32(sizeAt, 0x7fffffff, true);
  assert.throws(
    () => decodeLtx(hostile),
    (err) => assertLtxError(err, "ELTXLZ4"),
  );
});

test("a page index length pointing outside the file is refused before anything is read", async (t) => {
  const dir = tempDir(t);
  const header = makeHeader();
  for (const [label, length] of [
    ["2^64 - 1", (1n << 64n) - 1n],
    ["2^63", 1n << 63n],
    ["4 GiB", 1n << 32n],
    ["0", 0n],
  ] as const) {
    const file = path.join(dir, `index-${label}.ltx`);
    const bytes = rawV3(header, [{ pgno: 1, page: filled(512, 1) }], {
      postApply: POST,
      indexLength: length,
    });
    fs.writeFileSync(file, bytes);
    await assert.rejects(LtxPageReader.open(file), (err) => assertLtxError(err, "ELTXINDEX"), label);
  }
  // Entries whose offsets or sizes leave the page block.
  for (const [label, edit] of [
    ["size 2^40", (e: number[][]) => [[e[0][0], e[0][1], 2 ** 40]]],
    ["offset 2^50", (e: number[][]) => [[e[0][0], 2 ** 50, e[0][2]]]],
  ] as const) {
    const file = path.join(dir, `entry-${label}.ltx`);
    const bytes = rawV3(header, [{ pgno: 1, page: filled(512, 1) }], { postApply: POST, editIndex: edit });
    fs.writeFileSync(file, bytes);
    await assert.rejects(LtxPageReader.open(file), (err) => assertLtxError(err, "ELTXINDEX"), label);
  }
});

test("a page frame the index says spans 5 GiB of a sparse file is refused before it is read", async (t) => {
  // Header, one frame header at 100 whose index entry covers the whole (sparse) page block, then the
  // terminator, the index and the trailer. The index is consistent; only the frame is impossible.
  const file = path.join(tempDir(t), "sparse.ltx");
  const pageBlockEnd = 5 * 2 ** 30;
  const frameHead = Uint8Array.of(0, 0, 0, 1, 0, 1, 0, 0, 0, 20);
  const index = concat([uvarint(1), uvarint(100), uvarint(pageBlockEnd - 100), uvarint(0)]);
  const tail = concat([new Uint8Array(6), index, u64(BigInt(index.length)), u64(POST), u64(POST)]);
  const fd = fs.openSync(file, "w");
  try {
    fs.writeSync(fd, encodeHeader(makeHeader()), 0, 100, 0);
    fs.writeSync(fd, frameHead, 0, frameHead.length, 100);
    fs.writeSync(fd, tail, 0, tail.length, pageBlockEnd);
  } finally {
    fs.closeSync(fd);
  }
  const reader = await LtxPageReader.open(file);
  try {
    assert.equal(reader.index?.[0].size, pageBlockEnd - 100);
    await assert.rejects(reader.readPage(1), (err) => assertLtxError(err, "ELTXFRAME"));
  } finally {
    await reader.close();
  }
});

test("an early-v3 page frame may not claim more than a page needs either", async (t) => {
  const file = path.join(tempDir(t), "early.ltx");
  const header = makeHeader();
  const page = filled(512, 3);
  // An LZ4 frame of the page followed by 1 MiB of padding the index counts as part of the frame.
  const frame = concat([lz4FrameCompress(page), new Uint8Array(1 << 20)]);
  const head = Uint8Array.of(0, 0, 0, 1, 0, 0);
  const index = concat([uvarint(1), uvarint(100), uvarint(6 + frame.length), uvarint(0)]);
  const tail = concat([new Uint8Array(6), index, u64(BigInt(index.length)), u64(POST), u64(POST)]);
  fs.writeFileSync(file, concat([encodeHeader(header), head, frame, tail]));
  const reader = await LtxPageReader.open(file);
  try {
    await assert.rejects(reader.readPage(1), (err) => assertLtxError(err, "ELTXFRAME"));
  } finally {
    await reader.close();
  }
});
