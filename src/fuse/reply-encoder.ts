// Encoders of the kernel's reply structs. Each writes one struct at `offset` of a caller-owned
// buffer and returns the number of bytes written (the struct's C size), so the dispatcher can encode
// straight into one scratch buffer behind the out header. Values are validated where a bad one would
// make the kernel fail the whole request (EIO) — lock ranges above OFFSET_MAX, for instance.

import { F_RDLCK, F_UNLCK, F_WRLCK, OFFSET_MAX, OpenFlag, Size } from "./kernel-abi.js";
import type { Entry, FileAttributes, FileLock, OpenReply, StatfsReply } from "./file-system.js";
import { splitTimeMs, splitTimeoutMs, writeI64, writeU64 } from "./wire-format.js";

/** struct fuse_out_header: total length, negative errno (0 = success), request id. */
export function encodeOutHeader(buf: Buffer, length: number, error: number, unique: number): void {
  buf.writeUInt32LE(length, 0);
  buf.writeInt32LE(error, 4);
  writeU64(buf, 8, unique);
}

/** struct fuse_attr (88 bytes). */
export function encodeAttr(buf: Buffer, offset: number, a: FileAttributes): number {
  writeU64(buf, offset, a.ino);
  writeU64(buf, offset + 8, a.size);
  writeU64(buf, offset + 16, a.blocks);
  const [as, ans] = splitTimeMs(a.atimeMs);
  const [ms, mns] = splitTimeMs(a.mtimeMs);
  const [cs, cns] = splitTimeMs(a.ctimeMs);
  writeI64(buf, offset + 24, as);
  writeI64(buf, offset + 32, ms);
  writeI64(buf, offset + 40, cs);
  buf.writeUInt32LE(ans, offset + 48);
  buf.writeUInt32LE(mns, offset + 52);
  buf.writeUInt32LE(cns, offset + 56);
  buf.writeUInt32LE(a.mode >>> 0, offset + 60);
  buf.writeUInt32LE(a.nlink >>> 0, offset + 64);
  buf.writeUInt32LE(a.uid >>> 0, offset + 68);
  buf.writeUInt32LE(a.gid >>> 0, offset + 72);
  buf.writeUInt32LE(a.rdev >>> 0, offset + 76);
  buf.writeUInt32LE(a.blksize >>> 0, offset + 80);
  buf.writeUInt32LE(0, offset + 84); // flags: no submount, no DAX
  return Size.ATTR;
}

/** struct fuse_entry_out (128 bytes). */
export function encodeEntryOut(
  buf: Buffer,
  offset: number,
  e: Entry,
  defaultEntryTimeoutMs: number,
  defaultAttrTimeoutMs: number,
): number {
  writeU64(buf, offset, e.nodeId);
  writeU64(buf, offset + 8, e.generation ?? 0);
  const [es, ens] = splitTimeoutMs(e.entryTimeoutMs ?? defaultEntryTimeoutMs);
  const [as, ans] = splitTimeoutMs(e.attrTimeoutMs ?? defaultAttrTimeoutMs);
  writeU64(buf, offset + 16, es);
  writeU64(buf, offset + 24, as);
  buf.writeUInt32LE(ens, offset + 32);
  buf.writeUInt32LE(ans, offset + 36);
  encodeAttr(buf, offset + 40, e.attr);
  return Size.ENTRY_OUT;
}

/** A negative entry (node id 0): the kernel caches "no such name" for `timeoutMs`. */
export function encodeNegativeEntryOut(buf: Buffer, offset: number, timeoutMs: number): number {
  buf.fill(0, offset, offset + Size.ENTRY_OUT);
  const [s, ns] = splitTimeoutMs(timeoutMs);
  writeU64(buf, offset + 16, s);
  buf.writeUInt32LE(ns, offset + 32);
  return Size.ENTRY_OUT;
}

/** struct fuse_attr_out (104 bytes). */
export function encodeAttrOut(buf: Buffer, offset: number, attr: FileAttributes, timeoutMs: number): number {
  const [s, ns] = splitTimeoutMs(timeoutMs);
  writeU64(buf, offset, s);
  buf.writeUInt32LE(ns, offset + 8);
  buf.writeUInt32LE(0, offset + 12);
  encodeAttr(buf, offset + 16, attr);
  return Size.ATTR_OUT;
}

/** FOPEN_* flags of an OpenReply. */
export function openFlagsOf(o: OpenReply): number {
  let f = 0;
  if (o.directIo === true) f |= OpenFlag.DIRECT_IO;
  if (o.keepCache === true) f |= OpenFlag.KEEP_CACHE;
  if (o.nonSeekable === true) f |= OpenFlag.NONSEEKABLE;
  if (o.cacheDir === true) f |= OpenFlag.CACHE_DIR;
  if (o.noFlush === true) f |= OpenFlag.NOFLUSH;
  if (o.parallelDirectWrites === true) f |= OpenFlag.PARALLEL_DIRECT_WRITES;
  return f;
}

/** struct fuse_open_out (16 bytes). */
export function encodeOpenOut(buf: Buffer, offset: number, o: OpenReply): number {
  writeU64(buf, offset, o.fh);
  buf.writeUInt32LE(openFlagsOf(o), offset + 8);
  buf.writeInt32LE(0, offset + 12); // backing_id: no kernel passthrough
  return Size.OPEN_OUT;
}

/** struct fuse_kstatfs (80 bytes). */
export function encodeStatfsOut(buf: Buffer, offset: number, s: StatfsReply): number {
  buf.fill(0, offset, offset + Size.STATFS_OUT);
  writeU64(buf, offset, s.blocks);
  writeU64(buf, offset + 8, s.bfree);
  writeU64(buf, offset + 16, s.bavail);
  writeU64(buf, offset + 24, s.files);
  writeU64(buf, offset + 32, s.ffree);
  buf.writeUInt32LE(s.bsize >>> 0, offset + 40);
  buf.writeUInt32LE(s.namelen >>> 0, offset + 44);
  buf.writeUInt32LE(s.frsize >>> 0, offset + 48);
  return Size.STATFS_OUT;
}

const LOCK_TYPE_NUMBER = { read: F_RDLCK, write: F_WRLCK, unlock: F_UNLCK } as const;

/**
 * struct fuse_lk_out (24 bytes): the conflicting lock, or type F_UNLCK when there is none. The kernel
 * answers the whole GETLK with EIO if start or end exceeds OFFSET_MAX, so `end` is clamped to it (a
 * number-based caller turning 2^63 − 1 into 2^63 would otherwise break every "to EOF" lock).
 */
export function encodeLkOut(buf: Buffer, offset: number, lock: FileLock | null): number {
  if (lock === null || lock.type === "unlock") {
    buf.fill(0, offset, offset + Size.LK_OUT);
    buf.writeUInt32LE(F_UNLCK, offset + 16);
    return Size.LK_OUT;
  }
  const start = lock.start < 0n ? 0n : lock.start > OFFSET_MAX ? OFFSET_MAX : lock.start;
  const end = lock.end > OFFSET_MAX ? OFFSET_MAX : lock.end < start ? start : lock.end;
  buf.writeBigUInt64LE(start, offset);
  buf.writeBigUInt64LE(end, offset + 8);
  buf.writeUInt32LE(LOCK_TYPE_NUMBER[lock.type], offset + 16);
  buf.writeUInt32LE(lock.pid >>> 0, offset + 20);
  return Size.LK_OUT;
}
