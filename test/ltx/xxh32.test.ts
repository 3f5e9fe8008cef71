// xxHash32: published values, the LZ4 checksums found in the Go-written vectors, streaming == one-shot.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { Xxh32, xxh32 } from "../../src/ltx/xxh32.js";
import { REPO_ROOT } from "../support/paths.js";

const VECTORS = path.join(REPO_ROOT, "test", "fixtures", "ltx-vectors");
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

test("published values (short inputs, the < 16-byte path)", () => {
  assert.equal(xxh32(new Uint8Array(0)), 0x02cc5d05);
  assert.equal(xxh32(ascii("a")), 0x550d7456);
  assert.equal(xxh32(ascii("abc")), 0x32d153ff);
  assert.equal(xxh32(ascii("Nobody inspects the spammish repetition")), 0xe2293b2f);
});

test("checksums inside the Go-written LZ4 frames (header byte, content checksums of 512 and 1036 bytes)", () => {
  assert.equal((xxh32(Uint8Array.of(0x64, 0x40)) >>> 8) & 0xff, 0xa7);
  const raw = fs.readFileSync(path.join(VECTORS, "v1-uncompressed-0000000000000001-0000000000000001.ltx"));
  const lz4 = fs.readFileSync(path.join(VECTORS, "v1-lz4-0000000000000001-0000000000000001.ltx"));
  const body = raw.subarray(100, raw.length - 16);
  assert.equal(xxh32(body), lz4.readUInt32LE(lz4.length - 16 - 4));
  const legacy = fs.readFileSync(path.join(VECTORS, "legacy-v3-frame-0000000000000001-0000000000000001.ltx"));
  // Page 1 (512 × 'A'): its frame is 43 bytes from offset 106; the checksum is the frame's last 4 bytes.
  assert.equal(xxh32(new Uint8Array(512).fill(0x41)), legacy.readUInt32LE(106 + 43 - 4));
});

test("streaming == one-shot for any split and seed", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 3000, size: "max" }),
      fc.array(fc.nat(3000), { maxLength: 10, size: "max" }),
      fc.nat(0xffffffff),
      (data, cutsRaw, seed) => {
        const cuts = [...new Set(cutsRaw.map((c) => Math.min(c, data.length)))].sort((a, b) => a - b);
        const hash = new Xxh32(seed);
        let from = 0;
        for (const cut of [...cuts, data.length]) {
          hash.update(data.subarray(from, cut));
          from = cut;
        }
        assert.equal(hash.digest(), xxh32(data, seed));
        assert.equal(hash.digest(), xxh32(data, seed), "digest does not reset");
      },
    ),
    { numRuns: 300 },
  );
  assert.notEqual(xxh32(ascii("abc"), 1), xxh32(ascii("abc")));
});
