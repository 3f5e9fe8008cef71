// LZ4 frames: the v1 LiteFS body and the early-v3 per-page frames of the vectors decode and re-encode byte
// for byte; streaming in any split equals one-shot; every descriptor/size/checksum rule is enforced; and
// mutated frames only ever throw LtxError ELTXLZ4 (bounded fuzz loop).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import {
  LZ4_FRAME_MAGIC,
  Lz4FrameDecoder,
  Lz4FrameEncoder,
  lz4FrameCompress,
  lz4FrameDecompress,
} from "../../src/ltx/lz4-frame.js";
import { compressBlock } from "../../src/ltx/lz4-block.js";
import { LtxError } from "../../src/ltx/errors.js";
import { xxh32 } from "../../src/ltx/xxh32.js";
import { Prng } from "../support/prng.js";
import { REPO_ROOT } from "../support/paths.js";

const VECTORS = path.join(REPO_ROOT, "test", "fixtures", "ltx-vectors");
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const concat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

function isLz4Error(rule?: RegExp, offset?: number): (err: unknown) => boolean {
  return (err: unknown) =>
    err instanceof LtxError &&
    err.code === "ELTXLZ4" &&
    (rule === undefined || rule.test(err.message)) &&
    (offset === undefined || err.offset === offset);
}

function pushInPieces(decoder: Lz4FrameDecoder, data: Uint8Array, cuts: number[]): Uint8Array {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    out.push(...decoder.push(data.subarray(from, cut)));
    from = cut;
  }
  decoder.end();
  return concat(out);
}

test("the v1 LTX body frame decodes to the uncompressed body and re-encodes byte for byte", () => {
  const lz4 = fs.readFileSync(path.join(VECTORS, "v1-lz4-0000000000000001-0000000000000001.ltx"));
  const raw = fs.readFileSync(path.join(VECTORS, "v1-uncompressed-0000000000000001-0000000000000001.ltx"));
  const frame = lz4.subarray(100, lz4.length - 16);
  assert.equal(hex(frame.subarray(0, 7)), "04224d186440a7");
  const body = lz4FrameDecompress(frame, 1 << 20);
  assert.deepEqual(body, new Uint8Array(raw.subarray(100, raw.length - 16)));
  assert.equal(hex(lz4FrameCompress(body)), hex(frame));
  // One byte at a time, both ways.
  const decoder = new Lz4FrameDecoder();
  assert.deepEqual(
    pushInPieces(
      decoder,
      frame,
      Array.from({ length: frame.length }, (_, i) => i),
    ),
    body,
  );
  assert.equal(decoder.frameBytes, frame.length);
  const encoder = new Lz4FrameEncoder();
  const pieces: Uint8Array[] = [];
  for (const byte of body) pieces.push(...encoder.push(Uint8Array.of(byte)));
  pieces.push(...encoder.end());
  assert.equal(hex(concat(pieces)), hex(frame));
});

test("the early-v3 vector's per-page frames decode to its pages and re-encode identically", () => {
  const buf = fs.readFileSync(path.join(VECTORS, "legacy-v3-frame-0000000000000001-0000000000000001.ltx"));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const expected = [
    new Uint8Array(512).fill(0x41),
    Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 251),
  ];
  let off = 100;
  for (const [i, page] of expected.entries()) {
    assert.equal(view.getUint32(off), i + 1);
    assert.equal(view.getUint16(off + 4), 0, "early v3: page flags 0");
    const decoder = new Lz4FrameDecoder({ trailing: "keep", offsetBase: off + 6 });
    const data = concat(decoder.push(buf.subarray(off + 6)));
    assert.ok(decoder.finished);
    assert.deepEqual(data, page);
    const frame = buf.subarray(off + 6, off + 6 + decoder.frameBytes);
    assert.equal(hex(lz4FrameCompress(page)), hex(frame), `page ${i + 1}`);
    assert.equal(decoder.trailingBytes().length, buf.length - (off + 6 + decoder.frameBytes));
    off += 6 + decoder.frameBytes;
  }
  assert.equal(view.getUint32(off), 0, "terminator follows the last frame");
});

test("round trips: sizes across the 64 KiB block boundary; incompressible blocks are stored", () => {
  const rng = new Prng(7);
  for (const n of [0, 1, 13, 65535, 65536, 65537, 3 * 65536 + 100]) {
    for (const data of [
      new Uint8Array(n).fill(9),
      Uint8Array.from({ length: n }, () => rng.nextUint32() & 0xff),
      Uint8Array.from({ length: n }, (_, i) => (i % 1000 < 500 ? 1 : rng.nextUint32() & 0xff)),
    ]) {
      const frame = lz4FrameCompress(data);
      assert.deepEqual(lz4FrameDecompress(frame, n), data);
    }
  }
  // Noise: the first block is stored raw (size word has bit 31) as it does not shrink.
  const noise = Uint8Array.from({ length: 1000 }, () => rng.nextUint32() & 0xff);
  const frame = lz4FrameCompress(noise);
  const word = new DataView(frame.buffer, frame.byteOffset).getUint32(7, true);
  assert.equal(word, (0x80000000 | 1000) >>> 0);
  assert.deepEqual(frame.subarray(11, 1011), noise);
  // Tiny inputs (< 15 bytes) can never shrink and are stored too; the empty frame is header + end + checksum.
  assert.equal(hex(lz4FrameCompress(new Uint8Array(0))), "04224d186440a700000000055dcc02");
  // Compressed only when strictly smaller, as the Go writer decides.
  const data = new Uint8Array(300).fill(5);
  const block = compressBlock(data);
  const compressed = lz4FrameCompress(data);
  assert.equal(new DataView(compressed.buffer, compressed.byteOffset).getUint32(7, true), block.length);
});

test("streaming: any split of the input gives the same frame; any split of the frame the same data", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 150_000, size: "max" }),
      fc.array(fc.nat(150_000), { maxLength: 8, size: "max" }),
      fc.boolean(),
      (random, cutsRaw, repetitive) => {
        const data = repetitive ? random.map((b, i) => (i % 97 < 60 ? i % 7 : b)) : random;
        const cuts = [...new Set(cutsRaw.map((c) => Math.min(c, data.length)))].sort((a, b) => a - b);
        const oneShot = lz4FrameCompress(data);
        const encoder = new Lz4FrameEncoder();
        const parts: Uint8Array[] = [];
        let from = 0;
        for (const cut of [...cuts, data.length]) {
          parts.push(...encoder.push(data.subarray(from, cut)));
          from = cut;
        }
        parts.push(...encoder.end());
        assert.equal(hex(concat(parts)), hex(oneShot));
        const frameCuts = cuts.map((c) => Math.floor((c / Math.max(1, data.length)) * oneShot.length));
        assert.deepEqual(pushInPieces(new Lz4FrameDecoder(), oneShot, frameCuts), data);
      },
    ),
    { numRuns: 40 },
  );
});

/** A frame header with the given FLG/BD (and optional content size), its checksum byte computed. */
function header(flg: number, bd: number, contentSize?: number): Uint8Array {
  const descriptor = [flg, bd];
  if (contentSize !== undefined)
    for (let i = 0; i < 8; i++) descriptor.push(Math.floor(contentSize / 256 ** i) & 0xff);
  const hc = (xxh32(Uint8Array.from(descriptor)) >>> 8) & 0xff;
  return Uint8Array.of(0x04, 0x22, 0x4d, 0x18, ...descriptor, hc);
}

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

test("descriptor rules: magic, version, block independence, dictionary, reserved bits, BD, header checksum", () => {
  const ok = lz4FrameCompress(Uint8Array.of(1, 2, 3));
  const withHeader = (h: Uint8Array): Uint8Array => concat([h, ok.subarray(7)]);
  assert.deepEqual(lz4FrameDecompress(ok, 3), Uint8Array.of(1, 2, 3));
  const bad = Uint8Array.from(ok);
  bad[0] = 0x05;
  assert.throws(() => lz4FrameDecompress(bad, 10), isLz4Error(/magic/, 0));
  assert.throws(() => lz4FrameDecompress(withHeader(header(0xa4, 0x40)), 10), isLz4Error(/version/));
  assert.throws(() => lz4FrameDecompress(withHeader(header(0x44, 0x40)), 10), isLz4Error(/dependent/));
  assert.throws(() => lz4FrameDecompress(withHeader(header(0x65, 0x40)), 10), isLz4Error(/dictionary/));
  assert.throws(() => lz4FrameDecompress(withHeader(header(0x66, 0x40)), 10), isLz4Error(/reserved/));
  assert.throws(() => lz4FrameDecompress(withHeader(header(0x64, 0x30)), 10), isLz4Error(/BD/));
  assert.throws(() => lz4FrameDecompress(withHeader(header(0x64, 0xc0)), 10), isLz4Error(/BD/));
  assert.throws(() => lz4FrameDecompress(withHeader(header(0x64, 0x41)), 10), isLz4Error(/BD/));
  const badChecksum = Uint8Array.from(ok);
  badChecksum[6] ^= 1;
  assert.throws(() => lz4FrameDecompress(badChecksum, 10), isLz4Error(/header checksum/, 6));
  // Other legal block sizes (256 KiB … 4 MiB) are accepted.
  assert.deepEqual(lz4FrameDecompress(withHeader(header(0x64, 0x70)), 3), Uint8Array.of(1, 2, 3));
});

test("block and content rules: size ≤ maximum, checksums, content size, output limit, truncation", () => {
  // A stored block larger than the 64 KiB maximum.
  const tooBig = concat([header(0x64, 0x40), Uint8Array.of(...le32((0x80000000 | 65537) >>> 0))]);
  assert.throws(() => new Lz4FrameDecoder().push(tooBig), isLz4Error(/> maximum/, 7));
  // Content checksum mismatch.
  const frame = lz4FrameCompress(new Uint8Array(100).fill(3));
  const wrong = Uint8Array.from(frame);
  wrong[wrong.length - 1] ^= 0x80;
  assert.throws(() => lz4FrameDecompress(wrong, 100), isLz4Error(/content checksum/, wrong.length - 4));
  // Output limit.
  assert.throws(() => lz4FrameDecompress(frame, 99), isLz4Error(/more than 99/));
  // Truncation anywhere: end() throws.
  for (const cut of [0, 3, 7, 9, 11, frame.length - 5, frame.length - 1]) {
    const decoder = new Lz4FrameDecoder();
    decoder.push(frame.subarray(0, cut));
    assert.throws(() => decoder.end(), isLz4Error(/incomplete/));
  }
  // Trailing bytes: refused by default, kept on request.
  assert.throws(
    () => lz4FrameDecompress(concat([frame, Uint8Array.of(0)]), 100),
    isLz4Error(/after the end/),
  );
  const keep = new Lz4FrameDecoder({ trailing: "keep" });
  keep.push(concat([frame, Uint8Array.of(7, 8)]));
  keep.end();
  assert.deepEqual(keep.trailingBytes(), Uint8Array.of(7, 8));
  // A corrupt block inside: the offset is absolute (offsetBase + block start + position in block).
  const corrupt = Uint8Array.from(frame);
  // Block at 11: token, one literal, then the first match offset at block position 2.
  corrupt[13] = 0xff;
  corrupt[14] = 0xff;
  assert.throws(
    () => new Lz4FrameDecoder({ offsetBase: 100 }).push(corrupt),
    isLz4Error(/offset/, 100 + 11 + 2),
  );
  // A decoder that failed keeps failing.
  const failed = new Lz4FrameDecoder();
  assert.throws(() => failed.push(wrong));
  assert.throws(() => failed.push(new Uint8Array(1)), isLz4Error(/content checksum/));
});

test("optional frame fields written by other encoders: content size and block checksums", () => {
  const data = new Uint8Array(5000).map((_, i) => i % 13);
  const block = compressBlock(data);
  const blockBytes = [...le32(block.length), ...block];
  const tail = [...le32(0), ...le32(xxh32(data))];
  // FLG 0x6c: content size + content checksum.
  const sized = concat([header(0x6c, 0x40, 5000), Uint8Array.from([...blockBytes, ...tail])]);
  assert.deepEqual(lz4FrameDecompress(sized, 5000), data);
  const missized = concat([header(0x6c, 0x40, 4999), Uint8Array.from([...blockBytes, ...tail])]);
  assert.throws(() => lz4FrameDecompress(missized, 5000), isLz4Error(/content size/));
  assert.throws(() => lz4FrameDecompress(sized, 4000), isLz4Error(/content size/));
  // FLG 0x70: block checksums (xxh32 of the stored block bytes), no content checksum.
  const summed = concat([
    header(0x70, 0x40),
    Uint8Array.from([...blockBytes, ...le32(xxh32(block)), ...le32(0)]),
  ]);
  assert.deepEqual(lz4FrameDecompress(summed, 5000), data);
  const badSum = Uint8Array.from(summed);
  badSum[7 + 4 + block.length] ^= 1;
  assert.throws(() => lz4FrameDecompress(badSum, 5000), isLz4Error(/block checksum/, 11));
  assert.equal(LZ4_FRAME_MAGIC, 0x184d2204);
});

test("the encoder refuses use after end", () => {
  const encoder = new Lz4FrameEncoder();
  encoder.end();
  assert.throws(() => encoder.push(new Uint8Array(1)));
  assert.throws(() => encoder.end());
});

test("fuzz: mutated, truncated and spliced frames only ever throw ELTXLZ4", () => {
  const seed = Date.now() >>> 0;
  const rng = new Prng(seed);
  const below = (n: number): number => (n <= 0 ? 0 : rng.nextUint32() % n);
  const inputs = [
    new Uint8Array(70_000).map((_, i) => (i % 500 < 300 ? i & 7 : (i * 131) & 0xff)),
    Uint8Array.from({ length: 2000 }, () => rng.nextUint32() & 0xff),
    new Uint8Array(1036).fill(0x41),
  ];
  const frames = inputs.map(lz4FrameCompress);
  const deadline = Date.now() + 2500;
  let cases = 0;
  let refused = 0;
  while (Date.now() < deadline && cases < 50_000) {
    const frame = Uint8Array.from(frames[below(frames.length)]);
    let input: Uint8Array = frame;
    switch (below(3)) {
      case 0:
        for (let k = 1 + below(3); k > 0; k--) frame[below(frame.length)] ^= 1 << below(8);
        break;
      case 1:
        input = frame.subarray(0, below(frame.length));
        break;
      default:
        frame[below(frame.length)] = rng.nextUint32() & 0xff;
    }
    const decoder = new Lz4FrameDecoder({ maxOutputBytes: 100_000 });
    try {
      for (let at = 0; at < input.length;) {
        const step = 1 + below(20_000);
        decoder.push(input.subarray(at, at + step));
        at += step;
      }
      decoder.end();
    } catch (err) {
      if (!(err instanceof LtxError) || err.code !== "ELTXLZ4") {
        assert.fail(`seed ${seed} case ${cases}: unexpected ${String(err)}`);
      }
      refused++;
    }
    cases++;
  }
  assert.ok(cases > 100 && refused > cases / 2, `seed ${seed}: ${cases} cases, ${refused} refused`);
});
