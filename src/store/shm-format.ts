// The wal-index (`-shm`) header: the first 136 bytes of the shared-memory file SQLite maps in WAL mode.
//
//   0  WalIndexHdr copy 1 (48 bytes)     48  WalIndexHdr copy 2     96  WalCkptInfo (40 bytes)
//
// WalIndexHdr (host byte order, not big-endian like the files): iVersion u32 · unused u32 · iChange
// u32 · isInit u8 · bigEndCksum u8 · szPage u16 (65536 stored as 1) · mxFrame u32 · nPage u32 ·
// aFrameCksum u32[2] · aSalt u32[2] (raw copies of the WAL header's big-endian salt bytes) · aCksum
// u32[2] (WAL checksum, host order, over the first 40 bytes).
// WalCkptInfo: nBackfill u32 · aReadMark u32[5] · aLock u8[8] (the lock bytes 120..127) ·
// nBackfillAttempted u32 · notUsed0 u32.
//
// A reader trusts the header only when both copies are byte-identical, isInit is set and the checksum
// matches; otherwise it rebuilds the index from the WAL ("recovery"). A reader keeps its page cache as
// long as the header it reads equals the one it last read — which is why a replica that changed the
// database file behind SQLite's back must publish a header that differs (buildReplicaShmHeader).
//
// Pure: takes bytes, returns data.

import { SqliteFormatError, isValidPageSize } from "./sqlite-header.js";
import { WAL_FORMAT_VERSION, walChecksum, type WalChecksum } from "./wal-format.js";

export const WAL_INDEX_HEADER_SIZE = 48;
export const WAL_CKPT_INFO_OFFSET = 96;
/** Bytes of the -shm header region: two WalIndexHdr copies and WalCkptInfo. */
export const SHM_HEADER_SIZE = 136;
/** A read-mark slot nobody uses. */
export const READMARK_NOT_USED = 0xffffffff;
/** Number of read marks (one per READ lock). */
export const WAL_READ_MARKS = 5;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export interface WalIndexHeader {
  readonly version: number;
  /** Incremented by every write transaction; any change makes readers drop their page cache. */
  readonly change: number;
  readonly isInit: boolean;
  /** True when the WAL's checksums are big-endian (magic 0x377f0683). */
  readonly bigEndianChecksum: boolean;
  /** Page size in bytes (decoded from szPage). */
  readonly pageSize: number;
  /** Index (1-based) of the last committed frame; 0 = no frames, read the database file only. */
  readonly mxFrame: number;
  /** Database size in pages as of mxFrame. */
  readonly nPage: number;
  /** Running checksum of frame mxFrame (or of the WAL header when mxFrame is 0). */
  readonly frameChecksum: WalChecksum;
  /** The WAL header's salts (as the WAL header's big-endian integers). */
  readonly salt1: number;
  readonly salt2: number;
  /** Checksum stored in the header. */
  readonly checksum: WalChecksum;
}

export interface WalCheckpointInfo {
  /** Frames already copied into the database file. */
  readonly nBackfill: number;
  /** aReadMark[0..4]: the mxFrame each reader slot reads up to (READMARK_NOT_USED = free). */
  readonly readMarks: readonly number[];
  readonly nBackfillAttempted: number;
}

export interface ShmHeader {
  /** Copy 1 (what readers use when it is valid). */
  readonly header: WalIndexHeader;
  readonly copy2: WalIndexHeader;
  readonly copiesMatch: boolean;
  /** The stored checksum of copy 1 equals the one computed over its first 40 bytes. */
  readonly checksumValid: boolean;
  /** What SQLite requires to use the header without recovery: copies match, isInit, checksum, version. */
  readonly usable: boolean;
  readonly checkpoint: WalCheckpointInfo;
}

export interface ShmByteOrder {
  /** Byte order of the machine that wrote the file; default: this host's. */
  readonly littleEndian?: boolean;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Decodes szPage: 65536 is stored as 1 (the high byte of the low 16 bits plus bit 16 moved to bit 0). */
export function decodeShmPageSize(stored: number): number {
  return (stored & 0xfe00) + ((stored & 0x0001) << 16);
}

export function encodeShmPageSize(pageSize: number): number {
  return (pageSize & 0xff00) | (pageSize >>> 16);
}

function readWalIndexHeader(bytes: Uint8Array, at: number, little: boolean): WalIndexHeader {
  const view = viewOf(bytes);
  return {
    version: view.getUint32(at, little),
    change: view.getUint32(at + 8, little),
    isInit: bytes[at + 12] !== 0,
    bigEndianChecksum: bytes[at + 13] !== 0,
    pageSize: decodeShmPageSize(view.getUint16(at + 14, little)),
    mxFrame: view.getUint32(at + 16, little),
    nPage: view.getUint32(at + 20, little),
    frameChecksum: [view.getUint32(at + 24, little), view.getUint32(at + 28, little)],
    salt1: view.getUint32(at + 32, false),
    salt2: view.getUint32(at + 36, false),
    checksum: [view.getUint32(at + 40, little), view.getUint32(at + 44, little)],
  };
}

/** Parses the first SHM_HEADER_SIZE bytes of a -shm file; throws ESHMHEADER when they are short. */
export function parseShmHeader(bytes: Uint8Array, order: ShmByteOrder = {}): ShmHeader {
  if (bytes.length < SHM_HEADER_SIZE) {
    throw new SqliteFormatError(
      "ESHMHEADER",
      `shm header needs ${SHM_HEADER_SIZE} bytes, got ${bytes.length}`,
      0,
    );
  }
  const little = order.littleEndian ?? HOST_LITTLE_ENDIAN;
  const header = readWalIndexHeader(bytes, 0, little);
  const copy2 = readWalIndexHeader(bytes, WAL_INDEX_HEADER_SIZE, little);
  let copiesMatch = true;
  for (let i = 0; i < WAL_INDEX_HEADER_SIZE; i++) {
    if (bytes[i] !== bytes[WAL_INDEX_HEADER_SIZE + i]) {
      copiesMatch = false;
      break;
    }
  }
  const sum = walChecksum(bytes.subarray(0, 40), !little);
  const checksumValid = sum[0] === header.checksum[0] && sum[1] === header.checksum[1];
  const view = viewOf(bytes);
  const readMarks: number[] = [];
  for (let i = 0; i < WAL_READ_MARKS; i++)
    readMarks.push(view.getUint32(WAL_CKPT_INFO_OFFSET + 4 + 4 * i, little));
  return {
    header,
    copy2,
    copiesMatch,
    checksumValid,
    usable: copiesMatch && header.isInit && checksumValid && header.version === WAL_FORMAT_VERSION,
    checkpoint: {
      nBackfill: view.getUint32(WAL_CKPT_INFO_OFFSET, little),
      readMarks,
      nBackfillAttempted: view.getUint32(WAL_CKPT_INFO_OFFSET + 32, little),
    },
  };
}

export interface WalIndexHeaderFields {
  readonly change: number;
  readonly bigEndianChecksum: boolean;
  readonly pageSize: number;
  readonly mxFrame: number;
  readonly nPage: number;
  readonly frameChecksum: WalChecksum;
  readonly salt1: number;
  readonly salt2: number;
}

/** Builds one 48-byte WalIndexHdr (version 3007000, isInit 1, checksum computed) in the given byte order. */
export function encodeWalIndexHeader(fields: WalIndexHeaderFields, order: ShmByteOrder = {}): Uint8Array {
  if (!isValidPageSize(fields.pageSize)) {
    throw new SqliteFormatError("ESHMHEADER", `encodeWalIndexHeader: bad page size ${fields.pageSize}`);
  }
  const little = order.littleEndian ?? HOST_LITTLE_ENDIAN;
  const out = new Uint8Array(WAL_INDEX_HEADER_SIZE);
  const view = viewOf(out);
  view.setUint32(0, WAL_FORMAT_VERSION, little);
  view.setUint32(8, fields.change >>> 0, little);
  out[12] = 1;
  out[13] = fields.bigEndianChecksum ? 1 : 0;
  view.setUint16(14, encodeShmPageSize(fields.pageSize), little);
  view.setUint32(16, fields.mxFrame >>> 0, little);
  view.setUint32(20, fields.nPage >>> 0, little);
  view.setUint32(24, fields.frameChecksum[0] >>> 0, little);
  view.setUint32(28, fields.frameChecksum[1] >>> 0, little);
  view.setUint32(32, fields.salt1 >>> 0, false);
  view.setUint32(36, fields.salt2 >>> 0, false);
  const sum = walChecksum(out.subarray(0, 40), !little);
  view.setUint32(40, sum[0], little);
  view.setUint32(44, sum[1], little);
  return out;
}

export interface ReplicaShmFields {
  readonly pageSize: number;
  /** The database's size in pages after the change: readers take it as the database size. */
  readonly pageCount: number;
}

/**
 * The 136-byte -shm header a replica writes after changing the database file directly (holding every
 * WAL lock, so no reader is inside a transaction): both header copies with mxFrame 0 (read the
 * database file only, ignore the WAL), nPage = `pageCount`, the change counter of `current` plus one
 * (so every reader's cached header differs and it drops its page cache), salts and frame checksum kept;
 * checkpoint info reset as SQLite resets it when it restarts the log (nBackfill 0, read mark 1 = 0,
 * read marks 2..4 unused), lock bytes and the unused word kept.
 *
 * `current` is the -shm file's first 136 bytes (or fewer/none when the file is shorter). When they do
 * not hold a usable header the change counter starts from copy 1's value (or 0) and salts are zero.
 * Write the result at offset 0 in one write; the second copy and the checkpoint info only matter
 * together with the first.
 */
export function buildReplicaShmHeader(
  current: Uint8Array | undefined,
  fields: ReplicaShmFields,
  order: ShmByteOrder = {},
): Uint8Array {
  const little = order.littleEndian ?? HOST_LITTLE_ENDIAN;
  if (!Number.isInteger(fields.pageCount) || fields.pageCount < 0 || fields.pageCount > 0xffffffff) {
    throw new SqliteFormatError("ESHMHEADER", `buildReplicaShmHeader: bad page count ${fields.pageCount}`);
  }
  const out = new Uint8Array(SHM_HEADER_SIZE);
  let previous: ShmHeader | undefined;
  if (current !== undefined && current.length >= SHM_HEADER_SIZE) {
    previous = parseShmHeader(current, { littleEndian: little });
    out.set(current.subarray(WAL_CKPT_INFO_OFFSET, SHM_HEADER_SIZE), WAL_CKPT_INFO_OFFSET);
  }
  const kept = previous?.usable === true ? previous.header : undefined;
  const hdr = encodeWalIndexHeader(
    {
      change: ((previous?.header.change ?? 0) + 1) >>> 0,
      bigEndianChecksum: kept?.bigEndianChecksum ?? false,
      pageSize: fields.pageSize,
      mxFrame: 0,
      nPage: fields.pageCount,
      frameChecksum: kept?.frameChecksum ?? [0, 0],
      salt1: kept?.salt1 ?? 0,
      salt2: kept?.salt2 ?? 0,
    },
    { littleEndian: little },
  );
  out.set(hdr, 0);
  out.set(hdr, WAL_INDEX_HEADER_SIZE);
  const view = viewOf(out);
  view.setUint32(WAL_CKPT_INFO_OFFSET, 0, little); // nBackfill
  view.setUint32(WAL_CKPT_INFO_OFFSET + 4, 0, little); // aReadMark[0]
  view.setUint32(WAL_CKPT_INFO_OFFSET + 8, 0, little); // aReadMark[1]
  for (let i = 2; i < WAL_READ_MARKS; i++)
    view.setUint32(WAL_CKPT_INFO_OFFSET + 4 + 4 * i, READMARK_NOT_USED, little);
  view.setUint32(WAL_CKPT_INFO_OFFSET + 32, 0, little); // nBackfillAttempted
  return out;
}
