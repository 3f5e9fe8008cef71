// The 100-byte LTX header, shared by every format generation (v1, early v3, v3). All integers are
// big-endian. 64-bit identifiers and checksums are bigints; the int64 time and WAL fields are numbers,
// and the decoder refuses values outside ±2^53 rather than round them (they would not re-encode).

import { LtxError, type LtxErrorCode } from "./errors.js";
import { CHECKSUM_FLAG, isValidPageSize, lockPgno } from "./checksum.js";

export { isValidPageSize };

export const HEADER_SIZE = 100;
export const MAGIC = "LTX1";

/** v1 only: everything after the header is one LZ4 frame. Set by the encoder from its format. */
export const HEADER_FLAG_COMPRESS_LZ4 = 0x1;
/** Checksums are not tracked: pre- and post-apply checksums are zero. */
export const HEADER_FLAG_NO_CHECKSUM = 0x2;

export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;

const UINT64_MAX = (1n << 64n) - 1n;

export interface Header {
  /** Header flags; see HEADER_FLAG_*. */
  flags: number;
  /** Bytes per page: a power of two, 512..65536. */
  pageSize: number;
  /** Database size in pages after applying the file; 0 means the database was deleted. */
  commit: number;
  minTxid: bigint;
  maxTxid: bigint;
  /** Milliseconds since the Unix epoch (int64 on disk). */
  timestamp: number;
  /** Rolling checksum of the database before the file applies; 0 for a snapshot or without checksums. */
  preApplyChecksum: bigint;
  /** Offset of the transaction's frames in the WAL it came from; 0 for journal mode. */
  walOffset: number;
  /** Size of that WAL segment, in bytes. */
  walSize: number;
  walSalt1: number;
  walSalt2: number;
  /** ID of the node that wrote the transaction; 0 when unset. */
  nodeId: bigint;
}

/** A snapshot holds the whole database from the first transaction on: min TXID 1. */
export function isSnapshot(header: Header): boolean {
  return header.minTxid === 1n;
}

export function hasNoChecksum(header: Header): boolean {
  return (header.flags & HEADER_FLAG_NO_CHECKSUM) !== 0;
}

/** The header's lock page (the page holding SQLite's PENDING_BYTE), which no LTX file may carry. */
export function headerLockPgno(header: Header): number {
  return lockPgno(header.pageSize);
}

/** Writes the header into a new 100-byte array. Does not validate: call validateHeader first. */
export function encodeHeader(header: Header): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < 4; i++) bytes[i] = MAGIC.charCodeAt(i);
  view.setUint32(4, header.flags >>> 0);
  view.setUint32(8, header.pageSize >>> 0);
  view.setUint32(12, header.commit >>> 0);
  view.setBigUint64(16, header.minTxid);
  view.setBigUint64(24, header.maxTxid);
  view.setBigInt64(32, BigInt(header.timestamp));
  view.setBigUint64(40, header.preApplyChecksum);
  view.setBigInt64(48, BigInt(header.walOffset));
  view.setBigInt64(56, BigInt(header.walSize));
  view.setUint32(64, header.walSalt1 >>> 0);
  view.setUint32(68, header.walSalt2 >>> 0);
  view.setBigUint64(72, header.nodeId);
  return bytes;
}

/**
 * Parses the first 100 bytes of `bytes`. Checks the magic, the reserved bytes and that int64 fields fit
 * a JavaScript number; the field rules are validateHeader's. Throws LtxError ELTXHEADER (or
 * ELTXTRUNCATED when fewer than 100 bytes are given).
 */
export function decodeHeader(bytes: Uint8Array, file?: string): Header {
  if (bytes.length < HEADER_SIZE) {
    throw new LtxError("ELTXTRUNCATED", `file ends after ${bytes.length} bytes, inside the 100-byte header`, {
      file,
      offset: bytes.length,
      rule: "complete header",
    });
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC.charCodeAt(i)) {
      throw new LtxError("ELTXHEADER", "not an LTX file: magic is not LTX1", {
        file,
        offset: 0,
        rule: "magic",
      });
    }
  }
  for (let i = 80; i < HEADER_SIZE; i++) {
    if (bytes[i] !== 0) {
      throw new LtxError("ELTXHEADER", `reserved header byte ${i} is 0x${bytes[i].toString(16)}, must be 0`, {
        file,
        offset: i,
        rule: "reserved bytes zero",
      });
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const int53 = (offset: number, field: string): number => {
    const value = view.getBigInt64(offset);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new LtxError("ELTXHEADER", `${field} ${value} is outside ±2^53`, {
        file,
        offset,
        rule: `${field} range`,
      });
    }
    return Number(value);
  };
  return {
    flags: view.getUint32(4),
    pageSize: view.getUint32(8),
    commit: view.getUint32(12),
    minTxid: view.getBigUint64(16),
    maxTxid: view.getBigUint64(24),
    timestamp: int53(32, "timestamp"),
    preApplyChecksum: view.getBigUint64(40),
    walOffset: int53(48, "WAL offset"),
    walSize: int53(56, "WAL size"),
    walSalt1: view.getUint32(64),
    walSalt2: view.getUint32(68),
    nodeId: view.getBigUint64(72),
  };
}

export interface ValidateHeaderOptions {
  /** Whether the file is a v1 one (flag 0x1 allowed) — v3 allows only NoChecksum. */
  v1: boolean;
  file?: string;
  /** Error code to raise: ELTXHEADER when reading, ELTXENCODE when writing. */
  code?: LtxErrorCode;
}

/**
 * Checks every header rule of the format; throws LtxError naming the field's offset and the rule.
 * Also checks that each value fits its on-disk width, so an encoder never truncates silently.
 */
export function validateHeader(header: Header, options: ValidateHeaderOptions): void {
  const code = options.code ?? "ELTXHEADER";
  const fail = (offset: number, rule: string, detail: string): never => {
    throw new LtxError(code, detail, { file: options.file, offset, rule });
  };
  const u32 = (value: number, offset: number, field: string): void => {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
      fail(offset, `${field} u32`, `${field} ${value} is not a u32`);
  };
  const u64 = (value: bigint, offset: number, field: string): void => {
    if (value < 0n || value > UINT64_MAX) fail(offset, `${field} u64`, `${field} ${value} is not a u64`);
  };
  const int53 = (value: number, offset: number, field: string): void => {
    if (!Number.isSafeInteger(value))
      fail(offset, `${field} range`, `${field} ${value} is not an integer within ±2^53`);
  };
  u32(header.flags, 4, "flags");
  u32(header.pageSize, 8, "page size");
  u32(header.commit, 12, "commit");
  u64(header.minTxid, 16, "min TXID");
  u64(header.maxTxid, 24, "max TXID");
  int53(header.timestamp, 32, "timestamp");
  u64(header.preApplyChecksum, 40, "pre-apply checksum");
  int53(header.walOffset, 48, "WAL offset");
  int53(header.walSize, 56, "WAL size");
  u32(header.walSalt1, 64, "WAL salt 1");
  u32(header.walSalt2, 68, "WAL salt 2");
  u64(header.nodeId, 72, "node ID");

  const allowed = options.v1 ? HEADER_FLAG_COMPRESS_LZ4 | HEADER_FLAG_NO_CHECKSUM : HEADER_FLAG_NO_CHECKSUM;
  if ((header.flags & ~allowed) !== 0) {
    const which = options.v1 ? "0x1 and 0x2" : "0x2 (NoChecksum)";
    fail(4, "header flags", `flags 0x${header.flags.toString(16)}: only ${which} allowed in this format`);
  }
  if (!isValidPageSize(header.pageSize)) {
    fail(8, "page size", `page size ${header.pageSize} is not a power of two in 512..65536`);
  }
  if (header.minTxid === 0n) fail(16, "min TXID non-zero", "min TXID is 0");
  if (header.maxTxid < header.minTxid) {
    fail(24, "max TXID ≥ min TXID", `max TXID ${header.maxTxid} is below min TXID ${header.minTxid}`);
  }
  if (header.walOffset < 0) fail(48, "WAL offset ≥ 0", `WAL offset ${header.walOffset} is negative`);
  if (header.walSize < 0) fail(56, "WAL size ≥ 0", `WAL size ${header.walSize} is negative`);
  if (header.walOffset === 0 && header.walSize !== 0) {
    fail(56, "WAL size needs WAL offset", `WAL size ${header.walSize} with WAL offset 0`);
  }
  if ((header.walSalt1 !== 0 || header.walSalt2 !== 0) && header.walOffset === 0) {
    fail(64, "WAL salts need WAL offset", "WAL salts set with WAL offset 0");
  }
  if (isSnapshot(header)) {
    if (header.preApplyChecksum !== 0n) {
      fail(40, "snapshot pre-apply zero", "a snapshot (min TXID 1) must have pre-apply checksum 0");
    }
  } else if (hasNoChecksum(header)) {
    if (header.preApplyChecksum !== 0n) {
      fail(40, "no-checksum pre-apply zero", "pre-apply checksum must be 0 when the NoChecksum flag is set");
    }
  } else if ((header.preApplyChecksum & CHECKSUM_FLAG) === 0n) {
    fail(
      40,
      "pre-apply checksum flag",
      `pre-apply checksum ${header.preApplyChecksum.toString(16)} lacks bit 63`,
    );
  }
}
