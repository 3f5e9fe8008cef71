// The checksum of every page of one database, kept in memory (8 bytes per page) so that the
// database's rolling checksum (LTX: FLAG | XOR of all page checksums, lock page skipped) updates in
// O(pages changed) on each commit instead of rereading the database.
//
// Contract
// - Pages are 1..pageCount. The lock page (the page holding SQLite's PENDING byte) is never a page:
//   it has no checksum, `set` refuses it, and it never counts.
// - A slot reads 0n until set: a real page checksum always has bit 63 set, so 0n means "not known".
//   `checksum` refuses to answer while any page is unknown (growing adds unknown pages that the caller
//   must fill) — a wrong position is worse than an exception.
// - Shrinking drops the checksums of the pages above the new count from the rolling value.

import fs from "node:fs";

import { CHECKSUM_FLAG, lockPgno, pageChecksum } from "../ltx/checksum.js";

/** Bytes read per system call during a full pass. */
const SCAN_CHUNK_BYTES = 4 << 20;

export class PageChecksums {
  readonly pageSize: number;
  readonly lockPgno: number;
  #sums: BigUint64Array;
  #pageCount = 0;
  /** XOR of the checksums of pages 1..pageCount (0n for unknown ones, which are counted in #unknown). */
  #xor = 0n;
  #unknown = 0;

  constructor(pageSize: number, pageCount = 0) {
    if (
      !Number.isInteger(pageSize) ||
      pageSize < 512 ||
      pageSize > 65536 ||
      (pageSize & (pageSize - 1)) !== 0
    ) {
      throw new RangeError(`page checksums: invalid page size ${pageSize}`);
    }
    this.pageSize = pageSize;
    this.lockPgno = lockPgno(pageSize);
    this.#sums = new BigUint64Array(Math.max(16, pageCount));
    this.resize(pageCount);
  }

  get pageCount(): number {
    return this.#pageCount;
  }

  /** Pages whose checksum is not known yet (after growing). */
  get unknownCount(): number {
    return this.#unknown;
  }

  /** The database's rolling checksum. Throws if a page's checksum is unknown. */
  get checksum(): bigint {
    if (this.#unknown !== 0) {
      throw new Error(`page checksums: ${this.#unknown} of ${this.#pageCount} pages have no checksum yet`);
    }
    return CHECKSUM_FLAG | this.#xor;
  }

  /** The checksum of page `pgno`, 0n when unknown. */
  get(pgno: number): bigint {
    this.#checkPgno(pgno);
    return this.#sums[pgno - 1];
  }

  /** Sets page `pgno`'s checksum (as computed by `pageChecksum`); returns true if it changed. */
  set(pgno: number, checksum: bigint): boolean {
    this.#checkPgno(pgno);
    if (pgno === this.lockPgno) throw new RangeError(`page checksums: page ${pgno} is the lock page`);
    if ((checksum & CHECKSUM_FLAG) === 0n)
      throw new RangeError(`page checksums: ${checksum} is not a page checksum`);
    const old = this.#sums[pgno - 1];
    if (old === checksum) return false;
    if (old === 0n) this.#unknown--;
    this.#sums[pgno - 1] = checksum;
    this.#xor ^= old ^ checksum;
    return true;
  }

  /** Computes and sets the checksum of page `pgno` from its bytes; returns true if it changed. */
  setPage(pgno: number, data: Uint8Array): boolean {
    return this.set(pgno, pageChecksum(pgno, data));
  }

  /** Changes the page count: new pages start unknown; pages dropped leave the rolling checksum. */
  resize(pageCount: number): void {
    if (!Number.isInteger(pageCount) || pageCount < 0 || pageCount > 0xffffffff) {
      throw new RangeError(`page checksums: invalid page count ${pageCount}`);
    }
    if (pageCount < this.#pageCount) {
      for (let i = pageCount; i < this.#pageCount; i++) {
        const old = this.#sums[i];
        if (old === 0n) {
          if (i + 1 !== this.lockPgno) this.#unknown--;
        } else {
          this.#xor ^= old;
        }
        this.#sums[i] = 0n;
      }
    } else if (pageCount > this.#pageCount) {
      if (pageCount > this.#sums.length) {
        const grown = new BigUint64Array(Math.max(pageCount, this.#sums.length * 2));
        grown.set(this.#sums.subarray(0, this.#pageCount));
        this.#sums = grown;
      }
      const added = pageCount - this.#pageCount;
      const hasLock = this.lockPgno > this.#pageCount && this.lockPgno <= pageCount;
      this.#unknown += added - (hasLock ? 1 : 0);
    }
    this.#pageCount = pageCount;
  }

  /** The slots as little-endian bytes (8 per page, lock page 0), for the checksums file. */
  toBytes(): Uint8Array {
    const copy = new BigUint64Array(this.#sums.subarray(0, this.#pageCount));
    const bytes = new Uint8Array(copy.buffer);
    if (!isLittleEndian) swapEvery8(bytes);
    return bytes;
  }

  /** Rebuilds from `toBytes` output; every slot but the lock page's must hold a page checksum. */
  static fromBytes(pageSize: number, bytes: Uint8Array): PageChecksums {
    if (bytes.length % 8 !== 0)
      throw new RangeError(`page checksums: ${bytes.length} bytes is not a multiple of 8`);
    const pageCount = bytes.length / 8;
    const sums = new PageChecksums(pageSize, pageCount);
    const copy = new Uint8Array(bytes);
    if (!isLittleEndian) swapEvery8(copy);
    const values = new BigUint64Array(copy.buffer, copy.byteOffset, pageCount);
    for (let i = 0; i < pageCount; i++) {
      if (i + 1 === sums.lockPgno) {
        if (values[i] !== 0n) throw new RangeError(`page checksums: lock page ${i + 1} has a checksum`);
        continue;
      }
      sums.set(i + 1, values[i]);
    }
    return sums;
  }

  /**
   * A full pass: reads pages 1..pageCount of the file open at `fd` and checksums each (bytes past end
   * of file read as zeros, as SQLite would see them). `onProgress` gets the pages done so far.
   */
  static scanFile(
    fd: number,
    pageSize: number,
    pageCount: number,
    onProgress?: (done: number) => void,
  ): PageChecksums {
    const sums = new PageChecksums(pageSize, pageCount);
    const pagesPerChunk = Math.max(1, Math.floor(SCAN_CHUNK_BYTES / pageSize));
    const buf = Buffer.alloc(pagesPerChunk * pageSize);
    for (let first = 1; first <= pageCount; first += pagesPerChunk) {
      const n = Math.min(pagesPerChunk, pageCount - first + 1);
      const want = n * pageSize;
      let got = 0;
      while (got < want) {
        const r = fs.readSync(fd, buf, got, want - got, (first - 1) * pageSize + got);
        if (r === 0) break;
        got += r;
      }
      buf.fill(0, got, want);
      for (let i = 0; i < n; i++) {
        const pgno = first + i;
        if (pgno === sums.lockPgno) continue;
        sums.setPage(pgno, buf.subarray(i * pageSize, (i + 1) * pageSize));
      }
      onProgress?.(first + n - 1);
    }
    return sums;
  }

  #checkPgno(pgno: number): void {
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > this.#pageCount) {
      throw new RangeError(`page checksums: page ${pgno} outside 1..${this.#pageCount}`);
    }
  }
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapEvery8(bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i += 8) bytes.subarray(i, i + 8).reverse();
}
