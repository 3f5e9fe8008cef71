// The v3 page block and page index, including early v3 (one LZ4 frame per page instead of a
// size-prefixed LZ4 block). Frames: `u32 pgno | u16 flags | [u32 size] | payload`, terminated by six
// zero bytes; then the index, which must describe exactly the frames that were read.
//
// The file checksum covers, per frame, its 6-byte header, its 4-byte size (v3 only) and the
// *decompressed* page; then the terminator and the whole index with its u64 length.

import { compressBlockInto, decompressBlock } from "./lz4-block.js";
import { lz4FrameCompress, lz4FrameDecompress } from "./lz4-frame.js";
import { Lz4FrameExtent } from "./lz4-frame-extent.js";
import { PageIndexBuilder } from "./page-index.js";
import { PageSlab } from "./page-slab.js";
import {
  frameError,
  lz4CompressBound,
  lz4Error,
  lz4PageFrameBound,
  needOrTruncated,
  notCanonical,
  sameBytes,
  type LtxPage,
  type NeedInput,
  type PageBlockContext,
  type PageBlockReader,
} from "./page-frame.js";
import { readUvarint } from "./varint.js";

export const PAGE_FLAG_SIZE = 0x0001;
const FRAME_HEADER_SIZE = 6;
const BLOCK_FRAME_HEADER_SIZE = 10;
/** Bytes of varints one index entry may take, at most (three of up to 8). */
const MAX_ENTRY_BYTES = 24;

interface PendingLz4Frame {
  pgno: number;
  offset: number;
  header: Uint8Array;
  extent: Lz4FrameExtent;
  parts: Uint8Array[];
}

export class V3PageBlockReader implements PageBlockReader {
  readonly #ctx: PageBlockContext;
  /** Early v3: pages are LZ4 frames (page flags 0) rather than blocks (page flags 1). */
  readonly #lz4Frames: boolean;
  readonly #pageSize: number;
  readonly #maxBlock: number;
  /** An early-v3 frame's bytes are capped: a page cannot need more, and this stops a runaway frame. */
  readonly #maxLz4Frame: number;
  readonly #frames = new PageIndexBuilder();
  readonly #slab: PageSlab;
  #pending: PendingLz4Frame | undefined;
  /** Scratch for re-compressing pages under canonicalLz4. */
  #canonical: Uint8Array | undefined;
  #pageBlockEnd = -1;
  #indexStart = -1;
  #indexEntry = 0;
  #indexDone = false;

  constructor(ctx: PageBlockContext, options: { lz4Frames: boolean }) {
    this.#ctx = ctx;
    this.#lz4Frames = options.lz4Frames;
    this.#pageSize = ctx.header.pageSize;
    this.#maxBlock = lz4CompressBound(this.#pageSize);
    this.#maxLz4Frame = lz4PageFrameBound(this.#pageSize);
    this.#slab = new PageSlab(this.#pageSize);
  }

  nextFrame(): LtxPage | "terminator" | NeedInput {
    if (this.#pending !== undefined) return this.#continueLz4Frame(this.#pending);
    const { queue } = this.#ctx;
    if (queue.length < FRAME_HEADER_SIZE) return needOrTruncated(this.#ctx, "a page frame header");
    const offset = queue.position;
    const head = queue.peek(FRAME_HEADER_SIZE);
    const pgno = ((head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3]) >>> 0;
    const flags = (head[4] << 8) | head[5];
    if (pgno === 0) {
      if (flags !== 0) {
        throw frameError(
          "ELTXFRAME",
          this.#ctx,
          offset,
          "terminator flags zero",
          `page number 0 with flags 0x${flags.toString(16)}`,
        );
      }
      this.#ctx.hash.update(queue.take(FRAME_HEADER_SIZE));
      this.#pageBlockEnd = offset;
      this.#indexStart = queue.position;
      return "terminator";
    }
    const wantFlags = this.#lz4Frames ? 0 : PAGE_FLAG_SIZE;
    if (flags !== wantFlags) {
      throw frameError(
        "ELTXFRAME",
        this.#ctx,
        offset + 4,
        "page flags",
        `page ${pgno} has flags 0x${flags.toString(16).padStart(4, "0")}, this file's frames use 0x000${wantFlags}`,
      );
    }
    if (this.#lz4Frames) {
      const pending: PendingLz4Frame = {
        pgno,
        offset,
        header: queue.takeCopy(FRAME_HEADER_SIZE),
        extent: new Lz4FrameExtent(offset + FRAME_HEADER_SIZE),
        parts: [],
      };
      this.#pending = pending;
      return this.#continueLz4Frame(pending);
    }
    return this.#readBlockFrame(pgno, offset);
  }

  #readBlockFrame(pgno: number, offset: number): LtxPage | NeedInput {
    const { queue } = this.#ctx;
    if (queue.length < BLOCK_FRAME_HEADER_SIZE)
      return needOrTruncated(this.#ctx, `the frame header of page ${pgno}`);
    const head = queue.peek(BLOCK_FRAME_HEADER_SIZE);
    const size = ((head[6] << 24) | (head[7] << 16) | (head[8] << 8) | head[9]) >>> 0;
    if (size === 0 || size > this.#maxBlock) {
      throw frameError(
        "ELTXFRAME",
        this.#ctx,
        offset + 6,
        "compressed size bound",
        `page ${pgno} claims ${size} compressed bytes; a ${this.#pageSize}-byte page needs 1..${this.#maxBlock}`,
      );
    }
    if (queue.length < BLOCK_FRAME_HEADER_SIZE + size)
      return needOrTruncated(this.#ctx, `the data of page ${pgno}`);
    const frame = queue.take(BLOCK_FRAME_HEADER_SIZE + size);
    const data = this.#slab.next();
    let length: number;
    try {
      length = decompressBlock(frame.subarray(BLOCK_FRAME_HEADER_SIZE), data);
    } catch (err) {
      throw lz4Error(this.#ctx, offset + BLOCK_FRAME_HEADER_SIZE, `page ${pgno}`, err);
    }
    if (length !== this.#pageSize) {
      throw frameError(
        "ELTXFRAME",
        this.#ctx,
        offset + BLOCK_FRAME_HEADER_SIZE,
        "page decompresses to page size",
        `page ${pgno} decompresses to ${length} bytes, not ${this.#pageSize}`,
      );
    }
    if (this.#ctx.canonicalLz4) {
      this.#canonical ??= new Uint8Array(this.#maxBlock);
      const n = compressBlockInto(data, this.#canonical);
      if (!sameBytes(this.#canonical.subarray(0, n), frame.subarray(BLOCK_FRAME_HEADER_SIZE))) {
        throw notCanonical(this.#ctx, offset + BLOCK_FRAME_HEADER_SIZE, `the LZ4 block of page ${pgno}`);
      }
    }
    this.#ctx.hash.update(frame.subarray(0, BLOCK_FRAME_HEADER_SIZE)).update(data);
    this.#frames.add(pgno, offset, BLOCK_FRAME_HEADER_SIZE + size);
    return { pgno, data, offset };
  }

  #continueLz4Frame(pending: PendingLz4Frame): LtxPage | NeedInput {
    const { queue } = this.#ctx;
    const frameStart = pending.offset + FRAME_HEADER_SIZE;
    while (!pending.extent.done) {
      const room = this.#maxLz4Frame - pending.extent.length;
      if (room === 0) {
        throw frameError(
          "ELTXFRAME",
          this.#ctx,
          frameStart,
          "lz4 frame size bound",
          `the LZ4 frame of page ${pending.pgno} exceeds ${this.#maxLz4Frame} bytes`,
        );
      }
      const view = queue.front(room);
      if (view.length === 0) return needOrTruncated(this.#ctx, `the LZ4 frame of page ${pending.pgno}`);
      let used: number;
      try {
        used = pending.extent.scan(view);
      } catch (err) {
        throw lz4Error(this.#ctx, 0, `page ${pending.pgno}`, err);
      }
      pending.parts.push(queue.take(used));
    }
    this.#pending = undefined;
    const frame = concat(pending.parts, pending.extent.length);
    let data: Uint8Array;
    try {
      data = lz4FrameDecompress(frame, this.#pageSize);
    } catch (err) {
      throw lz4Error(this.#ctx, frameStart, `page ${pending.pgno}`, err);
    }
    if (data.length !== this.#pageSize) {
      throw frameError(
        "ELTXFRAME",
        this.#ctx,
        frameStart,
        "page decompresses to page size",
        `page ${pending.pgno} decompresses to ${data.length} bytes, not ${this.#pageSize}`,
      );
    }
    if (this.#ctx.canonicalLz4 && !sameBytes(lz4FrameCompress(data), frame)) {
      throw notCanonical(this.#ctx, frameStart, `the LZ4 frame of page ${pending.pgno}`);
    }
    this.#ctx.hash.update(pending.header).update(data);
    this.#frames.add(pending.pgno, pending.offset, FRAME_HEADER_SIZE + frame.length);
    return { pgno: pending.pgno, data, offset: pending.offset };
  }

  /** Reads the index entry by entry, comparing each with the frame that was read, then its length. */
  readTail(): true | NeedInput {
    const { queue, hash } = this.#ctx;
    while (!this.#indexDone) {
      const at = queue.position;
      const view = queue.peek(Math.min(queue.length, MAX_ENTRY_BYTES));
      const values: number[] = [];
      let used = 0;
      for (let i = 0; i < 3; i++) {
        const read = readUvarint(view, used);
        if (read === undefined) return needOrTruncated(this.#ctx, "the page index");
        if (typeof read === "string") {
          throw frameError(
            "ELTXINDEX",
            this.#ctx,
            at + used,
            "canonical varint",
            `page index varint is ${read}`,
          );
        }
        values.push(read.value);
        used += read.length;
        if (i === 0 && read.value === 0) break;
      }
      const count = this.#frames.count;
      if (values[0] === 0) {
        if (this.#indexEntry !== count) {
          throw frameError(
            "ELTXINDEX",
            this.#ctx,
            at,
            "index lists every frame",
            `page index ends after ${this.#indexEntry} entries; the page block has ${count} frames`,
          );
        }
        hash.update(queue.take(used));
        this.#indexDone = true;
        break;
      }
      if (this.#indexEntry >= count) {
        throw frameError(
          "ELTXINDEX",
          this.#ctx,
          at,
          "index lists every frame",
          `page index has more entries than the ${count} frames`,
        );
      }
      const want = this.#frames.entry(this.#indexEntry);
      const [pgno, offset, size] = values;
      if (pgno !== want.pgno || offset !== want.offset || size !== want.size) {
        throw frameError(
          "ELTXINDEX",
          this.#ctx,
          at,
          "index matches frames",
          `page index entry ${this.#indexEntry} says page ${pgno} at ${offset} (${size} bytes); ` +
            `the frame is page ${want.pgno} at ${want.offset} (${want.size} bytes)`,
        );
      }
      hash.update(queue.take(used));
      this.#indexEntry++;
    }
    if (queue.length < 8) return needOrTruncated(this.#ctx, "the page index length");
    const at = queue.position;
    const lengthBytes = queue.take(8);
    const stated = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0);
    const actual = at - this.#indexStart;
    if (stated !== BigInt(actual)) {
      throw frameError(
        "ELTXINDEX",
        this.#ctx,
        at,
        "index length",
        `page index length says ${stated} bytes, the index has ${actual}`,
      );
    }
    hash.update(lengthBytes);
    return true;
  }

  /** File offset of the terminator (valid after it was read). */
  get pageBlockEnd(): number {
    return this.#pageBlockEnd;
  }
}

/** Always a new plain array: the LZ4 frame decoder may return views of what it is given. */
function concat(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}
