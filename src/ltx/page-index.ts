// The v3 page index: after the page block's terminator, one `uvarint(pgno) uvarint(offset)
// uvarint(size)` entry per frame in page order, a `uvarint(0)`, then a big-endian u64 giving the byte
// length of those varints. `offset` is the file offset of the frame's header; `size` is the whole
// frame (6-byte header + 4-byte size + compressed data). It lets a reader fetch one page directly.

import { LtxError } from "./errors.js";
import { readUvarint, uvarintLength, writeUvarint } from "./varint.js";

export interface PageIndexEntry {
  pgno: number;
  /** File offset of the frame header. */
  offset: number;
  /** Frame length in bytes, header included. */
  size: number;
}

const EMPTY_U32 = new Uint32Array(0);
const EMPTY_F64 = new Float64Array(0);

/** Bytes of the u64 that follows the varints. */
export const PAGE_INDEX_LENGTH_SIZE = 8;

/**
 * Collects index entries as frames are written or read, in compact typed arrays (16 bytes a page,
 * so even a million-page snapshot costs 16 MiB rather than a million objects).
 */
export class PageIndexBuilder {
  // Allocated on first use and doubled as needed: most files are small, and typed arrays cost.
  #pgnos = EMPTY_U32;
  #sizes = EMPTY_U32;
  #offsets = EMPTY_F64;
  #count = 0;
  #varintBytes = 1; // the terminating uvarint(0)

  get count(): number {
    return this.#count;
  }

  add(pgno: number, offset: number, size: number): void {
    if (this.#count === this.#pgnos.length) this.#grow();
    const i = this.#count++;
    this.#pgnos[i] = pgno;
    this.#offsets[i] = offset;
    this.#sizes[i] = size;
    this.#varintBytes += uvarintLength(pgno) + uvarintLength(offset) + uvarintLength(size);
  }

  entry(i: number): PageIndexEntry {
    if (i < 0 || i >= this.#count) throw new RangeError(`index entry ${i} of ${this.#count}`);
    return { pgno: this.#pgnos[i], offset: this.#offsets[i], size: this.#sizes[i] };
  }

  /** Byte length of the encoded varints, the closing 0 included (the value the u64 stores). */
  get varintBytes(): number {
    return this.#varintBytes;
  }

  /** The index as it appears in the file: varints, uvarint(0), u64 length. */
  encode(): Uint8Array {
    const out = new Uint8Array(this.#varintBytes + PAGE_INDEX_LENGTH_SIZE);
    let pos = 0;
    for (let i = 0; i < this.#count; i++) {
      pos = writeUvarint(out, pos, this.#pgnos[i]);
      pos = writeUvarint(out, pos, this.#offsets[i]);
      pos = writeUvarint(out, pos, this.#sizes[i]);
    }
    out[pos++] = 0;
    new DataView(out.buffer).setBigUint64(pos, BigInt(this.#varintBytes));
    return out;
  }

  #grow(): void {
    const grow = <T extends Uint32Array | Float64Array>(old: T, make: (n: number) => T): T => {
      const next = make(Math.max(16, old.length * 2));
      next.set(old);
      return next;
    };
    this.#pgnos = grow(this.#pgnos, (n) => new Uint32Array(n));
    this.#sizes = grow(this.#sizes, (n) => new Uint32Array(n));
    this.#offsets = grow(this.#offsets, (n) => new Float64Array(n));
  }
}

export interface DecodePageIndexOptions {
  file?: string;
  /** File offset of `bytes[0]`, for errors. */
  offset: number;
  /** File offset where the page block's terminator starts: every frame lies before it. */
  pageBlockEnd: number;
}

/**
 * Parses the varint part of an index (`bytes` = the varints including the closing 0, exactly as long
 * as the u64 said). Checks that entries are canonical, pages ascend, and frames are contiguous from
 * offset 100 to the page block's end. Throws LtxError ELTXINDEX.
 */
export function decodePageIndex(bytes: Uint8Array, options: DecodePageIndexOptions): PageIndexEntry[] {
  const entries: PageIndexEntry[] = [];
  const fail = (at: number, rule: string, detail: string): never => {
    throw new LtxError("ELTXINDEX", detail, { file: options.file, offset: options.offset + at, rule });
  };
  let pos = 0;
  const next = (what: string): number => {
    const read = readUvarint(bytes, pos);
    if (read === undefined) return fail(pos, "index length", `page index ends inside a ${what}`);
    if (typeof read === "string") return fail(pos, "canonical varint", `${what} varint is ${read}`);
    pos += read.length;
    return read.value;
  };
  let expectedOffset = 100;
  for (;;) {
    const at = pos;
    const pgno = next("page number");
    if (pgno === 0) break;
    const offset = next("offset");
    const size = next("size");
    const prev = entries.at(-1);
    if (pgno > 0xffffffff) fail(at, "index pgno u32", `index page number ${pgno} exceeds u32`);
    if (prev !== undefined && pgno <= prev.pgno) {
      fail(at, "index ascending", `index page ${pgno} follows page ${prev.pgno}`);
    }
    if (offset !== expectedOffset) {
      fail(
        at,
        "index offsets contiguous",
        `index offset ${offset} for page ${pgno}, expected ${expectedOffset}`,
      );
    }
    if (size <= 6) fail(at, "index size", `index frame size ${size} for page ${pgno} is too small`);
    expectedOffset = offset + size;
    if (expectedOffset > options.pageBlockEnd) {
      fail(at, "index within page block", `index frame of page ${pgno} ends past the page block`);
    }
    entries.push({ pgno, offset, size });
  }
  if (expectedOffset !== options.pageBlockEnd) {
    fail(
      pos,
      "index covers page block",
      `index frames end at ${expectedOffset}, page block ends at ${options.pageBlockEnd}`,
    );
  }
  if (pos !== bytes.length)
    fail(pos, "index length", `${bytes.length - pos} bytes after the index's closing 0`);
  return entries;
}

/** Binary search for `pgno` among ascending entries. */
export function findPageIndexEntry(
  entries: readonly PageIndexEntry[],
  pgno: number,
): PageIndexEntry | undefined {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const entry = entries[mid];
    if (entry.pgno === pgno) return entry;
    if (entry.pgno < pgno) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
