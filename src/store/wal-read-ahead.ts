// The WAL file as one capture reads it: the first few reads go straight to the file (a small
// transaction's frames are normally in memory already — wal-write-mirror.ts — and the scan's look past
// the commit frame is one read), later ones in blocks of READ_AHEAD_BYTES starting at the read. A
// big transaction (a bulk load: the scan, the checksum plan and the LTX file each read every frame)
// then costs one system call per block instead of three per page.
//
// Valid for one capture only: nothing may write the WAL while it is in use (a block would go stale).

/** Reads answered by the file directly before blocks are read. */
const DIRECT_READS = 4;
const READ_AHEAD_BYTES = 1024 * 1024;

export class WalReadAhead {
  readonly #readFile: (offset: number, length: number) => Uint8Array;
  #reads = 0;
  #block: Uint8Array = new Uint8Array(0);
  #blockOffset = 0;

  /** `readFile` returns exactly `length` bytes (zeros past the end of the file). */
  constructor(readFile: (offset: number, length: number) => Uint8Array) {
    this.#readFile = readFile;
  }

  /** Exactly `length` bytes at `offset`; a view, valid until the next call. */
  read(offset: number, length: number): Uint8Array {
    if (this.#reads < DIRECT_READS) {
      this.#reads++;
      return this.#readFile(offset, length);
    }
    const from = offset - this.#blockOffset;
    if (from < 0 || from + length > this.#block.length) {
      this.#block = this.#readFile(offset, Math.max(length, READ_AHEAD_BYTES));
      this.#blockOffset = offset;
      return this.#block.subarray(0, length);
    }
    return this.#block.subarray(from, from + length);
  }
}
