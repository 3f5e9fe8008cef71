// The LTX decoding state machine, without I/O: bytes are pushed in, and `next()` hands back the
// header, then the pages one by one, then the verified trailer — or says it needs more input. Every
// async or sync reader in this library is a loop around it.
//
// What it verifies, as it goes (Go's decoder checks only the first and the file checksum):
//   - header rules and format detection (format.ts), the page-block layout of the detected format;
//   - each page: pgno ≠ 0, ≤ commit, not the lock page, strictly ascending (no duplicates),
//     decompresses to exactly the page size; a snapshot's pages run 1..commit with none missing;
//   - v3: the page index lists exactly the frames read, with the right offsets, sizes and length;
//   - the file checksum, the post-apply checksum rules, and for a snapshot the rolling checksum of its
//     pages against the trailer; nothing after the trailer.
// Pages are handed out before the file checksum at the end has been checked (that is what streaming
// means): a caller that acts on pages must wait for the "end" event before committing to them.
//
// Memory: at most one page frame of input is held beyond what the caller pushed, plus, for v3, 16
// bytes per page to check the index against.
//
// The header event comes once the format is known. When the first frame reads both as v1 and as v3
// (every v3 file's does: its page flags are `00 01`), that takes resolveBytes(pageSize) bytes (~9 KiB
// for 4 KiB pages), or the end of input for a smaller file (format.ts, resolveFormat).

import { ByteQueue } from "./byte-queue.js";
import { CHECKSUM_FLAG, lockPgno, pageChecksum, RollingChecksum } from "./checksum.js";
import { Crc64Hash } from "./crc64.js";
import { LtxError } from "./errors.js";
import { detectFormat, DETECT_BYTES, isV1Format, resolveBytes, type LtxFormat } from "./format.js";
import {
  decodeHeader,
  hasNoChecksum,
  HEADER_FLAG_COMPRESS_LZ4,
  HEADER_SIZE,
  isSnapshot,
  validateHeader,
  type Header,
} from "./header.js";
import { V1PageBlockReader } from "./page-block-v1.js";
import { V3PageBlockReader } from "./page-block-v3.js";
import {
  NEED_INPUT,
  type LtxPage,
  type NeedInput,
  type PageBlockContext,
  type PageBlockReader,
} from "./page-frame.js";
import { decodeTrailer, TRAILER_SIZE, validatePostApplyChecksum, type Trailer } from "./trailer.js";

export interface LtxParserOptions {
  /** Named in every error. */
  file?: string;
  /**
   * The format, when the caller knows it; otherwise it is detected from the bytes after the header.
   * Needed only for v1 files whose first page starts with bytes that look like a v3 frame.
   */
  format?: LtxFormat;
  /**
   * Also require every LZ4 block or frame to be exactly what the reference compressor makes of its
   * content. LZ4 allows several encodings of the same bytes (a match offset of 1 or 2 inside a run of
   * one byte value gives the same output), and the file checksum covers decompressed pages, so
   * without this check such a variant decodes — to the very same pages. With it, a file is accepted
   * only in its one canonical encoding. Files from other LZ4 compressors fail it; it costs a
   * compression per page.
   */
  canonicalLz4?: boolean;
}

/** What a fully read file amounts to. */
export interface LtxSummary {
  header: Header;
  format: LtxFormat;
  trailer: Trailer;
  pageCount: number;
  /** Bytes of the file. */
  size: number;
}

export type ParseEvent =
  | { kind: "header"; header: Header; format: LtxFormat; formatCertain: boolean }
  | { kind: "page"; page: LtxPage }
  | { kind: "end"; summary: LtxSummary };

export { NEED_INPUT, type NeedInput };

type ParseState = "header" | "pages" | "tail" | "trailer" | "eof" | "done";

export class LtxParser {
  readonly file: string | undefined;
  readonly #queue = new ByteQueue();
  readonly #hash = new Crc64Hash();
  readonly #canonicalLz4: boolean;
  readonly #formatOption: LtxFormat | undefined;
  #ended = false;
  #state: ParseState = "header";
  #header: Header | undefined;
  #format: LtxFormat | undefined;
  #block: PageBlockReader | undefined;
  #trailer: Trailer | undefined;
  #pageCount = 0;
  #lastPgno = 0;
  #lock = 0;
  /** Snapshot only: the page that must come next, and the checksum of the pages so far. */
  #nextSnapshotPgno = 1;
  #snapshotChecksum: RollingChecksum | undefined;

  constructor(options: LtxParserOptions = {}) {
    this.file = options.file;
    this.#formatOption = options.format;
    this.#canonicalLz4 = options.canonicalLz4 ?? false;
  }

  get header(): Header {
    if (this.#header === undefined) throw new Error("LtxParser: header not read yet");
    return this.#header;
  }

  get format(): LtxFormat | undefined {
    return this.#format;
  }

  /** Adds input. The parser keeps `chunk` by reference until consumed: do not modify it afterwards. */
  push(chunk: Uint8Array): void {
    if (this.#ended) throw new Error("LtxParser: push after end");
    this.#queue.push(chunk);
  }

  /** Declares that no more input will come. */
  end(): void {
    this.#ended = true;
  }

  /**
   * The next event, or NEED_INPUT. After the "end" event it returns undefined. Throws LtxError for
   * any invalid input; the parser is unusable after a throw.
   */
  next(): ParseEvent | NeedInput | undefined {
    for (;;) {
      switch (this.#state) {
        case "header":
          return this.#readHeader();
        case "pages": {
          const frame = this.#block!.nextFrame();
          if (frame === NEED_INPUT) return NEED_INPUT;
          if (frame === "terminator") {
            this.#endOfPages();
            this.#state = "tail";
            continue;
          }
          this.#checkPage(frame);
          return { kind: "page", page: frame };
        }
        case "tail": {
          if (this.#block!.readTail() === NEED_INPUT) return NEED_INPUT;
          this.#state = "trailer";
          continue;
        }
        case "trailer":
          if (this.#queue.length < TRAILER_SIZE) return this.#needOrTruncated("the 16-byte trailer");
          this.#readTrailer();
          this.#state = "eof";
          continue;
        case "eof":
          if (this.#queue.length > 0) {
            throw new LtxError("ELTXTRAILING", `${this.#queue.length} bytes after the trailer`, {
              file: this.file,
              offset: this.#queue.position,
              rule: "nothing after trailer",
            });
          }
          if (!this.#ended) return NEED_INPUT;
          this.#state = "done";
          return {
            kind: "end",
            summary: {
              header: this.header,
              format: this.#format!,
              trailer: this.#trailer!,
              pageCount: this.#pageCount,
              size: this.#queue.position,
            },
          };
        case "done":
          return undefined;
      }
    }
  }

  #needOrTruncated(what: string): NeedInput {
    if (!this.#ended) return NEED_INPUT;
    const end = this.#queue.position + this.#queue.length;
    throw new LtxError("ELTXTRUNCATED", `file ends at byte ${end}, inside ${what}`, {
      file: this.file,
      offset: end,
      rule: "complete file",
    });
  }

  #readHeader(): ParseEvent | NeedInput {
    if (this.#queue.length < DETECT_BYTES && !this.#ended) return NEED_INPUT;
    const head = this.#queue.peek(Math.min(this.#queue.length, DETECT_BYTES));
    const header = decodeHeader(head, this.file);
    let detected =
      this.#formatOption === undefined
        ? detectFormat(header, head)
        : { format: this.#formatOption, certain: true };
    if (!detected.certain) {
      // The first frame reads both ways: wait for enough of it to tell (format.ts, resolveFormat).
      const want = resolveBytes(header.pageSize);
      if (this.#queue.length < want && !this.#ended) return NEED_INPUT;
      detected = detectFormat(header, this.#queue.peek(Math.min(this.#queue.length, want)), this.#ended);
    }
    let format = detected.format;
    const lz4Flag = (header.flags & HEADER_FLAG_COMPRESS_LZ4) !== 0;
    if (this.#formatOption === "v1" && lz4Flag) format = "v1-lz4";
    if (format === "v1" && lz4Flag) {
      throw new LtxError("ELTXHEADER", "flag 0x1 (CompressLZ4) is set but no LZ4 frame follows the header", {
        file: this.file,
        offset: 4,
        rule: "header flags",
      });
    }
    if (format === "v1-lz4" && !lz4Flag) {
      throw new LtxError("ELTXHEADER", "v1-lz4 requested but header flag 0x1 (CompressLZ4) is not set", {
        file: this.file,
        offset: 4,
        rule: "header flags",
      });
    }
    validateHeader(header, { v1: isV1Format(format), file: this.file });
    if (head.length < DETECT_BYTES) this.#needOrTruncated("the first page frame"); // throws: input ended
    this.#hash.update(this.#queue.take(HEADER_SIZE));
    this.#header = header;
    this.#format = format;
    this.#lock = lockPgno(header.pageSize);
    if (isSnapshot(header) && !hasNoChecksum(header)) this.#snapshotChecksum = new RollingChecksum();
    const ctx: PageBlockContext = {
      header,
      file: this.file,
      queue: this.#queue,
      hash: this.#hash,
      canonicalLz4: this.#canonicalLz4,
      isEnded: () => this.#ended,
    };
    this.#block =
      format === "v3" || format === "v3-frame"
        ? new V3PageBlockReader(ctx, { lz4Frames: format === "v3-frame" })
        : new V1PageBlockReader(ctx, { lz4: format === "v1-lz4" });
    this.#state = "pages";
    return { kind: "header", header, format, formatCertain: detected.certain };
  }

  #fail(
    offset: number,
    rule: string,
    detail: string,
    code: "ELTXFRAME" | "ELTXCHECKSUM" = "ELTXFRAME",
  ): never {
    throw new LtxError(code, detail, { file: this.file, offset, rule });
  }

  #checkPage(page: LtxPage): void {
    const { pgno, offset } = page;
    const header = this.header;
    if (pgno === this.#lastPgno) this.#fail(offset, "no duplicate pages", `page ${pgno} appears twice`);
    if (pgno < this.#lastPgno) {
      this.#fail(offset, "pages ascending", `page ${pgno} follows page ${this.#lastPgno}; pages must ascend`);
    }
    if (pgno > header.commit) {
      this.#fail(
        offset,
        "pgno ≤ commit",
        `page ${pgno} is beyond the database size of ${header.commit} pages`,
      );
    }
    if (pgno === this.#lock)
      this.#fail(offset, "no lock page", `page ${pgno} is the lock page and may not be stored`);
    if (isSnapshot(header)) {
      if (pgno !== this.#nextSnapshotPgno) {
        this.#fail(
          offset,
          "snapshot complete",
          `snapshot skips from page ${this.#nextSnapshotPgno} to ${pgno}`,
        );
      }
      this.#nextSnapshotPgno = pgno + 1 === this.#lock ? pgno + 2 : pgno + 1;
      this.#snapshotChecksum?.replace(undefined, pageChecksum(pgno, page.data));
    }
    this.#lastPgno = pgno;
    this.#pageCount++;
  }

  #endOfPages(): void {
    const header = this.header;
    if (!isSnapshot(header)) return;
    const want = header.commit + 1 === this.#lock ? header.commit + 2 : header.commit + 1;
    if (header.commit > 0 && this.#nextSnapshotPgno < want) {
      this.#fail(
        this.#queue.position,
        "snapshot complete",
        `snapshot of ${header.commit} pages ends after page ${this.#lastPgno}`,
      );
    }
  }

  #readTrailer(): void {
    const offset = this.#queue.position;
    const bytes = this.#queue.take(TRAILER_SIZE);
    const trailer = decodeTrailer(bytes);
    this.#hash.update(bytes.subarray(0, 8));
    const actual = CHECKSUM_FLAG | this.#hash.digest();
    if (trailer.fileChecksum !== actual) {
      this.#fail(
        offset + 8,
        "file checksum",
        `file checksum is ${hex(trailer.fileChecksum)}, the contents give ${hex(actual)}`,
        "ELTXCHECKSUM",
      );
    }
    validatePostApplyChecksum(this.header, trailer.postApplyChecksum, { file: this.file, offset });
    const rolling = this.#snapshotChecksum?.value;
    if (rolling !== undefined && rolling !== trailer.postApplyChecksum) {
      this.#fail(
        offset,
        "snapshot post-apply checksum",
        `post-apply checksum is ${hex(trailer.postApplyChecksum)}, the snapshot's pages give ${hex(rolling)}`,
        "ELTXCHECKSUM",
      );
    }
    this.#trailer = trailer;
  }
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
