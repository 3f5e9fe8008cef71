// Writing LTX files: v3 (the default: page index, per-page LZ4 blocks, byte-identical to the Go
// reference) or v1 (LiteFS's format), with or without the LZ4 frame. The encoder is synchronous and
// hands its output, in chunks of up to 256 KiB, to an `emit` callback; encode-stream.ts puts a
// backpressure-aware stream in front of it.
//
// Every rule of the format is enforced on the way in (throws LtxError ELTXENCODE): the header rules;
// pages with 1 ≤ pgno ≤ commit, never the lock page, exactly page-size bytes, strictly ascending; a
// snapshot's pages 1..commit with none missing and its post-apply checksum equal to the checksum of
// its pages; post-apply rules (NoChecksum → 0, deletion → the empty database's checksum). A rejected
// call writes nothing and leaves the encoder usable.
//
// Ownership: `data` passed to writePage is only read during the call. Emitted chunks are new arrays
// the receiver owns.

import {
  CHECKSUM_FLAG,
  EMPTY_DATABASE_CHECKSUM,
  lockPgno,
  pageChecksum,
  RollingChecksum,
} from "./checksum.js";
import { copyBytes } from "./byte-queue.js";
import { Crc64Hash } from "./crc64.js";
import { LtxError } from "./errors.js";
import type { LtxWriteFormat } from "./format.js";
import {
  encodeHeader,
  hasNoChecksum,
  HEADER_FLAG_COMPRESS_LZ4,
  isSnapshot,
  validateHeader,
  type Header,
} from "./header.js";
import { compressBlockBound, compressBlockInto } from "./lz4-block.js";
import { Lz4FrameEncoder } from "./lz4-frame.js";
import { PageIndexBuilder } from "./page-index.js";
import { encodeTrailer, validatePostApplyChecksum, type Trailer } from "./trailer.js";

export interface LtxEncoderOptions {
  /** "v3" (default), "v1" (uncompressed) or "v1-lz4" (the page block as one LZ4 frame). */
  format?: LtxWriteFormat;
  /** Named in errors. */
  file?: string;
}

/** Output is gathered into chunks of this size before it is emitted. */
const OUTPUT_CHUNK_BYTES = 256 * 1024;
/**
 * The first chunk starts this small and grows: most files (one per transaction) are a few KiB, and a
 * 256 KiB buffer per file made the garbage collector a tenth of a busy mount's time.
 */
const FIRST_CHUNK_BYTES = 16 * 1024;

type EncoderState = "header" | "pages" | "finished";

export class LtxEncoder {
  readonly #emit: (chunk: Uint8Array) => void;
  readonly #format: LtxWriteFormat;
  readonly #file: string | undefined;
  readonly #hash = new Crc64Hash();
  #state: EncoderState = "header";
  #header: Header | undefined;
  #out = new Uint8Array(0);
  #outPos = 0;
  /** A chunk was emitted already: the file is big, so later chunks start at full size. */
  #emitted = false;
  #written = 0;
  #pageCount = 0;
  #lastPgno = 0;
  #lock = 0;
  #nextSnapshotPgno = 1;
  #snapshotChecksum: RollingChecksum | undefined;
  readonly #index = new PageIndexBuilder();
  #lz4: Lz4FrameEncoder | undefined;

  constructor(emit: (chunk: Uint8Array) => void, options: LtxEncoderOptions = {}) {
    this.#emit = emit;
    this.#format = options.format ?? "v3";
    this.#file = options.file;
  }

  get format(): LtxWriteFormat {
    return this.#format;
  }

  /** The header as written (for v1-lz4 with flag 0x1 added). */
  get header(): Header {
    if (this.#header === undefined) throw new Error("LtxEncoder: no header written yet");
    return this.#header;
  }

  /** Bytes produced so far (emitted or still buffered). */
  get size(): number {
    return this.#written;
  }

  get pageCount(): number {
    return this.#pageCount;
  }

  #fail(rule: string, detail: string): never {
    throw new LtxError("ELTXENCODE", detail, { file: this.#file, offset: this.#written, rule });
  }

  /**
   * Validates and writes the header. For v1-lz4 the CompressLZ4 flag (0x1) is set here; passing it
   * for another format is an error.
   */
  writeHeader(header: Header): void {
    if (this.#state !== "header") this.#fail("header first", "the header was already written");
    const lz4 = this.#format === "v1-lz4";
    if (!lz4 && (header.flags & HEADER_FLAG_COMPRESS_LZ4) !== 0) {
      this.#fail("header flags", `flag 0x1 (CompressLZ4) is for v1-lz4; this encoder writes ${this.#format}`);
    }
    const written = { ...header, flags: lz4 ? header.flags | HEADER_FLAG_COMPRESS_LZ4 : header.flags };
    validateHeader(written, { v1: this.#format !== "v3", file: this.#file, code: "ELTXENCODE" });
    const bytes = encodeHeader(written);
    this.#hash.update(bytes);
    this.#write(bytes);
    this.#header = written;
    this.#lock = lockPgno(written.pageSize);
    if (isSnapshot(written) && !hasNoChecksum(written)) this.#snapshotChecksum = new RollingChecksum();
    if (lz4) this.#lz4 = new Lz4FrameEncoder();
    this.#state = "pages";
  }

  writePage(pgno: number, data: Uint8Array): void {
    if (this.#state !== "pages") {
      this.#fail(
        "pages after header",
        this.#state === "header" ? "write the header first" : "encoder finished",
      );
    }
    const header = this.header;
    if (!Number.isInteger(pgno) || pgno < 1)
      this.#fail("pgno non-zero", `page number ${pgno} is not a positive integer`);
    if (pgno > header.commit)
      this.#fail("pgno ≤ commit", `page ${pgno} is beyond the database size of ${header.commit} pages`);
    if (pgno === this.#lock)
      this.#fail("no lock page", `page ${pgno} is the lock page and may not be stored`);
    if (data.length !== header.pageSize) {
      this.#fail("page size", `page ${pgno} has ${data.length} bytes, the page size is ${header.pageSize}`);
    }
    if (pgno === this.#lastPgno) this.#fail("no duplicate pages", `page ${pgno} written twice`);
    if (pgno < this.#lastPgno) this.#fail("pages ascending", `page ${pgno} after page ${this.#lastPgno}`);
    if (isSnapshot(header) && pgno !== this.#nextSnapshotPgno) {
      this.#fail(
        "snapshot complete",
        `snapshot page ${pgno} written where page ${this.#nextSnapshotPgno} is due`,
      );
    }

    if (this.#format === "v3") this.#writeBlockFrame(pgno, data);
    else this.#writeV1Frame(pgno, data);

    if (isSnapshot(header)) {
      this.#nextSnapshotPgno = pgno + 1 === this.#lock ? pgno + 2 : pgno + 1;
      this.#snapshotChecksum?.replace(undefined, pageChecksum(pgno, data));
    }
    this.#lastPgno = pgno;
    this.#pageCount++;
  }

  #writeBlockFrame(pgno: number, data: Uint8Array): void {
    const bound = compressBlockBound(data.length);
    this.#reserve(10 + bound);
    const out = this.#out;
    const start = this.#outPos;
    const view = new DataView(out.buffer, out.byteOffset + start, 10);
    view.setUint32(0, pgno);
    view.setUint16(4, 0x0001);
    const size = compressBlockInto(data, out.subarray(start + 10, start + 10 + bound));
    view.setUint32(6, size);
    this.#hash.update(out.subarray(start, start + 10)).update(data);
    this.#index.add(pgno, this.#written, 10 + size);
    this.#outPos += 10 + size;
    this.#written += 10 + size;
  }

  #writeV1Frame(pgno: number, data: Uint8Array): void {
    const pgnoBytes = new Uint8Array(4);
    new DataView(pgnoBytes.buffer).setUint32(0, pgno);
    this.#hash.update(pgnoBytes).update(data);
    this.#writeBody(pgnoBytes);
    this.#writeBody(data);
  }

  /** v1 page-block bytes: straight out, or through the LZ4 frame. */
  #writeBody(bytes: Uint8Array): void {
    if (this.#lz4 === undefined) this.#write(bytes);
    else for (const chunk of this.#lz4.push(bytes)) this.#write(chunk);
  }

  /**
   * Completes the file and returns its trailer. `postApplyChecksum` may be omitted for a snapshot
   * (computed from its pages), a deletion (the empty database's), or under NoChecksum (0); otherwise
   * it is required. For a snapshot a given value must equal the computed one.
   */
  finish(postApplyChecksum?: bigint): Trailer {
    if (this.#state !== "pages") {
      this.#fail(
        "finish once",
        this.#state === "header" ? "write the header first" : "encoder already finished",
      );
    }
    const header = this.header;
    if (isSnapshot(header)) {
      const due = header.commit + 1 === this.#lock ? header.commit + 2 : header.commit + 1;
      if (this.#nextSnapshotPgno < due) {
        this.#fail(
          "snapshot complete",
          `snapshot of ${header.commit} pages ends after page ${this.#lastPgno}`,
        );
      }
    }
    const postApply = this.#postApply(header, postApplyChecksum);
    validatePostApplyChecksum(header, postApply, {
      file: this.#file,
      offset: this.#written,
      code: "ELTXENCODE",
    });

    if (this.#format === "v3") {
      const terminator = new Uint8Array(6);
      this.#hash.update(terminator);
      this.#write(terminator);
      const index = this.#index.encode();
      this.#hash.update(index);
      this.#write(index);
    } else {
      const terminator = new Uint8Array(4);
      this.#hash.update(terminator);
      this.#writeBody(terminator);
      if (this.#lz4 !== undefined) for (const chunk of this.#lz4.end()) this.#write(chunk);
    }
    const trailerHead = encodeTrailer({ postApplyChecksum: postApply, fileChecksum: 0n }).subarray(0, 8);
    const fileChecksum = CHECKSUM_FLAG | this.#hash.update(trailerHead).digest();
    const trailer: Trailer = { postApplyChecksum: postApply, fileChecksum };
    this.#write(encodeTrailer(trailer));
    this.#flush();
    this.#state = "finished";
    return trailer;
  }

  #postApply(header: Header, given: bigint | undefined): bigint {
    if (hasNoChecksum(header)) return given ?? 0n;
    const computed = this.#snapshotChecksum?.value;
    if (computed !== undefined) {
      if (given !== undefined && given !== computed) {
        this.#fail(
          "snapshot post-apply checksum",
          `post-apply checksum ${hex(given)} does not match the snapshot's pages (${hex(computed)})`,
        );
      }
      return computed;
    }
    if (given !== undefined) return given;
    if (header.commit === 0) return EMPTY_DATABASE_CHECKSUM;
    return this.#fail("post-apply checksum required", "a non-snapshot file needs its post-apply checksum");
  }

  #reserve(n: number): void {
    const need = this.#outPos + n;
    if (need <= this.#out.length) return;
    if (need <= OUTPUT_CHUNK_BYTES && !this.#emitted) {
      // Grow the first chunk (doubling, so a big file copies each byte at most once more).
      const grown = new Uint8Array(Math.min(OUTPUT_CHUNK_BYTES, Math.max(FIRST_CHUNK_BYTES, 2 * need)));
      grown.set(this.#out.subarray(0, this.#outPos));
      this.#out = grown;
      return;
    }
    this.#flush();
    if (n > this.#out.length) this.#out = new Uint8Array(Math.max(n, OUTPUT_CHUNK_BYTES));
  }

  #write(bytes: Uint8Array): void {
    if (bytes.length > OUTPUT_CHUNK_BYTES) {
      this.#flush();
      this.#emit(copyBytes(bytes));
      this.#written += bytes.length;
      return;
    }
    this.#reserve(bytes.length);
    this.#out.set(bytes, this.#outPos);
    this.#outPos += bytes.length;
    this.#written += bytes.length;
  }

  #flush(): void {
    if (this.#outPos === 0) return;
    const chunk = this.#out.subarray(0, this.#outPos);
    // The sink may keep the chunk: the next bytes go to a new buffer, allocated when needed.
    this.#out = new Uint8Array(0);
    this.#outPos = 0;
    this.#emitted = true;
    this.#emit(chunk);
  }
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}

/** Encodes a whole file in memory. `pages` must be in ascending page order. */
export function encodeLtx(
  header: Header,
  pages: Iterable<{ pgno: number; data: Uint8Array }>,
  postApplyChecksum?: bigint,
  options: LtxEncoderOptions = {},
): Uint8Array {
  const chunks: Uint8Array[] = [];
  const encoder = new LtxEncoder((chunk) => chunks.push(chunk), options);
  encoder.writeHeader(header);
  for (const { pgno, data } of pages) encoder.writePage(pgno, data);
  encoder.finish(postApplyChecksum);
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(encoder.size);
  let pos = 0;
  for (const chunk of chunks) {
    out.set(chunk, pos);
    pos += chunk.length;
  }
  return out;
}
