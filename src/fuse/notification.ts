// Unsolicited messages to the kernel ("notifications"): an out header with unique 0 and the notify
// code in the error field, then the struct. Pure encoders; the Notifier writes them.

import { EXPIRE_ONLY, NotifyCode, Size } from "./kernel-abi.js";
import { writeU64 } from "./wire-format.js";
import { NAME_MAX } from "./directory-listing.js";

function header(buf: Buffer, code: number): void {
  buf.writeUInt32LE(buf.length, 0);
  buf.writeInt32LE(code, 4);
  writeU64(buf, 8, 0);
}

function nameBytes(name: string): Buffer {
  const b = Buffer.from(name, "utf8");
  if (b.length === 0 || b.length > NAME_MAX || b.includes(0) || b.includes(0x2f)) {
    throw new RangeError(`notification name ${JSON.stringify(name)} is empty, too long or has '/' or NUL`);
  }
  return b;
}

export interface InvalidateInodeRange {
  /** First byte of cached data to drop; default 0. */
  offset?: number;
  /** Bytes to drop from `offset`; 0 (default) means to the end of the file. */
  length?: number;
  /** Only drop cached attributes, keep cached data. */
  attributesOnly?: boolean;
}

/**
 * FUSE_NOTIFY_INVAL_INODE: drop the kernel's cached attributes of `nodeId` and (unless
 * attributesOnly) its cached pages in the range. The kernel encodes "attributes only" as offset −1.
 */
export function encodeInvalidateInode(nodeId: number, range: InvalidateInodeRange = {}): Buffer {
  const buf = Buffer.alloc(Size.OUT_HEADER + Size.NOTIFY_INVAL_INODE);
  header(buf, NotifyCode.INVAL_INODE);
  writeU64(buf, 16, nodeId);
  if (range.attributesOnly === true) {
    buf.writeBigInt64LE(-1n, 24);
    buf.writeBigInt64LE(0n, 32);
  } else {
    buf.writeBigInt64LE(BigInt(range.offset ?? 0), 24);
    buf.writeBigInt64LE(BigInt(range.length ?? 0), 32);
  }
  return buf;
}

/**
 * FUSE_NOTIFY_INVAL_ENTRY: drop the cached dentry `name` in directory `parent` (and the parent's
 * cached attributes). With expireOnly the dentry is only marked stale (kernels with HAS_EXPIRE_ONLY).
 */
export function encodeInvalidateEntry(parent: number, name: string, expireOnly = false): Buffer {
  const n = nameBytes(name);
  const buf = Buffer.alloc(Size.OUT_HEADER + Size.NOTIFY_INVAL_ENTRY + n.length + 1);
  header(buf, NotifyCode.INVAL_ENTRY);
  writeU64(buf, 16, parent);
  buf.writeUInt32LE(n.length, 24);
  buf.writeUInt32LE(expireOnly ? EXPIRE_ONLY : 0, 28);
  n.copy(buf, 32);
  return buf;
}

/** FUSE_NOTIFY_DELETE: `name` in `parent`, which was node `child`, is gone (drops the dentry). */
export function encodeNotifyDelete(parent: number, child: number, name: string): Buffer {
  const n = nameBytes(name);
  const buf = Buffer.alloc(Size.OUT_HEADER + 24 + n.length + 1);
  header(buf, NotifyCode.DELETE);
  writeU64(buf, 16, parent);
  writeU64(buf, 24, child);
  buf.writeUInt32LE(n.length, 32);
  n.copy(buf, 40);
  return buf;
}
