// Builds LTX files byte by byte, including invalid ones, with a correct file checksum — so that a test
// of a decoder rule fails on that rule and not merely on the checksum at the end.

import {
  CHECKSUM_FLAG,
  compressBlock,
  crc64,
  encodeHeader,
  lz4FrameCompress,
  type Header,
} from "../../src/ltx/index.js";

function u32(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0);
  return b;
}

function u16(value: number): Uint8Array {
  return Uint8Array.of((value >> 8) & 0xff, value & 0xff);
}

function u64(value: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value);
  return b;
}

export function uvarint(value: number): Uint8Array {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Uint8Array.from(out);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export interface RawV3Frame {
  pgno: number;
  /** Default 0x0001. */
  flags?: number;
  /** The page; compressed with the reference compressor unless `block` is given. */
  page: Uint8Array;
  /** An LZ4 block to store instead of the page's; the checksum still covers `page`. */
  block?: Uint8Array;
  /** A size field to write instead of the block's length. */
  size?: number;
}

export interface RawV3Options {
  postApply: bigint;
  /** Six bytes; default zeros. */
  terminator?: Uint8Array;
  /** Rewrites the index entries [pgno, offset, size] before they are encoded. */
  editIndex?: (entries: number[][]) => number[][];
  /** Raw varint bytes (including the closing 0) instead of the computed ones. */
  indexBytes?: Uint8Array;
  /** A value for the index length u64 instead of the true one. */
  indexLength?: bigint;
  /** A file checksum instead of the computed one. */
  fileChecksum?: bigint;
  /** Bytes after the trailer. */
  trailing?: Uint8Array;
}

/** A v3 file with exactly the given frames and a correct checksum (unless told otherwise). */
export function rawV3(header: Header, frames: RawV3Frame[], options: RawV3Options): Uint8Array {
  const file: Uint8Array[] = [encodeHeader(header)];
  const hashed: Uint8Array[] = [file[0]];
  const entries: number[][] = [];
  let offset = 100;
  for (const frame of frames) {
    const block = frame.block ?? compressBlock(frame.page);
    const head = concat([u32(frame.pgno), u16(frame.flags ?? 1), u32(frame.size ?? block.length)]);
    file.push(head, block);
    hashed.push(head, frame.page);
    entries.push([frame.pgno, offset, 10 + block.length]);
    offset += 10 + block.length;
  }
  const terminator = options.terminator ?? new Uint8Array(6);
  const edited = options.editIndex?.(entries) ?? entries;
  const varints =
    options.indexBytes ?? concat([...edited.flatMap((entry) => entry.map(uvarint)), uvarint(0)]);
  const index = concat([varints, u64(options.indexLength ?? BigInt(varints.length))]);
  const post = u64(options.postApply);
  file.push(terminator, index, post);
  hashed.push(terminator, index, post);
  const checksum = options.fileChecksum ?? CHECKSUM_FLAG | crc64(concat(hashed));
  file.push(u64(checksum));
  if (options.trailing !== undefined) file.push(options.trailing);
  return concat(file);
}

/** A v1 file (uncompressed, or LZ4 when header.flags has 0x1) with the given frames. */
export function rawV1(
  header: Header,
  frames: Array<{ pgno: number; page: Uint8Array }>,
  options: { postApply: bigint; afterTerminator?: Uint8Array },
): Uint8Array {
  const headerBytes = encodeHeader(header);
  const body = concat([
    ...frames.flatMap((f) => [u32(f.pgno), f.page]),
    u32(0),
    options.afterTerminator ?? new Uint8Array(0),
  ]);
  const post = u64(options.postApply);
  const checksum = CHECKSUM_FLAG | crc64(concat([headerBytes, body, post]));
  const stored = (header.flags & 1) !== 0 ? lz4FrameCompress(body) : body;
  return concat([headerBytes, stored, post, u64(checksum)]);
}

/** An early-v3 file: one LZ4 frame per page, page flags 0. */
export function rawEarlyV3(
  header: Header,
  frames: Array<{ pgno: number; page: Uint8Array }>,
  postApply: bigint,
): Uint8Array {
  const headerBytes = encodeHeader(header);
  const file: Uint8Array[] = [headerBytes];
  const hashed: Uint8Array[] = [headerBytes];
  const entries: Uint8Array[] = [];
  let offset = 100;
  for (const { pgno, page } of frames) {
    const frame = lz4FrameCompress(page);
    const head = concat([u32(pgno), u16(0)]);
    file.push(head, frame);
    hashed.push(head, page);
    entries.push(uvarint(pgno), uvarint(offset), uvarint(6 + frame.length));
    offset += 6 + frame.length;
  }
  const varints = concat([...entries, uvarint(0)]);
  const tail = concat([new Uint8Array(6), varints, u64(BigInt(varints.length)), u64(postApply)]);
  file.push(tail);
  hashed.push(tail);
  file.push(u64(CHECKSUM_FLAG | crc64(concat(hashed))));
  return concat(file);
}
