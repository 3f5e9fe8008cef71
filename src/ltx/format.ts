// LTX format generations and how to tell them apart. No version number is stored: every generation
// starts with the same 100-byte `LTX1` header, so the bytes after it decide.
//
//   v1        ltx ≤ v0.3 (LiteFS v0.5): frames `u32 pgno` + raw page, `u32 0` terminator, no index.
//   v1-lz4    v1 with header flag 0x1: everything between header and trailer is one LZ4 frame.
//   v3-frame  early v3: frames `u32 pgno, u16 flags=0` + one LZ4 frame per page; index; trailer.
//   v3        current: frames `u32 pgno, u16 flags=1, u32 size` + raw LZ4 block; index; trailer.

import { ByteQueue } from "./byte-queue.js";
import { CHECKSUM_FLAG } from "./checksum.js";
import { Crc64Hash } from "./crc64.js";
import { LtxError } from "./errors.js";
import { HEADER_FLAG_COMPRESS_LZ4, HEADER_SIZE, type Header } from "./header.js";
import { V3PageBlockReader } from "./page-block-v3.js";
import { pageFrameBound } from "./page-frame.js";
import { TRAILER_SIZE } from "./trailer.js";

export type LtxFormat = "v1" | "v1-lz4" | "v3-frame" | "v3";

/** Formats the encoder writes (early v3 is read-only). */
export type LtxWriteFormat = "v1" | "v1-lz4" | "v3";

export const LTX_FORMATS: readonly LtxFormat[] = ["v1", "v1-lz4", "v3-frame", "v3"];

export function isV1Format(format: LtxFormat): boolean {
  return format === "v1" || format === "v1-lz4";
}

/**
 * Bytes from the start of the file that detection looks at: the header plus enough to tell an empty
 * v3 page block (6-byte terminator, uvarint 0, u64 1) from a v1 terminator and trailer. Every valid
 * file is at least 120 bytes long (v1 without pages), so a valid file always has them.
 */
export const DETECT_BYTES = HEADER_SIZE + 15;

const LZ4_FRAME_MAGIC = [0x04, 0x22, 0x4d, 0x18];

/** The empty v3 page block: terminator (6 zero bytes), uvarint(0), u64 index length 1. */
const EMPTY_V3_BLOCK = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

export interface DetectedFormat {
  format: LtxFormat;
  /**
   * False when a v1 file could produce the same bytes: a v1 page whose data starts with `00 01` reads
   * like a v3 frame, and `00 00 04 22 4D 18` like an early-v3 one. Given resolveBytes, detection
   * settles nearly every such case from the first frame; when both readings still fit, whole-file
   * readers fall back to v1 if the detected format fails to decode, and streaming callers may pass the
   * format explicitly.
   */
  certain: boolean;
}

function matches(bytes: Uint8Array, at: number, expected: readonly number[]): boolean {
  if (bytes.length < at + expected.length) return false;
  return expected.every((b, i) => bytes[at + i] === b);
}

/**
 * Detects the format from the decoded header and the file's first bytes (`head`, at least
 * DETECT_BYTES of them unless the file is shorter; a shorter file is truncated in every format, and the
 * guess made here then only decides which error reports it). When the first frame reads both as v1
 * and as v3, the answer is unsure unless `head` holds resolveBytes(pageSize) bytes or, with
 * `wholeFile`, all of the file: then the first frame settles it (see resolveFormat).
 */
export function detectFormat(header: Header, head: Uint8Array, wholeFile = false): DetectedFormat {
  const detected = guessFormat(header, head);
  if (detected.certain || (!wholeFile && head.length < resolveBytes(header.pageSize))) return detected;
  return resolveFormat(header, head, detected);
}

function guessFormat(header: Header, head: Uint8Array): DetectedFormat {
  const at = HEADER_SIZE;
  // The CompressLZ4 flag decides, when an LZ4 frame does follow; without one the bytes decide, and
  // the header check then reports the flag as invalid for what the file turned out to be.
  if ((header.flags & HEADER_FLAG_COMPRESS_LZ4) !== 0 && matches(head, at, LZ4_FRAME_MAGIC)) {
    return { format: "v1-lz4", certain: true };
  }
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  if (head.length < at + 6) return { format: "v1", certain: true };
  const firstPgno = view.getUint32(at);
  if (firstPgno === 0) {
    // No pages. v1: `u32 0` then the trailer, whose file checksum (bytes 112..119) has bit 63 set;
    // v3: the 15 bytes of EMPTY_V3_BLOCK, byte 112 being 0. No valid v1 file matches.
    return { format: matches(head, at, EMPTY_V3_BLOCK) ? "v3" : "v1", certain: true };
  }
  const pageFlags = view.getUint16(at + 4);
  if (pageFlags === 0x0001) return { format: "v3", certain: false };
  if (pageFlags === 0 && matches(head, at + 6, LZ4_FRAME_MAGIC))
    return { format: "v3-frame", certain: false };
  return { format: "v1", certain: true };
}

/**
 * Bytes from the start of the file that settle an unsure detection: enough for the first frame of either
 * reading — a v1 page with the page number after it, or the largest v3 or early-v3 frame with the
 * frame header after it. A valid file of either format that has a page always has the bytes its own
 * reading needs.
 */
export function resolveBytes(pageSize: number): number {
  return HEADER_SIZE + Math.max(4 + pageSize + 4 + TRAILER_SIZE, pageFrameBound(pageSize, true) + 6);
}

/**
 * Settles an unsure guess (`detected.certain` false) from the first page frame, read both ways. `head`
 * holds the file's first `resolveBytes(pageSize)` bytes, or all of it when shorter.
 *
 *   - v1 reading: the page is followed by the next page number, ascending within the database size,
 *     or by the terminator and a trailer whose file checksum matches (zeros alone are too common in
 *     compressed data to count); a real v1 file has those bytes.
 *   - v3 reading: the first frame decodes (size bound, LZ4 block or frame giving exactly one page), and
 *     is followed by a frame header of the same kind or the terminator.
 *
 * When the v1 reading does not fit, the file is no valid v1 file: v3, certain (a corrupt v3 file
 * gets the v3 reading's error, as before). Otherwise the v3 reading's first frame is decoded: when it
 * does not fit, v1, certain; when it does too, v3, still unsure (a whole-file reader retries v1 if v3
 * fails). So a v3 file's first page is decoded twice only when its bytes also read as a v1 frame.
 */
function resolveFormat(header: Header, head: Uint8Array, detected: DetectedFormat): DetectedFormat {
  const lz4Frames = detected.format === "v3-frame";
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const firstPgno = view.getUint32(HEADER_SIZE);
  const follows = (pgno: number): boolean => pgno > firstPgno && pgno <= header.commit;

  const v1NextAt = HEADER_SIZE + 4 + header.pageSize;
  let v1Fits = false;
  if (head.length >= v1NextAt + 4) {
    const next = view.getUint32(v1NextAt);
    // Terminator: the trailer's post-apply checksum is covered by the file checksum after it.
    const fileChecksumAt = v1NextAt + 4 + 8;
    v1Fits =
      next === 0
        ? head.length >= fileChecksumAt + 8 &&
          view.getBigUint64(fileChecksumAt) ===
            (CHECKSUM_FLAG | new Crc64Hash().update(head.subarray(0, fileChecksumAt)).digest())
        : follows(next);
  }

  if (!v1Fits) return { format: detected.format, certain: true };

  let v3Fits = false;
  const queue = new ByteQueue();
  queue.push(head.subarray(HEADER_SIZE));
  const reader = new V3PageBlockReader(
    { header, file: undefined, queue, hash: new Crc64Hash(), canonicalLz4: false, isEnded: () => true },
    { lz4Frames },
  );
  try {
    if (typeof reader.nextFrame() === "object" && queue.length >= 6) {
      const next = queue.peek(6);
      const pgno = new DataView(next.buffer, next.byteOffset, 6).getUint32(0);
      const flags = (next[4] << 8) | next[5];
      v3Fits = pgno === 0 ? flags === 0 : follows(pgno) && flags === (lz4Frames ? 0 : 1);
    }
  } catch (err) {
    if (!(err instanceof LtxError)) throw err;
  }
  return v3Fits ? detected : { format: "v1", certain: true };
}
