// A copy in memory of the bytes most recently written to a database's WAL, so that the capture of a
// transaction (the frame-header check on each write, the scan of the new frames, the pages of the LTX
// file) reads them from the requests that wrote them instead of rereading the backing file: a WAL
// write transaction's capture used to be ~5 preads and as many fresh buffers.
//
// The mirror is a cache of one contiguous byte range [start, end) of the file, never a second source
// of truth: every write to the WAL file must be reported (`written`) after it reached the file, and
// every truncation or restart (`truncated`, `clear`), so that the range always holds exactly what the
// file holds there. Reads outside the range return undefined and the caller reads the file. A write
// that does not touch or extend the range (a gap after it) starts a new range at the write; a range
// that would grow past MAX_MIRRORED_BYTES is dropped and nothing more is mirrored until the next
// capture (`dropBefore`) or restart (`clear`) — a bulk transaction is read from the file. Both only
// cost rereads, never correctness.

/** The most bytes kept: any ordinary transaction's frames; a bulk load's tail. */
export const MAX_MIRRORED_BYTES = 8 * 1024 * 1024;

const INITIAL_CAPACITY = 64 * 1024;

export class WalWriteMirror {
  #buf = new Uint8Array(0);
  /** File offset of #buf[0]. */
  #start = 0;
  /** File offset just past the last mirrored byte (start ≤ end; start = end: empty). */
  #end = 0;
  /** The range outgrew the cap: writes are not mirrored until the next dropBefore or clear. */
  #suspended = false;

  /** First file offset mirrored. */
  get start(): number {
    return this.#start;
  }

  /** File offset past the last mirrored byte. */
  get end(): number {
    return this.#end;
  }

  /** Forgets every byte; the range restarts empty at `offset` (the next expected write). */
  clear(offset: number): void {
    this.#start = offset;
    this.#end = offset;
    this.#suspended = false;
    if (this.#buf.length > INITIAL_CAPACITY) this.#buf = new Uint8Array(0); // a big one is not kept
  }

  /** Records `data` written at `offset` (after it reached the file). Copies the bytes. */
  written(offset: number, data: Uint8Array): void {
    if (this.#suspended) return;
    let at = offset;
    let bytes = data;
    if (at + bytes.length <= this.#start) return; // wholly before the range: not mirrored
    if (at < this.#start) {
      bytes = bytes.subarray(this.#start - at);
      at = this.#start;
    }
    if (at > this.#end) this.clear(at); // a gap: the bytes between are unknown here
    const newEnd = Math.max(this.#end, at + bytes.length);
    if (newEnd - this.#start > MAX_MIRRORED_BYTES) {
      this.clear(at + bytes.length);
      this.#suspended = true;
      return;
    }
    this.#reserve(newEnd - this.#start);
    this.#buf.set(bytes, at - this.#start);
    this.#end = newEnd;
  }

  /** The file was cut to `size` bytes. */
  truncated(size: number): void {
    if (size <= this.#start) this.clear(size);
    else if (size < this.#end) this.#end = size;
  }

  /**
   * Bytes before `offset` will not be read from the mirror any more (captured frames): they are
   * dropped, and the range starts at `offset` at the earliest.
   */
  dropBefore(offset: number): void {
    if (this.#suspended) {
      this.clear(Math.max(offset, this.#start));
      return;
    }
    if (offset <= this.#start) return;
    if (offset >= this.#end) {
      this.clear(offset);
      return;
    }
    this.#buf.copyWithin(0, offset - this.#start, this.#end - this.#start);
    this.#start = offset;
  }

  /**
   * The `length` bytes at `offset` when the mirror holds all of them, else undefined. A view valid
   * until the next call that changes the mirror (written, truncated, dropBefore, clear).
   */
  read(offset: number, length: number): Uint8Array | undefined {
    if (offset < this.#start || offset + length > this.#end) return undefined;
    const from = offset - this.#start;
    return this.#buf.subarray(from, from + length);
  }

  #reserve(bytes: number): void {
    if (bytes <= this.#buf.length) return;
    const grown = new Uint8Array(Math.min(MAX_MIRRORED_BYTES, Math.max(INITIAL_CAPACITY, 2 * bytes)));
    grown.set(this.#buf.subarray(0, this.#end - this.#start));
    this.#buf = grown;
  }
}
