// LZ4 blocks: the compressor of pierrec/lz4 v4 (`CompressBlock`, the "fast" level), reproduced so that
// our output is byte-identical to the Go reference, and a bounds-checked decoder for any valid block.
//
// Why byte-identical matters: a v3 LTX file's checksum covers each page's *compressed size*, so an LTX
// file is only identical to Go's if every block is. Written here because no npm LZ4 package implements
// this exact compressor (see docs/dependencies.md); a native library would not be faster at FUSE speeds.
//
// The compressor (our own code, same algorithm and tie-breaks as the reference):
//  - a 65,536-entry table of 16-bit positions, keyed by a hash of the 6 bytes at a position:
//    ((le64 << 16) · 227718039650203) >> 48; positions read back relative to the current 64 KiB window;
//    a never-written entry reads as position 0 of the window (the reference's zeroed table);
//  - per step, probe positions i, i+1, i+2 (first hit wins), inserting i and i+1 (and i+2 on a second miss);
//    on three misses skip ahead 2 + ((i − anchor) >> 7);
//  - a hit is extended backwards over literals, then forwards 8 bytes at a time while within sn = n − 14;
//  - after a match, the position two bytes before its end is hashed and inserted;
//  - it always emits a compressed block (there is room: compressBlockBound), even when larger than src.

import { LtxError } from "./errors.js";

const MIN_MATCH = 4;
const MF_LIMIT = 14; // the last match must start at least 14 bytes before the end
const WINDOW = 65536;
const SKIP_LOG = 7;

/** Largest compressed size of `n` bytes (the reference's CompressBlockBound). */
export function compressBlockBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

// Hash table: entry = (generation << 16) | position & 0xffff. Bumping the generation clears the table in
// O(1) per block (the reference clears an in-use bitmap instead); a stale generation reads as position 0.
const table = new Int32Array(1 << 16);
let generation = 0;

function nextGeneration(): void {
  generation++;
  if (generation > 0x7fff) {
    table.fill(0);
    generation = 1;
  }
}

// Bits 32..47 of x · 227718039650203 (mod 2^48), x = a0 + a1·2^16 + a2·2^32 the 48-bit little-endian value
// of six bytes, computed on 16-bit limbs with exact integer arithmetic (no BigInt).
const P0 = 0xbf9b;
const P1 = 0xbcdc;
const P2 = 0xcf1b;
function hash48(a0: number, a1: number, a2: number): number {
  const carry = ((Math.imul(a0, P0) >>> 16) + Math.imul(a0, P1) + Math.imul(a1, P0)) >>> 16;
  return (carry + Math.imul(a0, P2) + Math.imul(a1, P1) + Math.imul(a2, P0)) & 0xffff;
}

/** Hash of the six bytes at `i`, from the little-endian words at i and i + 4. */
function hashAt(view: DataView, i: number): number {
  const lo = view.getInt32(i, true);
  return hash48(lo & 0xffff, lo >>> 16, view.getInt32(i + 4, true) & 0xffff);
}

/** The position stored for hash `h`, read relative to the 64 KiB window of `si` (may be < 0: no match). */
function lookup(h: number, si: number): number {
  const entry = table[h];
  let i = entry >>> 16 === generation ? entry & 0xffff : 0;
  i += si - (si & 0xffff);
  return i >= si ? i - WINDOW : i;
}

function store(h: number, si: number): void {
  table[h] = (generation << 16) | (si & 0xffff);
}

/** Index (0..3) of the lowest non-zero byte of a non-zero 32-bit value. */
function firstByteSet(x: number): number {
  return (31 - Math.clz32(x & -x)) >> 3;
}

/**
 * Compresses `src` into `dst` (which must hold compressBlockBound(src.length) bytes) and returns the
 * compressed length. Identical bytes to pierrec/lz4 v4 CompressBlock with a full-size destination.
 */
export function compressBlockInto(src: Uint8Array, dst: Uint8Array): number {
  const n = src.length;
  if (dst.length < compressBlockBound(n)) {
    throw new RangeError(`lz4: destination of ${dst.length} bytes < bound ${compressBlockBound(n)}`);
  }
  nextGeneration();
  // Words are read through a DataView: all reads below stay within [0, n) because si < sn = n − 14 and
  // candidate positions are only read once their offset is known to be in (0, 64 KiB), so ≥ 0.
  const view = new DataView(src.buffer, src.byteOffset, n);
  let si = 0;
  let di = 0;
  let anchor = 0;
  const sn = n - MF_LIMIT;
  while (si < sn) {
    // The eight bytes at si give the three 6-byte windows at si, si+1, si+2.
    const lo = view.getInt32(si, true);
    const hi = view.getInt32(si + 4, true);
    const h = hash48(lo & 0xffff, lo >>> 16, hi & 0xffff);
    const h2 = hash48((lo >>> 8) & 0xffff, ((lo >>> 24) | (hi << 8)) & 0xffff, (hi >>> 8) & 0xffff);
    const ref = lookup(h, si);
    const ref2 = lookup(h2, si + 1);
    store(h, si);
    store(h2, si + 1);
    let offset = si - ref;
    if (offset <= 0 || offset >= WINDOW || lo !== view.getInt32(ref, true)) {
      const h3 = hash48(lo >>> 16, hi & 0xffff, hi >>> 16);
      const ref3 = lookup(h3, si + 2);
      si += 1;
      offset = si - ref2;
      if (offset <= 0 || offset >= WINDOW || ((lo >>> 8) | (hi << 24)) !== view.getInt32(ref2, true)) {
        si += 1;
        offset = si - ref3;
        store(h3, si);
        if (offset <= 0 || offset >= WINDOW || ((lo >>> 16) | (hi << 16)) !== view.getInt32(ref3, true)) {
          si += 2 + ((si - anchor) >> SKIP_LOG);
          continue;
        }
      }
    }

    // A match of at least 4 bytes at si, `offset` back. Extend it backwards over pending literals.
    let literals = si - anchor;
    let back = 0;
    for (let t = si - offset - 1; literals > 0 && t >= 0 && src[si - 1] === src[t]; t--) {
      si--;
      literals--;
      back++;
    }
    const matchBase = si + MIN_MATCH;
    si += MIN_MATCH + back;
    // Extend forwards 8 bytes at a time, stopping at the first difference, while si + 8 <= sn.
    while (si + 8 <= sn) {
      let x = view.getInt32(si, true) ^ view.getInt32(si - offset, true);
      if (x !== 0) {
        si += firstByteSet(x);
        break;
      }
      x = view.getInt32(si + 4, true) ^ view.getInt32(si + 4 - offset, true);
      if (x !== 0) {
        si += 4 + firstByteSet(x);
        break;
      }
      si += 8;
    }
    let extra = si - matchBase; // match length − 4

    dst[di] = (extra < 15 ? extra : 15) | (literals < 15 ? literals << 4 : 0xf0);
    di++;
    if (literals >= 15) {
      let l = literals - 15;
      for (; l >= 255; l -= 255) dst[di++] = 255;
      dst[di++] = l;
    }
    di = copyBytes(src, anchor, dst, di, literals);
    dst[di++] = offset & 0xff;
    dst[di++] = offset >>> 8;
    if (extra >= 15) {
      for (extra -= 15; extra >= 255; extra -= 255) dst[di++] = 255;
      dst[di++] = extra;
    }
    anchor = si;
    if (si >= sn) break;
    store(hashAt(view, si - 2), si - 2);
  }

  // Last literals.
  let last = n - anchor;
  if (last < 15) {
    dst[di++] = last << 4;
  } else {
    dst[di++] = 0xf0;
    for (last -= 15; last >= 255; last -= 255) dst[di++] = 255;
    dst[di++] = last;
  }
  return copyBytes(src, anchor, dst, di, n - anchor);
}

/** Copies src[from, from+len) to dst[to…] and returns to + len (a loop beats `set` for short runs). */
function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, len: number): number {
  if (len < 32) {
    for (let k = 0; k < len; k++) dst[to + k] = src[from + k];
  } else {
    dst.set(src.subarray(from, from + len), to);
  }
  return to + len;
}

/** The reference compressor's block for `src`, as a new array of exactly the compressed length. */
export function compressBlock(src: Uint8Array): Uint8Array {
  const dst = new Uint8Array(compressBlockBound(src.length));
  return dst.slice(0, compressBlockInto(src, dst));
}

function corrupt(detail: string, offset: number, rule: string): LtxError {
  return new LtxError("ELTXLZ4", `lz4 block: ${detail}`, { offset, rule });
}

/**
 * Decodes the LZ4 block `src` into `dst` and returns the number of bytes written. Every length and offset
 * is checked before use: throws LtxError ELTXLZ4 (offset = position in `src`) for an empty block, a
 * truncated sequence, an offset of 0 or before the start of the output, or output beyond `dst` — and never
 * reads or writes out of bounds. The caller checks that the length written is the one it expected.
 */
export function decompressBlock(src: Uint8Array, dst: Uint8Array): number {
  const sn = src.length;
  const dn = dst.length;
  if (sn === 0) throw corrupt("empty block", 0, "lz4 block not empty");
  let si = 0;
  let di = 0;
  for (;;) {
    const tokenAt = si;
    if (si >= sn) throw corrupt("ends after a match (no final literals)", si, "lz4 last sequence");
    const token = src[si++];
    let literals = token >>> 4;
    if (literals === 15) {
      for (;;) {
        if (si >= sn) throw corrupt("truncated literal length", si, "lz4 literal length");
        const b = src[si++];
        literals += b;
        if (b !== 255) break;
      }
    }
    if (literals > sn - si)
      throw corrupt(`${literals} literals overrun the block`, tokenAt, "lz4 literals in input");
    if (literals > dn - di)
      throw corrupt(`${literals} literals overrun the output`, tokenAt, "lz4 output size");
    if (literals < 32) {
      for (let k = 0; k < literals; k++) dst[di + k] = src[si + k];
    } else {
      dst.set(src.subarray(si, si + literals), di);
    }
    si += literals;
    di += literals;
    if (si === sn) return di; // the last sequence has literals only

    if (sn - si < 2) throw corrupt("truncated match offset", si, "lz4 offset");
    const offset = src[si] | (src[si + 1] << 8);
    if (offset === 0 || offset > di)
      throw corrupt(`match offset ${offset} at output ${di}`, si, "lz4 offset");
    si += 2;
    let length = (token & 15) + MIN_MATCH;
    if ((token & 15) === 15) {
      for (;;) {
        if (si >= sn) throw corrupt("truncated match length", si, "lz4 match length");
        const b = src[si++];
        length += b;
        if (b !== 255) break;
      }
    }
    if (length > dn - di) throw corrupt(`match of ${length} overruns the output`, tokenAt, "lz4 output size");
    const from = di - offset;
    if (length <= 16) {
      // Byte by byte is right for overlapping matches too (it repeats the last `offset` bytes).
      for (let k = 0; k < length; k++) dst[di + k] = dst[from + k];
      di += length;
    } else {
      // Non-overlapping pieces whose size doubles as the repeated pattern grows.
      for (let left = length; left > 0;) {
        const piece = Math.min(left, di - from);
        dst.copyWithin(di, from, from + piece);
        di += piece;
        left -= piece;
      }
    }
  }
}
