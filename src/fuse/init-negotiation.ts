// INIT: the kernel offers a protocol version and a set of capability flags; the file system answers
// with the version both speak and the subset it wants. Pure: takes the decoded request and the
// session's wishes, returns what was agreed and encodes struct fuse_init_out.
//
// What we ask for, and why:
// - ASYNC_READ: several READs of one file in flight (readahead, parallel readers).
// - POSIX_LOCKS, only when the file system implements setlk: fcntl locks reach the file system
//   (LiteFS must see SQLite's locks); without it the kernel keeps them locally.
// - Not FLOCK_LOCKS: flock() is then emulated by the kernel for the whole mount, which is exact on one
//   machine and is not what SQLite uses; a file system that wanted to replicate flock would need it.
// - ATOMIC_O_TRUNC: open(O_TRUNC) arrives as one OPEN instead of OPEN + SETATTR(size 0).
// - BIG_WRITES + MAX_PAGES: writes up to max_write (1 MiB by default, 256 pages) instead of 4 KiB.
// - PARALLEL_DIROPS: lookups and readdirs of one directory need not be serialised by the kernel.
// - ASYNC_DIO: direct I/O may be split into parallel requests.
// - DO_READDIRPLUS + READDIRPLUS_AUTO, only when the file system implements readdirplus.
// - DIRECT_IO_ALLOW_MMAP (7.39): a file opened with directIo can still be mmapped MAP_SHARED —
//   SQLite's WAL index (-shm) needs that when a file system serves it with direct I/O.
// - INIT_EXT, so that flags2 is read at all.
// - Not EXPORT_SUPPORT (no lookups of "." and ".."), not WRITEBACK_CACHE unless asked for: with it
//   writes reach the file system only at write-back time, which a file system that captures
//   transactions from writes cannot allow.

import { FuseSessionError } from "./errors.js";
import type { ConnectionInfo } from "./file-system.js";
import { FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, InitFlag, InitFlag2, Size } from "./kernel-abi.js";
import type { InitRequest } from "./request-decoder.js";

/** Oldest minor version served: 7.28 brought MAX_PAGES and the init_out layout used here. */
export const MIN_KERNEL_MINOR = 28;
const PAGE_SIZE = 4096;
/** The kernel's default max_pages_limit (fs.fuse.max_pages_limit): 256 pages = 1 MiB. */
export const MAX_WRITE_LIMIT = 256 * PAGE_SIZE;

export interface InitWishes {
  /** Largest WRITE payload wanted, clamped to [4 KiB, 1 MiB]. */
  maxWrite: number;
  /** Readahead limit; default: what the kernel offers. */
  maxReadahead?: number;
  posixLocks: boolean;
  readdirplus: boolean;
  writebackCache: boolean;
  /** Background requests (readahead, async direct I/O) the kernel may keep in flight. */
  maxBackground: number;
}

export interface InitAgreement {
  connection: ConnectionInfo;
  /** Writes struct fuse_init_out (64 bytes) at `offset`; returns its size. */
  encode: (buf: Buffer, offset: number) => number;
}

/**
 * The agreement for an INIT request. Throws EFUSEPROTOCOL for a kernel this library cannot serve
 * (another major version, or a minor older than MIN_KERNEL_MINOR).
 */
export function negotiateInit(req: InitRequest, wishes: InitWishes): InitAgreement {
  if (req.major !== FUSE_KERNEL_VERSION) {
    throw new FuseSessionError(
      "EFUSEPROTOCOL",
      `kernel speaks FUSE ${req.major}.${req.minor}; only 7.x is supported`,
    );
  }
  if (req.minor < MIN_KERNEL_MINOR) {
    throw new FuseSessionError(
      "EFUSEPROTOCOL",
      `kernel speaks FUSE 7.${req.minor}; 7.${MIN_KERNEL_MINOR} or newer is needed (Linux 4.20+)`,
    );
  }
  const minor = Math.min(req.minor, FUSE_KERNEL_MINOR_VERSION);
  const maxWrite = Math.max(
    PAGE_SIZE,
    Math.min(MAX_WRITE_LIMIT, Math.floor(wishes.maxWrite / PAGE_SIZE) * PAGE_SIZE),
  );
  const maxPages = maxWrite / PAGE_SIZE;

  let want =
    InitFlag.ASYNC_READ |
    InitFlag.ATOMIC_O_TRUNC |
    InitFlag.BIG_WRITES |
    InitFlag.PARALLEL_DIROPS |
    InitFlag.MAX_PAGES |
    InitFlag.ASYNC_DIO |
    InitFlag.INIT_EXT;
  if (wishes.posixLocks) want |= InitFlag.POSIX_LOCKS;
  if (wishes.readdirplus) want |= InitFlag.DO_READDIRPLUS | InitFlag.READDIRPLUS_AUTO;
  if (wishes.writebackCache) want |= InitFlag.WRITEBACK_CACHE;
  const want2 = InitFlag2.DIRECT_IO_ALLOW_MMAP;

  const offered = req.flags;
  const offered1 = Number(offered & 0xffff_ffffn);
  const offered2 = Number(offered >> 32n);
  const flags = (want & offered1) >>> 0;
  const flags2 = flags & InitFlag.INIT_EXT ? (want2 & offered2) >>> 0 : 0;
  const accepted = BigInt(flags) | (BigInt(flags2) << 32n);
  const maxReadahead = Math.min(req.maxReadahead, wishes.maxReadahead ?? req.maxReadahead);
  const maxBackground = Math.max(1, Math.min(0xffff, wishes.maxBackground));

  const connection: ConnectionInfo = {
    protocolMajor: FUSE_KERNEL_VERSION,
    protocolMinor: minor,
    kernelFlags: offered,
    acceptedFlags: accepted,
    maxWrite,
    maxReadahead,
    maxPages,
    posixLocks: (flags & InitFlag.POSIX_LOCKS) !== 0,
    readdirplus: (flags & InitFlag.DO_READDIRPLUS) !== 0,
    directIoAllowMmap: (flags2 & InitFlag2.DIRECT_IO_ALLOW_MMAP) !== 0,
    writebackCache: (flags & InitFlag.WRITEBACK_CACHE) !== 0,
  };

  const encode = (buf: Buffer, offset: number): number => {
    buf.fill(0, offset, offset + Size.INIT_OUT);
    buf.writeUInt32LE(FUSE_KERNEL_VERSION, offset);
    buf.writeUInt32LE(minor, offset + 4);
    buf.writeUInt32LE(maxReadahead, offset + 8);
    buf.writeUInt32LE(flags, offset + 12);
    buf.writeUInt16LE(maxBackground, offset + 16);
    buf.writeUInt16LE(Math.max(1, Math.floor((maxBackground * 3) / 4)), offset + 18); // congestion_threshold
    buf.writeUInt32LE(maxWrite, offset + 20);
    buf.writeUInt32LE(1, offset + 24); // time_gran: nanoseconds
    buf.writeUInt16LE(maxPages, offset + 28);
    buf.writeUInt16LE(0, offset + 30); // map_alignment (DAX only)
    buf.writeUInt32LE(flags2, offset + 32);
    // max_stack_depth (passthrough only), request_timeout (0: none), unused: zero.
    return Size.INIT_OUT;
  };
  return { connection, encode };
}
