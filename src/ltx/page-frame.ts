// What the page-block readers of each format generation share: the page they hand back, the context
// they read from, and the marker for "the input so far is not enough".

import type { ByteQueue } from "./byte-queue.js";
import type { Crc64Hash } from "./crc64.js";
import { LtxError, type LtxErrorCode } from "./errors.js";
import type { Header } from "./header.js";

/**
 * One page as a decoder returns it. `data` belongs to the receiver: it is never a view of the input
 * and never written again by the decoder. It may be a view into a larger buffer shared with other
 * pages (see page-slab.ts), so read it through its own offset and length, not `data.buffer`.
 */
export interface LtxPage {
  pgno: number;
  data: Uint8Array;
  /** Offset of the page's frame in the file (in the decompressed stream for v1-lz4). */
  offset: number;
}

/** Returned when a reader needs more input before it can go on. */
export const NEED_INPUT: unique symbol = Symbol("need input");
export type NeedInput = typeof NEED_INPUT;

export interface PageBlockContext {
  readonly header: Header;
  readonly file: string | undefined;
  /** The raw file bytes, positioned after the header. */
  readonly queue: ByteQueue;
  /** The file checksum's running CRC: readers add exactly the bytes the format says it covers. */
  readonly hash: Crc64Hash;
  /** Require canonical LZ4 encodings (see LtxParserOptions.canonicalLz4). */
  readonly canonicalLz4: boolean;
  /** True once the input has ended (no more bytes will be pushed). */
  isEnded(): boolean;
}

/** Reads one format generation's page block, and whatever lies between it and the trailer. */
export interface PageBlockReader {
  /** The next page frame, "terminator" at the end of the page block, or NEED_INPUT. */
  nextFrame(): LtxPage | "terminator" | NeedInput;
  /** After the terminator: reads up to the trailer (v3: the page index). True when done. */
  readTail(): true | NeedInput;
}

/** Worst-case LZ4 block size for `n` input bytes; a block claiming more cannot be valid. */
export function lz4CompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/**
 * Most bytes an early-v3 page's LZ4 frame may take. A frame's size is not stated up front, so this
 * cap (generous: a page stored uncompressed plus frame overhead is far less) is what stops a runaway
 * frame before it is buffered.
 */
export function lz4PageFrameBound(pageSize: number): number {
  return 2 * pageSize + 1024;
}

/** Most bytes one whole page frame (header included) may take in a v3 or early-v3 page block. */
export function pageFrameBound(pageSize: number, lz4Frames: boolean): number {
  return lz4Frames ? 6 + lz4PageFrameBound(pageSize) : 10 + lz4CompressBound(pageSize);
}

export function frameError(
  code: LtxErrorCode,
  ctx: PageBlockContext,
  offset: number,
  rule: string,
  detail: string,
  cause?: unknown,
): LtxError {
  return new LtxError(code, detail, { file: ctx.file, offset, rule, cause });
}

/**
 * Re-raises an error from an LZ4 primitive (which knows no file, and offsets only relative to what it
 * was given) as an LtxError naming the file and `base + its offset`. Anything that is not an LtxError is a bug in a primitive, reported as ELTXLZ4 too so a
 * corrupt file can never surface as an untyped exception.
 */
export function lz4Error(ctx: PageBlockContext, base: number, what: string, err: unknown): LtxError {
  if (err instanceof LtxError) {
    return new LtxError(err.code, `${what}: ${err.detail}`, {
      file: ctx.file,
      offset: base + (err.offset ?? 0),
      rule: err.rule ?? "lz4",
      cause: err,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new LtxError("ELTXLZ4", `${what}: ${message}`, {
    file: ctx.file,
    offset: base,
    rule: "lz4",
    cause: err,
  });
}

/** Throws ELTXTRUNCATED if the input has ended; otherwise returns NEED_INPUT. */
export function needOrTruncated(ctx: PageBlockContext, what: string): NeedInput {
  if (ctx.isEnded()) {
    const end = ctx.queue.position + ctx.queue.length;
    throw frameError("ELTXTRUNCATED", ctx, end, "complete file", `file ends at byte ${end}, inside ${what}`);
  }
  return NEED_INPUT;
}

/** True when `a` and `b` hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function notCanonical(ctx: PageBlockContext, offset: number, what: string): LtxError {
  return new LtxError("ELTXLZ4", `${what} is not the reference compressor's encoding of its content`, {
    file: ctx.file,
    offset,
    rule: "canonical lz4",
  });
}
