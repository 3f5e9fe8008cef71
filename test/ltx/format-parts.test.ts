// The small pieces: file names, positions, varints, the page index, the byte queue, the header
// codec, and the LZ4 frame extent scanner.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ByteQueue } from "../../src/ltx/byte-queue.js";
import { Lz4FrameExtent } from "../../src/ltx/lz4-frame-extent.js";
import {
  decodeHeader,
  decodePageIndex,
  encodeHeader,
  findPageIndexEntry,
  formatFileName,
  formatPos,
  isLtxFileName,
  lz4FrameCompress,
  LtxError,
  PageIndexBuilder,
  parseFileName,
  parsePos,
  type Header,
} from "../../src/ltx/index.js";
import { readUvarint, uvarintLength, writeUvarint } from "../../src/ltx/varint.js";

test("file names: %016x-%016x.ltx, strict", () => {
  assert.equal(formatFileName(1n, 0x1fn), "0000000000000001-000000000000001f.ltx");
  assert.deepEqual(parseFileName("00000000000000ab-00000000000000ff.ltx"), {
    minTxid: 0xabn,
    maxTxid: 0xffn,
  });
  assert.equal(
    formatFileName(0xffffffffffffffffn, 0xffffffffffffffffn),
    "ffffffffffffffff-ffffffffffffffff.ltx",
  );
  for (const bad of [
    "00000000000000AB-00000000000000ff.ltx",
    "0000000000000001-0000000000000001.ltx.tmp",
    "1-2.ltx",
    "0000000000000002-0000000000000001.ltx",
    "0000000000000000-0000000000000001.ltx",
    "/x/0000000000000001-0000000000000001.ltx",
  ]) {
    assert.throws(
      () => parseFileName(bad),
      (e) => e instanceof LtxError && e.rule === "file name",
      bad,
    );
    assert.equal(isLtxFileName(bad), false);
  }
  assert.throws(() => formatFileName(2n, 1n), RangeError);
  fc.assert(
    fc.property(
      fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }),
      fc.bigInt({ min: 0n, max: 1n << 63n }),
      (min, extra) => {
        const max = min + extra > (1n << 64n) - 1n ? min : min + extra;
        assert.deepEqual(parseFileName(formatFileName(min, max)), { minTxid: min, maxTxid: max });
      },
    ),
  );
});

test("positions: %016x/%016x", () => {
  assert.equal(formatPos({ txid: 3n, checksum: 0xd3e43abaed51b58an }), "0000000000000003/d3e43abaed51b58a");
  assert.deepEqual(parsePos("0000000000000003/d3e43abaed51b58a"), {
    txid: 3n,
    checksum: 0xd3e43abaed51b58an,
  });
  for (const bad of [
    "0000000000000003-d3e43abaed51b58a",
    "3/d3e43abaed51b58a",
    "0000000000000003/D3E43ABAED51B58A",
    "",
  ]) {
    assert.throws(() => parsePos(bad), LtxError, bad);
  }
});

test("uvarints: canonical, bounded, round trip", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (value) => {
      const buf = new Uint8Array(8);
      const end = writeUvarint(buf, 0, value);
      assert.equal(end, uvarintLength(value));
      assert.deepEqual(readUvarint(buf.subarray(0, end), 0), { value, length: end });
      assert.equal(readUvarint(buf.subarray(0, end - 1), 0), undefined);
    }),
  );
  assert.equal(readUvarint(Uint8Array.of(0x80, 0x00), 0), "overlong");
  assert.equal(readUvarint(new Uint8Array(8).fill(0xff), 0), "overflow");
  assert.equal(readUvarint(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), 0), "overflow");
});

test("page index: builder and parser agree; bad indexes are named", () => {
  const builder = new PageIndexBuilder();
  const entries = [
    { pgno: 1, offset: 100, size: 30 },
    { pgno: 5, offset: 130, size: 300 },
    { pgno: 300, offset: 430, size: 70000 },
  ];
  for (const e of entries) builder.add(e.pgno, e.offset, e.size);
  const encoded = builder.encode();
  const varints = encoded.subarray(0, encoded.length - 8);
  assert.equal(new DataView(encoded.buffer).getBigUint64(encoded.length - 8), BigInt(varints.length));
  assert.deepEqual(decodePageIndex(varints, { offset: 0, pageBlockEnd: 70430 }), entries);
  assert.deepEqual(findPageIndexEntry(entries, 5), entries[1]);
  assert.equal(findPageIndexEntry(entries, 6), undefined);
  const rule = (bytes: Uint8Array, end: number): string | undefined => {
    try {
      decodePageIndex(bytes, { offset: 0, pageBlockEnd: end });
      return undefined;
    } catch (err) {
      return (err as LtxError).rule;
    }
  };
  assert.equal(rule(varints, 70431), "index covers page block");
  assert.equal(rule(varints, 70000), "index within page block");
  assert.equal(rule(varints.subarray(0, varints.length - 1), 70430), "index length");
  assert.equal(rule(Uint8Array.of(2, 100, 20, 1, 120, 20, 0), 140), "index ascending");
  assert.equal(rule(Uint8Array.of(2, 101, 20, 0), 121), "index offsets contiguous");
});

test("byte queue: any chunking, views within a chunk, copies across", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 20 }),
      fc.array(fc.nat(25), { maxLength: 40 }),
      (chunks, reads) => {
        const queue = new ByteQueue();
        const all = Buffer.concat(chunks);
        for (const c of chunks) queue.push(c);
        let at = 0;
        for (const n of reads) {
          if (n > queue.length) {
            assert.throws(() => queue.take(n), RangeError);
            continue;
          }
          assert.deepEqual(Buffer.from(queue.peek(n)), all.subarray(at, at + n));
          const copy = queue.takeCopy(n);
          assert.equal(copy.constructor, Uint8Array);
          assert.deepEqual(Buffer.from(copy), all.subarray(at, at + n));
          at += n;
          assert.equal(queue.position, at);
          assert.equal(queue.length, all.length - at);
          const front = queue.front(5);
          assert.deepEqual(Buffer.from(front), all.subarray(at, at + front.length));
          assert.ok(front.length > 0 || queue.length === 0);
        }
      },
    ),
  );
});

test("header codec round trip", () => {
  const arbHeader = fc.record<Header>({
    flags: fc.constantFrom(0, 2),
    pageSize: fc.constantFrom(512, 1024, 4096, 65536),
    commit: fc.nat({ max: 0xffffffff }),
    minTxid: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }),
    maxTxid: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }),
    timestamp: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    preApplyChecksum: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    walOffset: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    walSize: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    walSalt1: fc.nat({ max: 0xffffffff }),
    walSalt2: fc.nat({ max: 0xffffffff }),
    nodeId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  });
  fc.assert(fc.property(arbHeader, (h) => assert.deepEqual(decodeHeader(encodeHeader(h)), { ...h })));
});

test("LZ4 frame extent: finds the end of a frame however it is split", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200_000 }),
      fc.uint8Array({ maxLength: 10 }),
      fc.nat(300),
      (data, after, step) => {
        const frame = lz4FrameCompress(data);
        const stream = Buffer.concat([frame, after]);
        const extent = new Lz4FrameExtent();
        let used = 0;
        const chunk = step + 1;
        for (let at = 0; at < stream.length && !extent.done; at += chunk)
          used += extent.scan(stream.subarray(at, at + chunk));
        assert.ok(extent.done);
        assert.equal(used, frame.length);
        assert.equal(extent.length, frame.length);
      },
    ),
    { numRuns: 40 },
  );
  assert.throws(
    () => new Lz4FrameExtent(100).scan(new Uint8Array(7)),
    (e) => e instanceof LtxError && e.offset === 100,
  );
});
