// A FIFO of input bytes that arrive in chunks of any size, read back in pieces of any size. Decoders
// use it to turn "whatever the stream delivered" into "exactly the next n bytes" without copying in
// the common case where the n bytes lie inside one chunk.
//
// Ownership: pushed chunks are kept by reference until consumed, so the caller must not modify a chunk
// after pushing it. Views returned by `peek`/`take` alias those chunks (or are fresh copies when the
// range spans chunks); `takeCopy` always returns memory the caller owns.

export class ByteQueue {
  #chunks: Uint8Array[] = [];
  /** Index of the first live chunk in #chunks (consumed chunks are dropped in batches). */
  #first = 0;
  /** Bytes of the first live chunk already consumed. */
  #head = 0;
  #length = 0;
  #consumed = 0;

  /** Bytes available. */
  get length(): number {
    return this.#length;
  }

  /** Bytes consumed since the queue was created: the stream offset of the next byte. */
  get position(): number {
    return this.#consumed;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The next `n` bytes without consuming them; `n ≤ length`. */
  peek(n: number): Uint8Array {
    return this.#read(n, false);
  }

  /**
   * The longest run of available bytes, up to `max`, that lies in one chunk (a view, not consumed).
   * Empty only when the queue is.
   */
  front(max: number): Uint8Array {
    const first = this.#chunks[this.#first];
    if (first === undefined) return EMPTY;
    return first.subarray(this.#head, Math.min(first.length, this.#head + max));
  }

  /** Consumes and returns the next `n` bytes (a view when they lie in one chunk); `n ≤ length`. */
  take(n: number): Uint8Array {
    return this.#read(n, true);
  }

  /** Like take, but the result is always a new plain Uint8Array (never a view, never a Buffer). */
  takeCopy(n: number): Uint8Array {
    const first = this.#chunks[this.#first];
    const inOneChunk = first !== undefined && this.#head + n <= first.length;
    const bytes = this.#read(n, true);
    return inOneChunk ? copyBytes(bytes) : bytes;
  }

  /** Discards the next `n` bytes; `n ≤ length`. */
  skip(n: number): void {
    this.#read(n, true, false);
  }

  #read(n: number, consume: boolean, wantBytes = true): Uint8Array {
    if (!Number.isInteger(n) || n < 0 || n > this.#length) {
      throw new RangeError(`ByteQueue: asked for ${n} bytes, ${this.#length} available`);
    }
    const first = this.#chunks[this.#first];
    if (n === 0) return new Uint8Array(0);
    let result: Uint8Array;
    if (this.#head + n <= first.length) {
      result = first.subarray(this.#head, this.#head + n);
      if (consume) {
        this.#head += n;
        if (this.#head === first.length) this.#dropFirst();
      }
    } else {
      result = wantBytes ? new Uint8Array(n) : EMPTY;
      let filled = 0;
      let index = this.#first;
      let head = this.#head;
      while (filled < n) {
        const chunk = this.#chunks[index];
        const part = Math.min(chunk.length - head, n - filled);
        if (wantBytes) result.set(chunk.subarray(head, head + part), filled);
        filled += part;
        head += part;
        if (head === chunk.length) {
          index++;
          head = 0;
        }
      }
      if (consume) {
        for (let i = this.#first; i < index; i++) this.#chunks[i] = EMPTY;
        this.#first = index;
        this.#head = head;
        this.#compact();
      }
    }
    if (consume) {
      this.#length -= n;
      this.#consumed += n;
    }
    return result;
  }

  #dropFirst(): void {
    this.#chunks[this.#first] = EMPTY;
    this.#first++;
    this.#head = 0;
    this.#compact();
  }

  #compact(): void {
    if (this.#first === this.#chunks.length) {
      this.#chunks = [];
      this.#first = 0;
    } else if (this.#first > 64 && this.#first * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#first);
      this.#first = 0;
    }
  }
}

const EMPTY = new Uint8Array(0);

/**
 * A copy of `bytes` as a plain Uint8Array. (`Buffer#slice` returns a view, not a copy, so `.slice()`
 * cannot be trusted on input that may come from a Node stream.)
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy;
}
