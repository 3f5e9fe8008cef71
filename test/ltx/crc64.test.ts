// CRC-64/GO-ISO: known values, the JS and WASM implementations against each other and against a naive
// bit-at-a-time reference, streaming against one-shot, and the little WASM assembler's error paths.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { crc64, Crc64Hash, WASM_MIN_BYTES } from "../../src/ltx/crc64.js";
import { absorbBytes, crc64Js, type Crc64Register } from "../../src/ltx/crc64-js.js";
import { absorbBytesWasm, crc64Wasm, wasmCrc64Available, WASM_DATA_BYTES } from "../../src/ltx/crc64-wasm.js";
import { assembleWasmModule } from "../../src/ltx/wasm-assembler.js";

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The definition, one bit at a time, in BigInt: slow and obviously right. */
function crc64Naive(data: Uint8Array, previous = 0n): bigint {
  const mask = 0xffffffffffffffffn;
  let r = ~previous & mask;
  for (const byte of data) {
    r ^= BigInt(byte);
    for (let k = 0; k < 8; k++) r = r & 1n ? (r >> 1n) ^ 0xd800000000000000n : r >> 1n;
  }
  return ~r & mask;
}

/** Deterministic bytes without a PRNG dependency. */
function patterned(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

test("check value and empty input (Go's crc64.Checksum with crc64.ISO)", () => {
  assert.equal(crc64(ascii("123456789")), 0xb90956c775a41001n);
  assert.equal(crc64(new Uint8Array(0)), 0n);
  assert.equal(crc64(new Uint8Array(0), 0x1234n), 0x1234n);
  assert.equal(crc64Js(ascii("123456789")), 0xb90956c775a41001n);
  assert.equal(crc64Naive(ascii("123456789")), 0xb90956c775a41001n);
});

test("the WASM implementation is available in Node 20", () => {
  assert.equal(wasmCrc64Available, true);
  assert.equal(crc64Wasm(ascii("123456789")), 0xb90956c775a41001n);
});

test("JS matches the bit-at-a-time definition (random data, lengths, alignments, previous values)", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300, size: "max" }),
      fc.integer({ min: 0, max: 7 }),
      fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
      (bytes, shift, previous) => {
        const data = bytes.subarray(Math.min(shift, bytes.length));
        assert.equal(crc64Js(data, previous), crc64Naive(data, previous));
      },
    ),
    { numRuns: 300 },
  );
});

test("WASM == JS for every length around the lane (4 KiB) and word boundaries, at every alignment", () => {
  const base = patterned(3 * 4096 + 64, 7);
  const lengths = [
    0, 1, 3, 4, 7, 8, 9, 63, 64, 511, 512, 1023, 1024, 4095, 4096, 4097, 8191, 8192, 8200, 12288,
  ];
  for (const n of lengths) {
    for (let shift = 0; shift < 8; shift++) {
      const data = base.subarray(shift, shift + n);
      assert.equal(
        crc64Wasm(data, 0xdeadbeefcafef00dn),
        crc64Js(data, 0xdeadbeefcafef00dn),
        `n=${n} shift=${shift}`,
      );
    }
  }
});

test("WASM == JS on random inputs (property)", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 20000, size: "max" }),
      fc.integer({ min: 0, max: 15 }),
      fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
      (bytes, shift, previous) => {
        const data = bytes.subarray(Math.min(shift, bytes.length));
        assert.equal(crc64Wasm(data, previous), crc64Js(data, previous));
      },
    ),
    { numRuns: 200 },
  );
});

test("inputs larger than the WASM data area are chunked correctly", () => {
  const data = patterned(2 * WASM_DATA_BYTES + 12345, 3);
  assert.equal(crc64Wasm(data), crc64Js(data));
  assert.equal(crc64(data), crc64Js(data));
});

test("raw-register absorb: WASM and JS leave the same register", () => {
  const data = patterned(WASM_MIN_BYTES * 9 + 5, 11);
  const a: Crc64Register = { hi: 0x12345678, lo: 0x9abcdef0 };
  const b: Crc64Register = { ...a };
  absorbBytes(a, data);
  absorbBytesWasm(b, data);
  assert.deepEqual(a, b);
});

test("chaining: crc64(b, crc64(a)) == crc64(a ‖ b), as Go's crc64.Update", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 9000, size: "max" }), fc.nat(9000), (data, cut) => {
      const at = Math.min(cut, data.length);
      assert.equal(crc64(data.subarray(at), crc64(data.subarray(0, at))), crc64(data));
    }),
    { numRuns: 200 },
  );
});

test("streaming Crc64Hash == one-shot for any split", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 20000, size: "max" }),
      fc.array(fc.nat(20000), { maxLength: 12, size: "max" }),
      (data, cuts) => {
        const points = [...new Set(cuts.map((c) => Math.min(c, data.length)))].sort((x, y) => x - y);
        const hash = new Crc64Hash();
        let from = 0;
        for (const p of [...points, data.length]) {
          hash.update(data.subarray(from, p));
          from = p;
        }
        assert.equal(hash.digest(), crc64(data));
        assert.equal(hash.digest(), crc64(data), "digest does not reset");
      },
    ),
    { numRuns: 150 },
  );
  const seeded = new Crc64Hash(crc64(ascii("1234")));
  assert.equal(seeded.update(ascii("56789")).digest(), 0xb90956c775a41001n);
});

test("wasm assembler rejects what it cannot assemble", () => {
  const module = (body: string) => ({
    memory: { exportName: "memory", pages: 1 },
    functions: [{ name: "f", params: [["a", "i32"]] as const, locals: [], body }],
  });
  assert.throws(() => assembleWasmModule(module("local.get $nope")), /no local \$nope/);
  assert.throws(() => assembleWasmModule(module("i32.frobnicate")), /unsupported instruction/);
  assert.throws(() => assembleWasmModule(module("block")), /unclosed block/);
  assert.throws(() => assembleWasmModule(module("end")), /unbalanced end/);
  assert.throws(() => assembleWasmModule(module("block br 2 end")), /bad branch depth/);
  assert.throws(() => assembleWasmModule(module("i32.const 12z")), /bad integer/);
  assert.throws(() => assembleWasmModule(module("i32.const")), /missing its operand/);
  const ok = assembleWasmModule(module("local.get $a  i32.const -1  i32.xor  drop ;; comment"));
  assert.deepEqual([...ok.subarray(0, 8)], [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
});
