// xxHash32 — the checksum of the LZ4 frame format (header checksum byte, block and content checksums).
// Plain JS with Math.imul; results are unsigned 32-bit numbers. xxh32(empty, 0) = 0x02cc5d05.

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

const littleEndianHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function readLe32(d: Uint8Array, i: number): number {
  return d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24);
}

/** Streaming xxHash32. `digest` does not reset: more `update`s continue the same stream. */
export class Xxh32 {
  readonly #seed: number;
  #v1: number;
  #v2: number;
  #v3: number;
  #v4: number;
  #total = 0; // bytes seen, modulo nothing (a double counts far past 2^32)
  readonly #buffer = new Uint8Array(16);
  #buffered = 0;

  constructor(seed = 0) {
    this.#seed = seed >>> 0;
    this.#v1 = (this.#seed + P1 + P2) | 0;
    this.#v2 = (this.#seed + P2) | 0;
    this.#v3 = this.#seed | 0;
    this.#v4 = (this.#seed - P1) | 0;
  }

  update(data: Uint8Array): this {
    const n = data.length;
    this.#total += n;
    let i = 0;
    if (this.#buffered > 0) {
      const take = Math.min(16 - this.#buffered, n);
      this.#buffer.set(data.subarray(0, take), this.#buffered);
      this.#buffered += take;
      i = take;
      if (this.#buffered < 16) return this;
      this.#stripes(this.#buffer, 0, 16);
      this.#buffered = 0;
    }
    const end = i + ((n - i) & ~15);
    if (end > i) this.#stripes(data, i, end);
    if (end < n) {
      this.#buffer.set(data.subarray(end), 0);
      this.#buffered = n - end;
    }
    return this;
  }

  /** Folds 16-byte stripes d[from, to) into the four accumulators. */
  #stripes(d: Uint8Array, from: number, to: number): void {
    let v1 = this.#v1;
    let v2 = this.#v2;
    let v3 = this.#v3;
    let v4 = this.#v4;
    if (littleEndianHost && ((d.byteOffset + from) & 3) === 0) {
      // Aligned: read words through a Uint32Array view (about twice as fast as composing bytes).
      const w = new Uint32Array(d.buffer, d.byteOffset + from, (to - from) >>> 2);
      for (let k = 0; k < w.length; k += 4) {
        v1 = Math.imul(rotl((v1 + Math.imul(w[k], P2)) | 0, 13), P1);
        v2 = Math.imul(rotl((v2 + Math.imul(w[k + 1], P2)) | 0, 13), P1);
        v3 = Math.imul(rotl((v3 + Math.imul(w[k + 2], P2)) | 0, 13), P1);
        v4 = Math.imul(rotl((v4 + Math.imul(w[k + 3], P2)) | 0, 13), P1);
      }
      from = to;
    }
    for (let i = from; i < to; i += 16) {
      v1 = Math.imul(rotl((v1 + Math.imul(readLe32(d, i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(readLe32(d, i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(readLe32(d, i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(readLe32(d, i + 12), P2)) | 0, 13), P1);
    }
    this.#v1 = v1;
    this.#v2 = v2;
    this.#v3 = v3;
    this.#v4 = v4;
  }

  digest(): number {
    let h: number;
    if (this.#total >= 16) {
      h = (rotl(this.#v1, 1) + rotl(this.#v2, 7) + rotl(this.#v3, 12) + rotl(this.#v4, 18)) | 0;
    } else {
      h = (this.#seed + P5) | 0;
    }
    h = (h + (this.#total % 0x100000000)) | 0;
    const b = this.#buffer;
    let i = 0;
    for (; i + 4 <= this.#buffered; i += 4) {
      h = Math.imul(rotl((h + Math.imul(readLe32(b, i), P3)) | 0, 17), P4);
    }
    for (; i < this.#buffered; i++) {
      h = Math.imul(rotl((h + Math.imul(b[i], P5)) | 0, 11), P1);
    }
    h ^= h >>> 15;
    h = Math.imul(h, P2);
    h ^= h >>> 13;
    h = Math.imul(h, P3);
    h ^= h >>> 16;
    return h >>> 0;
  }
}

/** xxHash32 of `data` with `seed` (default 0), as an unsigned 32-bit number. */
export function xxh32(data: Uint8Array, seed = 0): number {
  return new Xxh32(seed).update(data).digest();
}
