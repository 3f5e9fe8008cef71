// The v1 page block (ltx ≤ v0.3, LiteFS's format): frames `u32 pgno` + raw page, terminated by
// `u32 0`, no index. With header flag 0x1 the whole block (frames and terminator) is one LZ4 frame;
// it is decompressed as it streams in, a little input at a time, so memory stays bounded however well
// the data compresses. The file checksum covers the decompressed block.

import { ByteQueue } from "./byte-queue.js";
import { Lz4FrameDecoder, Lz4FrameEncoder } from "./lz4-frame.js";
import { Lz4FrameExtent } from "./lz4-frame-extent.js";
import { HEADER_SIZE } from "./header.js";
import { PageSlab } from "./page-slab.js";
import {
  frameError,
  lz4Error,
  needOrTruncated,
  notCanonical,
  sameBytes,
  type LtxPage,
  type NeedInput,
  type PageBlockContext,
  type PageBlockReader,
} from "./page-frame.js";

/**
 * Compressed bytes handed to the LZ4 decoder at a time. LZ4 expands at most ~255×, so one step yields
 * at most about 1 MiB of page data however the frame was made.
 */
const LZ4_INPUT_STEP = 4096;

interface Lz4Body {
  extent: Lz4FrameExtent;
  decoder: Lz4FrameDecoder;
  ended: boolean;
  /**
   * canonicalLz4: the decompressed body is compressed again as it comes out, and the result compared
   * with the frame bytes read (kept in `raw` until compared: at most about one 64 KiB block).
   */
  shadow: { encoder: Lz4FrameEncoder; raw: ByteQueue } | undefined;
}

export class V1PageBlockReader implements PageBlockReader {
  readonly #ctx: PageBlockContext;
  readonly #pageSize: number;
  /** The decompressed page block (v1-lz4) or the raw input itself (v1). */
  readonly #body: ByteQueue;
  readonly #lz4: Lz4Body | undefined;
  readonly #slab: PageSlab;

  constructor(ctx: PageBlockContext, options: { lz4: boolean }) {
    this.#ctx = ctx;
    this.#pageSize = ctx.header.pageSize;
    this.#slab = new PageSlab(this.#pageSize);
    if (options.lz4) {
      this.#body = new ByteQueue();
      // Both report file offsets: the frame starts right after the header.
      this.#lz4 = {
        extent: new Lz4FrameExtent(HEADER_SIZE),
        decoder: new Lz4FrameDecoder({ offsetBase: HEADER_SIZE }),
        ended: false,
        shadow: ctx.canonicalLz4 ? { encoder: new Lz4FrameEncoder(), raw: new ByteQueue() } : undefined,
      };
    } else {
      this.#body = ctx.queue;
      this.#lz4 = undefined;
    }
  }

  /** Offset of the next body byte: in the file (v1), or in the decompressed stream (v1-lz4). */
  #offset(): number {
    return this.#lz4 === undefined ? this.#body.position : HEADER_SIZE + this.#body.position;
  }

  nextFrame(): LtxPage | "terminator" | NeedInput {
    const ready = this.#ensure(4, "a page number");
    if (ready !== true) return ready;
    const offset = this.#offset();
    const head = this.#body.peek(4);
    const pgno = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
    if (pgno === 0) {
      this.#ctx.hash.update(this.#body.take(4));
      return "terminator";
    }
    const full = this.#ensure(4 + this.#pageSize, `page ${pgno}`);
    if (full !== true) return full;
    this.#ctx.hash.update(this.#body.take(4));
    const data = this.#slab.next();
    data.set(this.#body.take(this.#pageSize));
    this.#ctx.hash.update(data);
    return { pgno, data, offset };
  }

  /** v1-lz4: the LZ4 frame must end right after the terminator, with nothing more inside it. */
  readTail(): true | NeedInput {
    const lz4 = this.#lz4;
    if (lz4 === undefined) return true;
    if (this.#body.length > 0) return this.#dataAfterTerminator();
    while (!lz4.ended) {
      const step = this.#pump(lz4);
      if (step !== true) return step;
      if (this.#body.length > 0) return this.#dataAfterTerminator();
    }
    return true;
  }

  #dataAfterTerminator(): never {
    throw frameError(
      "ELTXFRAME",
      this.#ctx,
      this.#offset(),
      "nothing after terminator",
      "the LZ4 frame holds data after the page block's terminator",
    );
  }

  #compareShadow(shadow: { raw: ByteQueue }, expected: Uint8Array[]): void {
    for (const chunk of expected) {
      const at = HEADER_SIZE + shadow.raw.position;
      if (shadow.raw.length < chunk.length || !sameBytes(shadow.raw.take(chunk.length), chunk)) {
        throw notCanonical(this.#ctx, at, "the LZ4 frame");
      }
    }
  }

  /** Makes at least `n` body bytes available, or says why not. */
  #ensure(n: number, what: string): true | NeedInput {
    const lz4 = this.#lz4;
    while (this.#body.length < n) {
      if (lz4 === undefined) return needOrTruncated(this.#ctx, what);
      if (lz4.ended) {
        throw frameError(
          "ELTXTRUNCATED",
          this.#ctx,
          this.#offset() + this.#body.length,
          "complete page block",
          `the LZ4 frame ends inside ${what}, before the page block's terminator`,
        );
      }
      const step = this.#pump(lz4);
      if (step !== true) return step;
    }
    return true;
  }

  /** Feeds up to LZ4_INPUT_STEP compressed bytes to the decoder. */
  #pump(lz4: Lz4Body): true | NeedInput {
    const { queue } = this.#ctx;
    const input = queue.front(LZ4_INPUT_STEP);
    if (input.length === 0) return needOrTruncated(this.#ctx, "the LZ4-compressed page block");
    try {
      const used = lz4.extent.scan(input);
      const outputs = lz4.decoder.push(input.subarray(0, used));
      lz4.shadow?.raw.push(input.subarray(0, used));
      queue.skip(used);
      for (const output of outputs) {
        this.#body.push(output);
        if (lz4.shadow !== undefined) this.#compareShadow(lz4.shadow, lz4.shadow.encoder.push(output));
      }
      if (lz4.extent.done) {
        lz4.decoder.end();
        lz4.ended = true;
        if (lz4.shadow !== undefined) {
          this.#compareShadow(lz4.shadow, lz4.shadow.encoder.end());
          if (lz4.shadow.raw.length !== 0) throw notCanonical(this.#ctx, HEADER_SIZE, "the LZ4 frame");
        }
      }
    } catch (err) {
      throw lz4Error(this.#ctx, 0, "LZ4-compressed page block", err);
    }
    return true;
  }
}
