// LZ4 blocks: byte-identical to the Go reference on its vectors, round trips on random and repetitive data,
// the LZ4 end-of-block rules that other decoders enforce, and a decoder that refuses every malformed block
// with LtxError ELTXLZ4 — never a crash, a hang or a write outside its output (bounded fuzz loop).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import {
  compressBlock,
  compressBlockBound,
  compressBlockInto,
  decompressBlock,
} from "../../src/ltx/lz4-block.js";
import { LtxError } from "../../src/ltx/errors.js";
import { Prng } from "../support/prng.js";
import { REPO_ROOT } from "../support/paths.js";

const VECTORS = path.join(REPO_ROOT, "test", "fixtures", "ltx-vectors");
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

function roundTrip(data: Uint8Array): Uint8Array {
  const block = compressBlock(data);
  const out = new Uint8Array(data.length);
  assert.equal(decompressBlock(block, out), data.length);
  assert.deepEqual(out, data);
  return block;
}

/** The LZ4 block format's end conditions (liblz4 relies on them) and the sequence structure. */
function assertWellFormed(block: Uint8Array, inputLength: number): void {
  let si = 0;
  let produced = 0;
  let lastMatchStart = -1;
  for (;;) {
    const token = block[si++];
    let literals = token >>> 4;
    if (literals === 15) for (let b = 255; b === 255; literals += b) b = block[si++];
    si += literals;
    produced += literals;
    if (si === block.length) break;
    si += 2;
    let length = (token & 15) + 4;
    if ((token & 15) === 15) for (let b = 255; b === 255; length += b) b = block[si++];
    lastMatchStart = produced;
    produced += length;
    assert.ok(si < block.length, "a match is never the last sequence");
  }
  assert.equal(produced, inputLength);
  if (lastMatchStart >= 0) {
    assert.ok(inputLength - lastMatchStart >= 12, "the last match starts at least 12 bytes before the end");
    assert.ok(inputLength - produced + (produced - lastMatchStart) >= 5, "the last 5 bytes are literals");
  }
}

test("reference blocks from the vectors README", () => {
  assert.equal(hex(compressBlock(new Uint8Array(512))), "1f000100ffda000200000200b00000000000000000000000");
  assert.equal(
    hex(compressBlock(new Uint8Array(1024).fill(0x32))),
    "1f320100ffffffdc000200000200b03232323232323232323232",
  );
});

test("every page block in the v3 vectors decompresses and recompresses to the same bytes", () => {
  let blocks = 0;
  for (const name of fs.readdirSync(VECTORS).filter((n) => /^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$/.test(n))) {
    const buf = fs.readFileSync(path.join(VECTORS, name));
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const pageSize = view.getUint32(8);
    for (let off = 100; view.getUint32(off) !== 0;) {
      assert.equal(view.getUint16(off + 4), 1, `${name}: page flags`);
      const size = view.getUint32(off + 6);
      const block = buf.subarray(off + 10, off + 10 + size);
      const page = new Uint8Array(pageSize);
      assert.equal(decompressBlock(block, page), pageSize);
      assert.equal(hex(compressBlock(page)), hex(block), `${name} page ${view.getUint32(off)}`);
      blocks++;
      off += 10 + size;
    }
  }
  assert.equal(blocks, 5);
});

test("round trips at the edge sizes (0, 1, 13, 14, 15, 64 KiB ± 1, 200 KiB) for zeros, runs and noise", () => {
  const rng = new Prng(20240601);
  for (const n of [0, 1, 4, 12, 13, 14, 15, 16, 20, 65535, 65536, 65537, 200 * 1024]) {
    const noise = Uint8Array.from({ length: n }, () => rng.nextUint32() & 0xff);
    const runs = Uint8Array.from({ length: n }, (_, i) => (i >> 6) & 3);
    for (const data of [new Uint8Array(n), runs, noise]) {
      const block = roundTrip(data);
      assertWellFormed(block, n);
      assert.ok(block.length <= compressBlockBound(n));
    }
  }
  assert.equal(hex(compressBlock(new Uint8Array(0))), "00");
});

test("random data round-trips (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70000, size: "max" }), (data) => {
      assertWellFormed(roundTrip(data), data.length);
    }),
    { numRuns: 60 },
  );
});

test("repetitive data round-trips and compresses (property)", () => {
  // Pieces drawn from a small set and repeated: long matches, overlapping matches, matches near the end.
  const piece = fc.record({
    bytes: fc.uint8Array({ minLength: 1, maxLength: 12, size: "max" }),
    times: fc.integer({ min: 1, max: 600 }),
  });
  fc.assert(
    fc.property(fc.array(piece, { minLength: 1, maxLength: 30, size: "max" }), (pieces) => {
      const parts = pieces.flatMap((p) => Array.from({ length: p.times }, () => p.bytes));
      const data = new Uint8Array(Buffer.concat(parts));
      const block = roundTrip(data);
      assertWellFormed(block, data.length);
    }),
    { numRuns: 150 },
  );
});

test("compressBlockInto writes the same bytes and refuses a destination below the bound", () => {
  const data = new Uint8Array(5000).map((_, i) => (i % 100 < 50 ? 7 : i & 0xff));
  const dst = new Uint8Array(compressBlockBound(data.length));
  const n = compressBlockInto(data, dst);
  assert.deepEqual(dst.subarray(0, n), compressBlock(data));
  assert.throws(() => compressBlockInto(data, new Uint8Array(data.length)), RangeError);
});

test("the decoder accepts valid blocks of other encoders (overlaps, long lengths, zero extension bytes)", () => {
  // 'a' then a match of offset 1, length 4+15+0 (extension byte 0), then 5 literal 'b's.
  const custom = Uint8Array.of(0x1f, 0x61, 0x01, 0x00, 0x00, 0x50, ...[0x62, 0x62, 0x62, 0x62, 0x62]);
  const out = new Uint8Array(25);
  assert.equal(decompressBlock(custom, out), 25);
  assert.equal(Buffer.from(out).toString(), "a".repeat(20) + "bbbbb");
  // 300 literals: 15 + 255 + 30.
  const lits = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
  const block = Uint8Array.of(0xf0, 255, 30, ...lits);
  const back = new Uint8Array(300);
  assert.equal(decompressBlock(block, back), 300);
  assert.deepEqual(back, lits);
  // A larger output buffer is fine: the length written is returned.
  assert.equal(decompressBlock(Uint8Array.of(0x30, 1, 2, 3), new Uint8Array(10)), 3);
});

function assertLz4Error(src: Uint8Array, dstSize: number, rule?: RegExp): void {
  assert.throws(
    () => decompressBlock(src, new Uint8Array(dstSize)),
    (err: unknown) =>
      err instanceof LtxError && err.code === "ELTXLZ4" && (rule === undefined || rule.test(err.message)),
  );
}

test("malformed blocks throw ELTXLZ4 naming the rule", () => {
  assertLz4Error(new Uint8Array(0), 10, /empty/);
  assertLz4Error(Uint8Array.of(0xf0), 100, /literal length/); // extension byte missing
  assertLz4Error(Uint8Array.of(0xf0, 255), 1000, /literal length/);
  assertLz4Error(Uint8Array.of(0x40, 1, 2), 10, /overrun the block/);
  assertLz4Error(Uint8Array.of(0x40, 1, 2, 3, 4), 3, /overrun the output/);
  assertLz4Error(Uint8Array.of(0x10, 9, 0x00, 0x00, 0x00), 100, /offset 0/);
  assertLz4Error(Uint8Array.of(0x10, 9, 0x02, 0x00, 0x00), 100, /offset 2/); // only 1 byte produced
  assertLz4Error(Uint8Array.of(0x10, 9, 0x01), 100, /truncated match offset/);
  assertLz4Error(Uint8Array.of(0x1f, 9, 0x01, 0x00), 100, /truncated match length/);
  assertLz4Error(Uint8Array.of(0x1f, 9, 0x01, 0x00, 255), 1000, /truncated match length/);
  assertLz4Error(Uint8Array.of(0x14, 9, 0x01, 0x00, 0x00), 5, /overruns the output/);
  assertLz4Error(Uint8Array.of(0x10, 9, 0x01, 0x00), 100, /no final literals/);
  const err = (() => {
    try {
      // 1 literal + a match of 4 (5 bytes out), then a match 9 back: its offset bytes are at 5.
      decompressBlock(Uint8Array.of(0x10, 7, 0x01, 0x00, 0x00, 0x09, 0x00, 0x00), new Uint8Array(50));
    } catch (e) {
      return e as LtxError;
    }
    return undefined;
  })();
  assert.equal(err?.offset, 5, "the offset points at the bad match offset in the block");
});

test("fuzz: mutated and truncated blocks never crash, hang or write outside the output", () => {
  const seed = Date.now() >>> 0;
  const rng = new Prng(seed);
  const byte = (): number => rng.nextUint32() & 0xff;
  const below = (n: number): number => (n <= 0 ? 0 : rng.nextUint32() % n);
  const sources = [
    new Uint8Array(4096),
    Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) % 251),
    Uint8Array.from({ length: 4096 }, (_, i) => (i % 300 < 200 ? i & 3 : byte())),
    Uint8Array.from({ length: 700 }, byte),
  ];
  const blocks = sources.map((s) => ({ block: compressBlock(s), size: s.length }));
  const GUARD = 64;
  const deadline = Date.now() + 2500;
  let cases = 0;
  let errors = 0;
  while (Date.now() < deadline && cases < 300_000) {
    const { block, size } = blocks[below(blocks.length)];
    const mutated = Uint8Array.from(block);
    let src: Uint8Array = mutated;
    switch (below(4)) {
      case 0:
        for (let k = 1 + below(4); k > 0; k--) mutated[below(mutated.length)] ^= 1 << below(8);
        break;
      case 1:
        src = mutated.subarray(0, below(mutated.length));
        break;
      case 2:
        for (let k = 1 + below(3); k > 0; k--) mutated[below(mutated.length)] = byte();
        break;
      default:
        src = Uint8Array.from({ length: below(64) }, byte);
    }
    const dstSize = below(3) === 0 ? below(size + 1) : size;
    const arena = new Uint8Array(dstSize + 2 * GUARD).fill(0xee);
    const dst = arena.subarray(GUARD, GUARD + dstSize);
    try {
      const n = decompressBlock(src, dst);
      assert.ok(n >= 0 && n <= dstSize);
    } catch (err) {
      if (!(err instanceof LtxError) || err.code !== "ELTXLZ4") {
        assert.fail(`seed ${seed} case ${cases}: unexpected ${String(err)}`);
      }
      errors++;
    }
    for (let g = 0; g < GUARD; g++) {
      if (arena[g] !== 0xee || arena[GUARD + dstSize + g] !== 0xee) {
        assert.fail(`seed ${seed} case ${cases}: wrote outside the output`);
      }
    }
    cases++;
  }
  assert.ok(cases > 1000 && errors > 0, `seed ${seed}: ${cases} cases, ${errors} refused`);
});
