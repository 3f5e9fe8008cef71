// The reply body of READDIR and READDIRPLUS, built entry by entry by a file system's handler. The
// kernel gives a byte budget (`size` of the request); `add` refuses (returns false) the first entry
// that does not fit, and the handler stops there — the kernel asks again from that entry's cookie.
// Records are struct fuse_dirent (24 bytes + name) or fuse_direntplus (128-byte entry_out + dirent),
// each padded to 8 bytes. The message buffer keeps 16 bytes in front for the out header, so the reply
// is written without copying.

import { Size, direntTypeOfMode } from "./kernel-abi.js";
import type { Entry } from "./file-system.js";
import { encodeEntryOut } from "./reply-encoder.js";
import { writeU64 } from "./wire-format.js";

/** Longest name the kernel accepts in a directory entry. */
export const NAME_MAX = 255;

const align8 = (n: number): number => (n + 7) & ~7;

abstract class ListingBuffer {
  protected readonly buf: Buffer;
  protected used: number = Size.OUT_HEADER;
  #count = 0;

  constructor(maxBytes: number) {
    if (!(Number.isInteger(maxBytes) && maxBytes >= 0)) throw new RangeError(`listing size ${maxBytes}`);
    this.buf = Buffer.alloc(Size.OUT_HEADER + maxBytes);
  }

  /** Entries accepted so far. */
  get count(): number {
    return this.#count;
  }

  /** The reply message: 16 header bytes (filled in by the dispatcher) and the records. */
  message(): Buffer {
    return this.buf.subarray(0, this.used);
  }

  protected reserve(recordBytes: number): number | null {
    const at = this.used;
    if (at + recordBytes > this.buf.length) return null;
    this.used = at + recordBytes;
    this.#count++;
    return at;
  }

  protected writeDirent(at: number, name: Buffer, ino: number, mode: number, nextOffset: number): void {
    writeU64(this.buf, at, ino);
    writeU64(this.buf, at + 8, nextOffset);
    this.buf.writeUInt32LE(name.length, at + 16);
    this.buf.writeUInt32LE(direntTypeOfMode(mode), at + 20);
    name.copy(this.buf, at + Size.DIRENT_HEADER);
  }
}

function nameBytes(name: string): Buffer {
  const b = Buffer.from(name, "utf8");
  if (b.length === 0 || b.length > NAME_MAX || b.includes(0) || b.includes(0x2f)) {
    throw new RangeError(`directory entry name ${JSON.stringify(name)} is empty, too long or has '/' or NUL`);
  }
  return b;
}

/** READDIR: names with their inode number and file type. */
export class DirectoryListing extends ListingBuffer {
  /**
   * Adds `name` (st_ino `ino`, file type from `mode`); `nextOffset` is the cookie the kernel sends back
   * to continue after this entry (never 0). Returns false, adding nothing, when the entry does not fit.
   */
  add(name: string, attr: { ino: number; mode: number }, nextOffset: number): boolean {
    const b = nameBytes(name);
    const at = this.reserve(align8(Size.DIRENT_HEADER + b.length));
    if (at === null) return false;
    this.writeDirent(at, b, attr.ino, attr.mode, nextOffset);
    return true;
  }
}

/** READDIRPLUS: each name with a full Entry (node id, attributes, timeouts). */
export class DirectoryPlusListing extends ListingBuffer {
  readonly #entryTimeoutMs: number;
  readonly #attrTimeoutMs: number;

  constructor(maxBytes: number, entryTimeoutMs: number, attrTimeoutMs: number) {
    super(maxBytes);
    this.#entryTimeoutMs = entryTimeoutMs;
    this.#attrTimeoutMs = attrTimeoutMs;
  }

  /**
   * Adds `name` with `entry`. When this returns true and `entry.nodeId` is not 0, the kernel takes one
   * lookup reference on the node (it will FORGET it later) — except for "." and "..", which it never
   * counts. A nodeId of 0 sends the name without attributes and takes no reference. Returns false,
   * adding nothing and taking no reference, when the entry does not fit.
   */
  add(name: string, entry: Entry, nextOffset: number): boolean {
    const b = nameBytes(name);
    const at = this.reserve(align8(Size.ENTRY_OUT + Size.DIRENT_HEADER + b.length));
    if (at === null) return false;
    encodeEntryOut(this.buf, at, entry, this.#entryTimeoutMs, this.#attrTimeoutMs);
    this.writeDirent(at + Size.ENTRY_OUT, b, entry.attr.ino, entry.attr.mode, nextOffset);
    return true;
  }
}
