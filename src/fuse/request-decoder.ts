// Decoders of the kernel's request structs (all little-endian, body right after the 40-byte
// fuse_in_header). Each decoder checks that the request is long enough for its struct and throws
// FuseSessionError EFUSEPROTOCOL otherwise; the dispatcher answers such a request EINVAL and reports
// it, without ending the session.

import { FuseError, FuseSessionError } from "./errors.js";
import type { FileLock, SetattrChanges } from "./file-system.js";
import {
  F_RDLCK,
  F_UNLCK,
  F_WRLCK,
  InitFlag,
  OFFSET_MAX,
  READ_LOCKOWNER,
  RELEASE_FLOCK_UNLOCK,
  RELEASE_FLUSH,
  SetattrValid,
  Size,
  WRITE_CACHE,
  WRITE_LOCKOWNER,
} from "./kernel-abi.js";
import { joinTimeMs, readU64 } from "./wire-format.js";

/** Offset of every request body. */
export const BODY = Size.IN_HEADER;

/**
 * Largest file offset, size or end handed to a handler. The kernel lets offsets up to 2^63 − 1 through
 * (a local process may pwrite there), but a JS number is exact only up to 2^53 − 1, and Node's fs calls
 * treat an inexact position as "no position": a pwrite at 2^62 passed on as a number would write at the
 * descriptor's current offset instead. No file of this library can be longer (sizes are numbers), so a
 * request beyond answers as for a file at its size limit: EFBIG to grow, nothing to read.
 */
export const MAX_FILE_OFFSET = Number.MAX_SAFE_INTEGER;

/** Throws FuseError EFBIG unless [offset, offset + length) lies within MAX_FILE_OFFSET. */
export function requireFileRange(offset: number, length: number, what: string): void {
  if (offset > MAX_FILE_OFFSET || length > MAX_FILE_OFFSET - offset) {
    throw new FuseError("EFBIG", `${what} at ${offset} of ${length} bytes is beyond 2^53 - 1`);
  }
}

export interface RequestHeader {
  /** Total length of the request including this header. */
  length: number;
  opcode: number;
  unique: number;
  nodeId: number;
  uid: number;
  gid: number;
  pid: number;
}

/** struct fuse_in_header; `length` is how many bytes the read returned. */
export function decodeHeader(buf: Buffer, length: number): RequestHeader {
  if (length < Size.IN_HEADER) throw protocolError(`request of ${length} bytes is shorter than its header`);
  const declared = buf.readUInt32LE(0);
  if (declared !== length) {
    throw protocolError(`request header says ${declared} bytes but ${length} were read`);
  }
  return {
    length,
    opcode: buf.readUInt32LE(4),
    unique: readU64(buf, 8),
    nodeId: readU64(buf, 16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
  };
}

/** Throws EFUSEPROTOCOL unless the request holds a body of at least `size` bytes. */
export function requireBody(h: RequestHeader, size: number, what: string): void {
  if (h.length < BODY + size) {
    throw protocolError(
      `${what} request (unique ${h.unique}) has ${h.length - BODY} body bytes, needs ${size}`,
    );
  }
}

export function protocolError(detail: string): FuseSessionError {
  return new FuseSessionError("EFUSEPROTOCOL", detail);
}

export interface InitRequest {
  major: number;
  minor: number;
  maxReadahead: number;
  /** flags | flags2 << 32 (flags2 only when the kernel set INIT_EXT). */
  flags: bigint;
}

export function decodeInit(buf: Buffer, h: RequestHeader): InitRequest {
  requireBody(h, 8, "INIT");
  const major = buf.readUInt32LE(BODY);
  const minor = buf.readUInt32LE(BODY + 4);
  if (h.length < BODY + Size.INIT_IN_MIN) return { major, minor, maxReadahead: 0, flags: 0n };
  const flags = buf.readUInt32LE(BODY + 12);
  const ext = (flags & InitFlag.INIT_EXT) !== 0 && h.length >= BODY + 20;
  const flags2 = ext ? buf.readUInt32LE(BODY + 16) : 0;
  return {
    major,
    minor,
    maxReadahead: buf.readUInt32LE(BODY + 8),
    flags: BigInt(flags) | (BigInt(flags2) << 32n),
  };
}

/** struct fuse_setattr_in → the requested changes (only the fields `valid` names). */
export function decodeSetattr(buf: Buffer, h: RequestHeader): SetattrChanges {
  requireBody(h, Size.SETATTR_IN, "SETATTR");
  const valid = buf.readUInt32LE(BODY);
  const c: SetattrChanges = { killSuidgid: (valid & SetattrValid.KILL_SUIDGID) !== 0 };
  if (valid & SetattrValid.FH) c.fh = readU64(buf, BODY + 8);
  if (valid & SetattrValid.SIZE) {
    c.size = readU64(buf, BODY + 16);
    requireFileRange(0, c.size, "SETATTR size");
  }
  if (valid & SetattrValid.LOCKOWNER) c.lockOwner = buf.readBigUInt64LE(BODY + 24);
  if (valid & SetattrValid.ATIME_NOW) c.atimeMs = "now";
  else if (valid & SetattrValid.ATIME)
    c.atimeMs = joinTimeMs(readI64(buf, BODY + 32), buf.readUInt32LE(BODY + 56));
  if (valid & SetattrValid.MTIME_NOW) c.mtimeMs = "now";
  else if (valid & SetattrValid.MTIME)
    c.mtimeMs = joinTimeMs(readI64(buf, BODY + 40), buf.readUInt32LE(BODY + 60));
  if (valid & SetattrValid.CTIME)
    c.ctimeMs = joinTimeMs(readI64(buf, BODY + 48), buf.readUInt32LE(BODY + 64));
  if (valid & SetattrValid.MODE) c.mode = buf.readUInt32LE(BODY + 68);
  if (valid & SetattrValid.UID) c.uid = buf.readUInt32LE(BODY + 76);
  if (valid & SetattrValid.GID) c.gid = buf.readUInt32LE(BODY + 80);
  return c;
}

function readI64(buf: Buffer, offset: number): number {
  return buf.readInt32LE(offset + 4) * 4294967296 + buf.readUInt32LE(offset);
}

export interface IoRequest {
  fh: number;
  offset: number;
  size: number;
  /** read_flags / write_flags. */
  ioFlags: number;
  lockOwner: bigint | undefined;
  /** Open flags of the file. */
  flags: number;
}

/**
 * struct fuse_read_in and fuse_write_in (same layout); for WRITE the data follows at BODY + 40. A WRITE
 * reaching past MAX_FILE_OFFSET throws EFBIG; a READ's offset may exceed it (the caller answers EOF).
 */
export function decodeIo(buf: Buffer, h: RequestHeader, write: boolean): IoRequest {
  requireBody(h, Size.READ_IN, write ? "WRITE" : "READ");
  const ioFlags = buf.readUInt32LE(BODY + 20);
  const ownerValid = (ioFlags & (write ? WRITE_LOCKOWNER : READ_LOCKOWNER)) !== 0;
  const io: IoRequest = {
    fh: readU64(buf, BODY),
    offset: readU64(buf, BODY + 8),
    size: buf.readUInt32LE(BODY + 16),
    ioFlags,
    lockOwner: ownerValid ? buf.readBigUInt64LE(BODY + 24) : undefined,
    flags: buf.readUInt32LE(BODY + 32),
  };
  if (write && h.length < BODY + Size.WRITE_IN + io.size) {
    throw protocolError(
      `WRITE (unique ${h.unique}) of ${io.size} bytes carries only ${h.length - BODY - 40}`,
    );
  }
  if (write) requireFileRange(io.offset, io.size, "WRITE");
  return io;
}

export function isCacheWrite(io: IoRequest): boolean {
  return (io.ioFlags & WRITE_CACHE) !== 0;
}

export interface ReleaseRequest {
  fh: number;
  flags: number;
  flush: boolean;
  lockOwner: bigint | undefined;
}

/** struct fuse_release_in (RELEASE and RELEASEDIR). */
export function decodeRelease(buf: Buffer, h: RequestHeader): ReleaseRequest {
  requireBody(h, Size.RELEASE_IN, "RELEASE");
  const releaseFlags = buf.readUInt32LE(BODY + 12);
  return {
    fh: readU64(buf, BODY),
    flags: buf.readUInt32LE(BODY + 8),
    flush: (releaseFlags & RELEASE_FLUSH) !== 0,
    lockOwner: releaseFlags & RELEASE_FLOCK_UNLOCK ? buf.readBigUInt64LE(BODY + 16) : undefined,
  };
}

/** A GETLK/SETLK/SETLKW body as the file system gets it (`LockRequest`, file-system.ts). */
export interface LockInput extends FileLock {
  fh: number;
  owner: bigint;
  /** SETLKW. */
  wait: boolean;
}

const LOCK_TYPES: Record<number, FileLock["type"]> = {
  [F_RDLCK]: "read",
  [F_WRLCK]: "write",
  [F_UNLCK]: "unlock",
};

/**
 * struct fuse_lk_in. The owner stays a bigint (64 bits, compared exactly). `end` is clamped to
 * OFFSET_MAX: the kernel sends exactly OFFSET_MAX for "to end of file", never more, but a reply must
 * never carry more either (EIO), so the value handed on is the one that may be echoed back.
 */
export function decodeLock(buf: Buffer, h: RequestHeader, wait: boolean): LockInput {
  requireBody(h, Size.LK_IN, "LK");
  const typeNumber = buf.readUInt32LE(BODY + 32);
  const type = LOCK_TYPES[typeNumber];
  if (type === undefined) throw new FuseError("EINVAL", `lock type ${typeNumber}`);
  let start = buf.readBigUInt64LE(BODY + 16);
  let end = buf.readBigUInt64LE(BODY + 24);
  if (end > OFFSET_MAX) end = OFFSET_MAX;
  if (start > end) start = end;
  return {
    fh: readU64(buf, BODY),
    owner: buf.readBigUInt64LE(BODY + 8),
    start,
    end,
    type,
    pid: buf.readUInt32LE(BODY + 36),
    wait,
  };
}
