// Streaming decoder of the LZ4 frame format (see lz4-frame.ts for the layout LiteFS v1 writes).
//
// Accepts any frame of version 01 with independent blocks and no dictionary: optional content size,
// content checksum and block checksums (spec semantics: xxh32 of the stored block bytes) are read and
// verified; block sizes are capped by the BD byte. Every failure is LtxError ELTXLZ4 with the byte offset
// in the frame stream (plus `offsetBase`), and a decoder that failed keeps failing.

import { decompressBlock } from "./lz4-block.js";
import { LtxError } from "./errors.js";
import { Xxh32, xxh32 } from "./xxh32.js";

export const LZ4_FRAME_MAGIC = 0x184d2204;
const UNCOMPRESSED_BIT = 0x80000000;

/** A plain Uint8Array (not a Buffer, whose `slice` is a view) without zero-filling; callers overwrite it. */
function uninitializedBytes(n: number): Uint8Array {
  const buffer = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, n);
}

/** Concatenates byte arrays into one new array (the single part itself when there is one). */
export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

export interface Lz4FrameDecoderOptions {
  /** Added to every offset in errors (e.g. 100 when the frame starts after an LTX header). */
  offsetBase?: number;
  /** Largest total decompressed size accepted; more throws ELTXLZ4. Default: no limit. */
  maxOutputBytes?: number;
  /** What to do with bytes after the frame's end: "error" (default) or "keep" them for `trailingBytes`. */
  trailing?: "error" | "keep";
  /**
   * Receives each decoded block instead of `push`'s result (which is then empty). The view is only valid
   * during the call — the decoder reuses its memory — so copy what you keep. Saves an allocation per block.
   */
  onData?: (view: Uint8Array) => void;
}

const enum State {
  Magic,
  Descriptor,
  DescriptorRest,
  BlockSize,
  BlockData,
  ContentChecksum,
  Done,
}

/** Streaming LZ4 frame decoder; returned arrays are new and owned by the caller. */
export class Lz4FrameDecoder {
  readonly #offsetBase: number;
  readonly #maxOutput: number;
  readonly #keepTrailing: boolean;
  readonly #onData: ((view: Uint8Array) => void) | undefined;
  #scratch = new Uint8Array(0);
  #state = State.Magic;
  #offset = 0; // frame bytes consumed so far
  #output = 0;
  #stage = new Uint8Array(16);
  #staged = 0;
  #flg = 0;
  #bd = 0;
  #blockMax = 0;
  #blockSize = 0; // current block: stored length
  #blockStored = false;
  #contentSize: number | undefined;
  #checksum: Xxh32 | undefined;
  #trailing: Uint8Array[] = [];
  #failure: LtxError | undefined;

  constructor(options: Lz4FrameDecoderOptions = {}) {
    this.#offsetBase = options.offsetBase ?? 0;
    this.#maxOutput = options.maxOutputBytes ?? Number.POSITIVE_INFINITY;
    this.#keepTrailing = options.trailing === "keep";
    this.#onData = options.onData;
  }

  /** Whether the whole frame, checksum included, has been read. */
  get finished(): boolean {
    return this.#state === State.Done;
  }

  /** Bytes of the frame consumed so far (its total length once finished). */
  get frameBytes(): number {
    return this.#offset;
  }

  /** Bytes pushed after the end of the frame (only with `trailing: "keep"`). */
  trailingBytes(): Uint8Array {
    return concat(this.#trailing);
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      return this.#push(chunk);
    } catch (err) {
      if (err instanceof LtxError) this.#failure = err;
      throw err;
    }
  }

  /** Throws ELTXLZ4 unless the frame is complete. */
  end(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#state !== State.Done) {
      throw this.#fail(
        `lz4 frame is incomplete (${this.#staged} of ${this.#need()} bytes)`,
        "lz4 frame complete",
      );
    }
  }

  #fail(detail: string, rule: string, at = this.#offset): LtxError {
    return new LtxError("ELTXLZ4", detail, { offset: this.#offsetBase + at, rule });
  }

  /** Bytes the current state needs before it can advance. */
  #need(): number {
    switch (this.#state) {
      case State.Magic:
        return 4;
      case State.Descriptor:
        return 2;
      case State.DescriptorRest:
        return (this.#flg & 0x08 ? 8 : 0) + 1;
      case State.BlockSize:
      case State.ContentChecksum:
        return 4;
      case State.BlockData:
        return this.#blockSize + (this.#flg & 0x10 ? 4 : 0);
      case State.Done:
        return 0;
    }
  }

  #push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#state === State.Done) {
        if (!this.#keepTrailing) throw this.#fail("bytes after the end of the lz4 frame", "lz4 frame end");
        this.#trailing.push(Uint8Array.prototype.slice.call(chunk, pos));
        break;
      }
      const need = this.#need();
      let bytes: Uint8Array;
      if (this.#staged === 0 && chunk.length - pos >= need) {
        bytes = chunk.subarray(pos, pos + need);
        pos += need;
      } else {
        if (this.#stage.length < need) this.#stage = new Uint8Array(need);
        const take = Math.min(need - this.#staged, chunk.length - pos);
        this.#stage.set(chunk.subarray(pos, pos + take), this.#staged);
        this.#staged += take;
        pos += take;
        if (this.#staged < need) break;
        bytes = this.#stage.subarray(0, need);
        this.#staged = 0;
      }
      this.#advance(bytes, out);
      this.#offset += need;
    }
    return out;
  }

  /** Consumes exactly `#need()` bytes of the current state. */
  #advance(b: Uint8Array, out: Uint8Array[]): void {
    const u32 = (i: number): number => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
    switch (this.#state) {
      case State.Magic:
        if (u32(0) !== LZ4_FRAME_MAGIC)
          throw this.#fail(`bad lz4 frame magic 0x${u32(0).toString(16)}`, "lz4 magic");
        this.#state = State.Descriptor;
        return;
      case State.Descriptor: {
        const [flg, bd] = b;
        if (flg >>> 6 !== 1) throw this.#fail(`lz4 frame version ${flg >>> 6} is not 1`, "lz4 FLG version");
        if ((flg & 0x20) === 0)
          throw this.#fail("dependent lz4 blocks are not supported", "lz4 FLG block independence");
        if (flg & 0x03)
          throw this.#fail(`lz4 FLG 0x${flg.toString(16)}: reserved bit or dictionary`, "lz4 FLG");
        const sizeId = (bd >>> 4) & 0x7;
        if (bd & 0x8f || sizeId < 4) throw this.#fail(`bad lz4 BD byte 0x${bd.toString(16)}`, "lz4 BD");
        this.#flg = flg;
        this.#bd = bd;
        this.#blockMax = 1 << (8 + 2 * sizeId);
        this.#state = State.DescriptorRest;
        return;
      }
      case State.DescriptorRest: {
        // The header checksum covers FLG, BD and the optional content size.
        const descriptor = new Uint8Array(2 + b.length - 1);
        descriptor[0] = this.#flg;
        descriptor[1] = this.#bd;
        descriptor.set(b.subarray(0, b.length - 1), 2);
        const expected = (xxh32(descriptor) >>> 8) & 0xff;
        if (b[b.length - 1] !== expected) {
          throw this.#fail(
            `lz4 header checksum 0x${b[b.length - 1].toString(16)} != 0x${expected.toString(16)}`,
            "lz4 header checksum",
            this.#offset + b.length - 1,
          );
        }
        if (this.#flg & 0x08) {
          const size = u32(0) + u32(4) * 0x100000000;
          if (!Number.isSafeInteger(size) || size > this.#maxOutput) {
            throw this.#fail(`lz4 content size ${size} exceeds the limit`, "lz4 content size");
          }
          this.#contentSize = size;
        }
        if (this.#flg & 0x04) this.#checksum = new Xxh32();
        this.#state = State.BlockSize;
        return;
      }
      case State.BlockSize: {
        const word = u32(0);
        if (word === 0) {
          if (this.#contentSize !== undefined && this.#contentSize !== this.#output) {
            throw this.#fail(
              `lz4 content size ${this.#contentSize} but ${this.#output} bytes decoded`,
              "lz4 content size",
            );
          }
          this.#state = this.#checksum === undefined ? State.Done : State.ContentChecksum;
          return;
        }
        this.#blockStored = (word & UNCOMPRESSED_BIT) !== 0;
        this.#blockSize = word & 0x7fffffff;
        if (this.#blockSize > this.#blockMax) {
          throw this.#fail(
            `lz4 block of ${this.#blockSize} bytes > maximum ${this.#blockMax}`,
            "lz4 block size",
          );
        }
        this.#state = State.BlockData;
        return;
      }
      case State.BlockData: {
        const data = b.subarray(0, this.#blockSize);
        const at = this.#offset; // where this block's data starts
        if (this.#flg & 0x10) {
          const stated = u32(this.#blockSize);
          if (xxh32(data) !== stated)
            throw this.#fail("lz4 block checksum mismatch", "lz4 block checksum", at);
        }
        let decoded: Uint8Array;
        if (this.#blockStored) {
          // Uint8Array's slice copies; Buffer#slice would return a view of the caller's input.
          decoded = this.#onData === undefined ? Uint8Array.prototype.slice.call(data) : data;
        } else {
          // Decode straight into the array handed out (full blocks need no second copy; it is not
          // zero-filled, and only the bytes written are ever exposed), or into scratch for `onData`.
          if (this.#onData !== undefined && this.#scratch.length < this.#blockMax) {
            this.#scratch = new Uint8Array(this.#blockMax);
          }
          const target = this.#onData === undefined ? uninitializedBytes(this.#blockMax) : this.#scratch;
          let n: number;
          try {
            n = decompressBlock(data, target);
          } catch (err) {
            const inner = err instanceof LtxError ? err : undefined;
            throw new LtxError("ELTXLZ4", inner?.detail ?? String(err), {
              offset: this.#offsetBase + at + (inner?.offset ?? 0),
              rule: inner?.rule ?? "lz4 block",
              cause: err,
            });
          }
          decoded =
            this.#onData !== undefined || n === target.length ? target.subarray(0, n) : target.slice(0, n);
        }
        this.#output += decoded.length;
        if (this.#output > this.#maxOutput) {
          throw this.#fail(`lz4 frame decodes to more than ${this.#maxOutput} bytes`, "lz4 output limit", at);
        }
        this.#checksum?.update(decoded);
        if (decoded.length === 0) {
          // nothing to hand out
        } else if (this.#onData !== undefined) {
          this.#onData(decoded);
        } else {
          out.push(decoded);
        }
        this.#state = State.BlockSize;
        return;
      }
      case State.ContentChecksum: {
        const expected = this.#checksum?.digest();
        if (u32(0) !== expected) {
          throw this.#fail(
            `lz4 content checksum 0x${u32(0).toString(16)} != 0x${expected?.toString(16)}`,
            "lz4 content checksum",
          );
        }
        this.#state = State.Done;
        return;
      }
      case State.Done:
        return;
    }
  }
}
