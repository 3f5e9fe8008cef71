// The LZ4 frame format as LiteFS v1 wrote it (pierrec/lz4 v4 Writer, 64 KiB blocks, "fast" level):
//
//   magic 04 22 4D 18 | FLG 0x64 | BD 0x40 | header checksum (xxh32(FLG BD) >> 8) & 0xFF
//   blocks: LE u32 size (bit 31 set = stored uncompressed) + data   — input cut into 64 KiB blocks;
//           a block is stored compressed only when the compressed form is smaller (as the Go writer does)
//   end mark LE u32 0 | LE u32 xxh32 of the whole content
//
// The encoder reproduces the Go writer's bytes exactly for any input, however it is split into pushes.
// (One difference: Go writes nothing at all when Close follows no Write; `end()` here always writes a
// complete, valid frame — what Go writes after a Write of zero bytes.)
//
// The decoder (lz4-frame-decoder.ts, re-exported here) reads any frame of version 01 with independent blocks.

import { compressBlockBound, compressBlockInto } from "./lz4-block.js";
import { concat, Lz4FrameDecoder } from "./lz4-frame-decoder.js";
import { Xxh32, xxh32 } from "./xxh32.js";

export { LZ4_FRAME_MAGIC, Lz4FrameDecoder, type Lz4FrameDecoderOptions } from "./lz4-frame-decoder.js";

const BLOCK_MAX = 64 * 1024;
const UNCOMPRESSED_BIT = 0x80000000;
/** FLG: version 01, independent blocks, content checksum. BD: 64 KiB maximum block. */
const FLG = 0x64;
const BD = 0x40;
const HEADER = Uint8Array.of(0x04, 0x22, 0x4d, 0x18, FLG, BD, (xxh32(Uint8Array.of(FLG, BD)) >>> 8) & 0xff);

function le32(value: number): Uint8Array {
  return Uint8Array.of(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24);
}

/** Streaming LZ4 frame encoder; every returned array is new and owned by the caller. */
export class Lz4FrameEncoder {
  readonly #block = new Uint8Array(BLOCK_MAX);
  #filled = 0;
  readonly #compressed = new Uint8Array(4 + compressBlockBound(BLOCK_MAX));
  readonly #checksum = new Xxh32();
  #headerWritten = false;
  #ended = false;

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#ended) throw new Error("Lz4FrameEncoder: push after end");
    const out: Uint8Array[] = [];
    this.#writeHeader(out);
    let i = 0;
    while (i < chunk.length) {
      if (this.#filled === 0 && chunk.length - i >= BLOCK_MAX) {
        out.push(this.#encodeBlock(chunk.subarray(i, i + BLOCK_MAX)));
        i += BLOCK_MAX;
        continue;
      }
      const take = Math.min(BLOCK_MAX - this.#filled, chunk.length - i);
      this.#block.set(chunk.subarray(i, i + take), this.#filled);
      this.#filled += take;
      i += take;
      if (this.#filled === BLOCK_MAX) {
        out.push(this.#encodeBlock(this.#block));
        this.#filled = 0;
      }
    }
    return out;
  }

  /** Flushes the last block and writes the end mark and content checksum. */
  end(): Uint8Array[] {
    if (this.#ended) throw new Error("Lz4FrameEncoder: end called twice");
    this.#ended = true;
    const out: Uint8Array[] = [];
    this.#writeHeader(out);
    if (this.#filled > 0) out.push(this.#encodeBlock(this.#block.subarray(0, this.#filled)));
    this.#filled = 0;
    const tail = new Uint8Array(8);
    tail.set(le32(this.#checksum.digest()), 4);
    out.push(tail);
    return out;
  }

  #writeHeader(out: Uint8Array[]): void {
    if (this.#headerWritten) return;
    this.#headerWritten = true;
    out.push(HEADER.slice());
  }

  #encodeBlock(data: Uint8Array): Uint8Array {
    this.#checksum.update(data);
    const buf = this.#compressed;
    const n = compressBlockInto(data, buf.subarray(4));
    if (n < data.length) {
      buf.set(le32(n), 0);
      return buf.slice(0, 4 + n);
    }
    const stored = new Uint8Array(4 + data.length);
    stored.set(le32((data.length | UNCOMPRESSED_BIT) >>> 0), 0);
    stored.set(data, 4);
    return stored;
  }
}

/** `data` as one LZ4 frame, byte-identical to pierrec/lz4 v4's Writer with LiteFS v1's settings. */
export function lz4FrameCompress(data: Uint8Array): Uint8Array {
  const encoder = new Lz4FrameEncoder();
  return concat([...encoder.push(data), ...encoder.end()]);
}

/** Decodes exactly one LZ4 frame (nothing may follow it) of at most `maxSize` decompressed bytes. */
export function lz4FrameDecompress(data: Uint8Array, maxSize: number): Uint8Array {
  let output = new Uint8Array(Math.min(maxSize, Math.max(64 * 1024, data.length * 4)));
  let length = 0;
  const decoder = new Lz4FrameDecoder({
    maxOutputBytes: maxSize,
    onData: (view) => {
      if (length + view.length > output.length) {
        const grown = new Uint8Array(Math.min(maxSize, Math.max(length + view.length, output.length * 2)));
        grown.set(output.subarray(0, length));
        output = grown;
      }
      output.set(view, length);
      length += view.length;
    },
  });
  decoder.push(data);
  decoder.end();
  return length === output.length ? output : output.slice(0, length);
}
