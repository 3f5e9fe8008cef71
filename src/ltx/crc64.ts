// CRC-64/GO-ISO — the checksum of LTX files and SQLite pages (Go's hash/crc64 with crc64.ISO).
// Polynomial 0x1B reflected (0xD800000000000000), init ~0, xorout ~0: crc64("123456789") = b90956c775a41001.
//
// Two implementations compute identical results: a hand-assembled WebAssembly module (crc64-wasm.ts, used
// for inputs of WASM_MIN_BYTES and more when WebAssembly is available) and plain JavaScript (crc64-js.ts,
// for short inputs, the fallback, and the test oracle). BigInt appears only at this API boundary: the
// streaming hash keeps the register as two uint32 halves, so updating it makes no BigInt.

import { absorbBytes, absorbWord, type Crc64Register } from "./crc64-js.js";
import { absorbBytesWasm, wasmCrc64Available } from "./crc64-wasm.js";

/** Below this, JS beats copying into WASM memory and calling in (measured: bench/ltx-primitives.ts). */
export const WASM_MIN_BYTES = 512;

/** Absorbs `data` into the raw register, through WASM when it pays. */
export function absorbCrc64(reg: Crc64Register, data: Uint8Array): void {
  if (wasmCrc64Available && data.length >= WASM_MIN_BYTES) absorbBytesWasm(reg, data);
  else absorbBytes(reg, data);
}

function registerOf(crc: bigint): Crc64Register {
  return { hi: ~Number((crc >> 32n) & 0xffffffffn) >>> 0, lo: ~Number(crc & 0xffffffffn) >>> 0 };
}

function crcOf(reg: Crc64Register): bigint {
  return (BigInt(~reg.hi >>> 0) << 32n) | BigInt(~reg.lo >>> 0);
}

/** Like Go's `crc64.Update(previous, crc64.MakeTable(crc64.ISO), data)`; `previous` defaults to 0n. */
export function crc64(data: Uint8Array, previous = 0n): bigint {
  const reg = registerOf(previous);
  absorbCrc64(reg, data);
  return crcOf(reg);
}

/** crc64(be32(pgno) ‖ page) as two uint32 halves in `out` (no BigInt). */
export function pageCrc64Halves(pgno: number, page: Uint8Array, out: Crc64Register): void {
  out.hi = 0xffffffff;
  out.lo = 0xffffffff;
  // be32(pgno) read as a little-endian word is the byte-swapped page number.
  absorbWord(out, ((pgno & 0xff) << 24) | ((pgno & 0xff00) << 8) | ((pgno >>> 8) & 0xff00) | (pgno >>> 24));
  absorbCrc64(out, page);
  out.hi = ~out.hi >>> 0;
  out.lo = ~out.lo >>> 0;
}

/** Streaming CRC-64/GO-ISO: `update` any number of times; `digest` equals `crc64` of the concatenation. */
export class Crc64Hash {
  readonly #reg: Crc64Register;

  constructor(previous = 0n) {
    this.#reg = registerOf(previous);
  }

  update(data: Uint8Array): this {
    absorbCrc64(this.#reg, data);
    return this;
  }

  /** The CRC of everything passed to `update` so far (the hash stays usable). */
  digest(): bigint {
    return crcOf(this.#reg);
  }
}
