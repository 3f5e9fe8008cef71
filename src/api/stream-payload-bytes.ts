// Byte-level reading and writing of big-endian payload fields for the stream and its request body.
// Both throw StreamViolation (rules "field range", "payload layout", "utf-8"), which the callers turn
// into errors that say where. The reader never reads past its bytes; the writer refuses values that do
// not fit their field instead of wrapping them.

import { StreamViolation } from "./stream-error.js";

const U64_MAX = (1n << 64n) - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();

/** UTF-8 bytes of `text`; refuses strings with lone surrogates (they would not come back the same). */
export function utf8(text: string, what: string): Uint8Array {
  const bytes = UTF8_ENCODER.encode(text);
  if (UTF8.decode(bytes) !== text) throw new StreamViolation("utf-8", `${what} is not well-formed Unicode`);
  return bytes;
}

export class PayloadWriter {
  readonly #parts: Uint8Array[] = [];
  #length = 0;

  u8(value: number): this {
    return this.#push(Uint8Array.of(value));
  }
  u16(value: number, what: string): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
      throw new StreamViolation("field range", `${what} ${value} does not fit in 16 bits`);
    }
    return this.#push(Uint8Array.of(value >>> 8, value & 0xff));
  }
  u32(value: number, what: string): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new StreamViolation("field range", `${what} ${value} does not fit in 32 bits`);
    }
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value);
    return this.#push(bytes);
  }
  u64(value: bigint, what: string): this {
    if (value < 0n || value > U64_MAX) {
      throw new StreamViolation("field range", `${what} ${value} does not fit in 64 bits`);
    }
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, value);
    return this.#push(bytes);
  }
  bytes(bytes: Uint8Array): this {
    return this.#push(bytes);
  }
  finish(): Uint8Array {
    if (this.#parts.length === 1) return this.#parts[0];
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const part of this.#parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
  #push(bytes: Uint8Array): this {
    this.#parts.push(bytes);
    this.#length += bytes.length;
    return this;
  }
}

export class PayloadReader {
  readonly #view: DataView;
  #at = 0;

  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** Bytes read so far. */
  get at(): number {
    return this.#at;
  }
  #need(n: number, what: string): void {
    if (this.#at + n > this.bytes.length) {
      throw new StreamViolation(
        "payload layout",
        `payload of ${this.bytes.length} bytes ends inside ${what} (at byte ${this.#at})`,
      );
    }
  }
  u8(what: string): number {
    this.#need(1, what);
    return this.#view.getUint8(this.#at++);
  }
  u16(what: string): number {
    this.#need(2, what);
    const value = this.#view.getUint16(this.#at);
    this.#at += 2;
    return value;
  }
  u32(what: string): number {
    this.#need(4, what);
    const value = this.#view.getUint32(this.#at);
    this.#at += 4;
    return value;
  }
  u64(what: string): bigint {
    this.#need(8, what);
    const value = this.#view.getBigUint64(this.#at);
    this.#at += 8;
    return value;
  }
  /** A u64 that must also be a safe JavaScript integer. */
  safe(what: string): number {
    const value = this.u64(what);
    if (value > MAX_SAFE) throw new StreamViolation("field range", `${what} ${value} is beyond 2^53 - 1`);
    return Number(value);
  }
  take(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const out = this.bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }
  text(n: number, what: string): string {
    const bytes = this.take(n, what);
    try {
      return UTF8.decode(bytes);
    } catch {
      throw new StreamViolation("utf-8", `${what} is not valid UTF-8`);
    }
  }
  end(): void {
    if (this.#at !== this.bytes.length) {
      throw new StreamViolation(
        "payload layout",
        `${this.bytes.length - this.#at} unexpected bytes after the last field (payload is ${this.bytes.length} bytes)`,
      );
    }
  }
}
