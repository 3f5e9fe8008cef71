// LTX format generations and how to tell them apart. No version number is stored: every generation
// starts with the same 100-byte `LTX1` header, so the bytes after it decide.
//
//   v1        ltx ≤ v0.3 (LiteFS v0.5): frames `u32 pgno` + raw page, `u32 0` terminator, no index.
//   v1-lz4    v1 with header flag 0x1: everything between header and trailer is one LZ4 frame.
//   v3-frame  early v3: frames `u32 pgno, u16 flags=0` + one LZ4 frame per page; index; trailer.
//   v3        current: frames `u32 pgno, u16 flags=1, u32 size` + raw LZ4 block; index; trailer.

import { HEADER_FLAG_COMPRESS_LZ4, HEADER_SIZE, type Header } from "./header.js";

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
   * like a v3 frame, and `00 00 04 22 4D 18` like an early-v3 one. Whole-file readers then fall back to
   * v1 when the detected format fails to decode; streaming callers may pass the format explicitly.
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
 * guess made here then only decides which error reports it).
 */
export function detectFormat(header: Header, head: Uint8Array): DetectedFormat {
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
