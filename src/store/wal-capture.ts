// What the store knows about a database's WAL between commits: the header of the current generation
// of the log (salts, checksum seed), how far its frames have been captured into LTX files, and where the
// latest captured version of each page is (so that a later transaction can read a page it did not write
// the way SQLite would: from the WAL if it is there, else from the database file).
//
// State only; the scan itself is wal-format's scanWal, the I/O is the caller's — except that the bytes
// written since the captured point are kept in memory (wal-write-mirror.ts) for the caller to read
// first (`mirrored`), so that capturing a transaction need not reread what its requests just wrote.

import {
  parseWalHeader,
  scanWal,
  walHeaderProblem,
  walStartPosition,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  type WalByteSource,
  type WalCommit,
  type WalHeader,
  type WalPosition,
  type WalScanResult,
} from "./wal-format.js";
import { WalWriteMirror } from "./wal-write-mirror.js";

export class WalCapture {
  #header: WalHeader | null = null;
  #position: WalPosition | null = null;
  /** pgno → offset of the frame header of the latest captured version of that page. */
  #captured = new Map<number, number>();
  /** End of the furthest write into the WAL in this generation (see noteWrite). */
  #writtenEnd = 0;
  /** The bytes written past the captured point, as the file holds them (see `mirrored`). */
  readonly #mirror = new WalWriteMirror();

  /** The current generation's header, or null when there is no valid WAL header. */
  get header(): WalHeader | null {
    return this.#header;
  }

  /** Offset of the first frame not yet captured (WAL_HEADER_SIZE right after a restart); 0 without a header. */
  get capturedOffset(): number {
    return this.#position?.offset ?? 0;
  }

  /** Starts a new generation from the 32 header bytes (null or an invalid header: no generation). */
  reset(headerBytes: Uint8Array | null): void {
    this.#captured = new Map();
    this.#writtenEnd = headerBytes === null ? 0 : WAL_HEADER_SIZE;
    this.#mirror.clear(headerBytes === null ? 0 : WAL_HEADER_SIZE);
    if (headerBytes === null || walHeaderProblem(headerBytes) !== undefined) {
      this.#header = null;
      this.#position = null;
      return;
    }
    this.#header = parseWalHeader(headerBytes.subarray(0, WAL_HEADER_SIZE));
    this.#position = walStartPosition(this.#header);
  }

  /** True when a write at `offset` of `length` bytes rewrites the WAL header (a restart of the log). */
  static isHeaderWrite(offset: number, length: number): boolean {
    return offset === 0 && length >= WAL_HEADER_SIZE;
  }

  /**
   * The end offset of the last frame that a write of [offset, offset+length) completed and that ends a
   * transaction (commit field ≠ 0, this generation's salts), or null when the write completed none.
   * Judged from the frame headers read through `readHeader`, after the write reached the file. SQLite
   * writes a frame's 24-byte header and its page in two requests, so the page write is the one that
   * completes the frame; a request holding several frames is checked frame by frame (O(frames in it)).
   * The scan that follows (scan) still verifies every frame's checksum: a frame whose page is not
   * really there yet is never captured.
   */
  commitFrameCompletedBy(
    offset: number,
    length: number,
    readHeader: (frameOffset: number) => Uint8Array,
  ): number | null {
    const header = this.#header;
    if (header === null || this.#position === null || length <= 0) return null;
    const frameSize = WAL_FRAME_HEADER_SIZE + header.pageSize;
    const end = offset + length;
    const firstEnd = this.#position.offset + frameSize;
    // The frame ends inside (offset, end], newest first.
    let frameEnd = end - ((end - WAL_HEADER_SIZE) % frameSize);
    for (; frameEnd > offset && frameEnd >= firstEnd; frameEnd -= frameSize) {
      const frame = readHeader(frameEnd - frameSize);
      if (frame.length < WAL_FRAME_HEADER_SIZE) continue;
      const view = new DataView(frame.buffer, frame.byteOffset, WAL_FRAME_HEADER_SIZE);
      if (
        view.getUint32(4) !== 0 &&
        view.getUint32(8) === header.salt1 &&
        view.getUint32(12) === header.salt2
      )
        return frameEnd;
    }
    return null;
  }

  /**
   * Records `data` written at `offset` of the WAL — every write to the file, after it reached it — so
   * that `hasUncapturedWrites` can tell a transaction in flight (frames written past the last captured
   * commit) from data alone, and `mirrored` can serve the bytes. The bytes are copied.
   */
  noteWrite(offset: number, data: Uint8Array): void {
    this.#writtenEnd = Math.max(this.#writtenEnd, offset + data.length);
    this.#mirror.written(offset, data);
  }

  /** A write at `offset` failed after possibly changing some of the file's bytes from there on. */
  writeFailed(offset: number): void {
    this.#mirror.truncated(offset); // the mirror no longer claims any byte from `offset` on
  }

  /**
   * The WAL's `length` bytes at `offset` when they were written since the captured point and are still
   * held in memory, else undefined (read the file). A view, valid until the next change of this object.
   */
  mirrored(offset: number, length: number): Uint8Array | undefined {
    return this.#mirror.read(offset, length);
  }

  /**
   * True when bytes were written to the WAL past the last captured commit in this generation: a write
   * transaction in flight — or one that rolled back (SQLite leaves its frames to be overwritten), which
   * looks the same until the next commit or restart.
   */
  get hasUncapturedWrites(): boolean {
    return this.#position !== null && this.#writtenEnd > this.#position.offset;
  }

  /** Notes a truncation of the WAL file to `size` bytes. */
  truncated(size: number): void {
    this.#writtenEnd = Math.min(this.#writtenEnd, size);
    this.#mirror.truncated(size);
    if (this.#position !== null && size < this.#position.offset) this.reset(null);
  }

  /** The committed transactions after the captured point (none without a header). */
  scan(source: WalByteSource): WalScanResult | null {
    if (this.#header === null || this.#position === null) return null;
    return scanWal(source, this.#header, this.#position);
  }

  /** Records that `commit` (the next one after the captured point) is now in an LTX file. */
  advance(commit: WalCommit): void {
    if (this.#position === null || commit.startOffset !== this.#position.offset) {
      throw new Error(
        `WAL capture: commit at ${commit.startOffset} does not follow ${this.#position?.offset}`,
      );
    }
    for (const [pgno, offset] of commit.pages) this.#captured.set(pgno, offset);
    for (const pgno of this.#captured.keys()) if (pgno > commit.dbPageCount) this.#captured.delete(pgno);
    this.#position = { offset: commit.endOffset, checksum: commit.checksum };
    this.#mirror.dropBefore(commit.endOffset); // captured frames are read from the file from now on
  }

  /** Offset of the latest captured frame of `pgno`, or undefined (then the database file has it). */
  capturedFrame(pgno: number): number | undefined {
    return this.#captured.get(pgno);
  }

  /** (pgno, frame offset) of every captured page, for a frozen copy of the map. */
  capturedFramesEntries(): IterableIterator<[number, number]> {
    return this.#captured.entries();
  }

  /** Pages with a captured frame in this generation. */
  capturedPages(): IterableIterator<number> {
    return this.#captured.keys();
  }
}
