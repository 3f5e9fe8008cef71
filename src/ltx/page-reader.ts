// Random access to single pages of an LTX file through its v3 page index: read the header and the
// tail (trailer, index length, index), then any page with one read and one decompression. Early-v3
// files have an index too; v1 files do not, and are scanned from the start instead.
//
// What is and is not verified: the header rules, the index's structure (canonical, ascending,
// contiguous frames covering exactly the page block) and the frame that is read (its page number,
// flags, size and exact decompressed length). The file checksum is NOT — it covers the whole file;
// run `verifyLtxFile` once when the file arrives if that matters.

import { open, type FileHandle } from "node:fs/promises";
import { readExactly } from "./database-file.js";
import { openLtxFile } from "./decoder.js";
import { LtxError } from "./errors.js";
import { detectFormat, isV1Format, resolveBytes, type LtxFormat } from "./format.js";
import { decodeHeader, HEADER_SIZE, validateHeader, type Header } from "./header.js";
import { decompressBlock } from "./lz4-block.js";
import { lz4FrameDecompress } from "./lz4-frame.js";
import { lz4CompressBound, pageFrameBound } from "./page-frame.js";
import {
  decodePageIndex,
  findPageIndexEntry,
  PAGE_INDEX_LENGTH_SIZE,
  type PageIndexEntry,
} from "./page-index.js";
import { TRAILER_SIZE } from "./trailer.js";

/** An open LTX file for page lookups. Close it when done. */
export class LtxPageReader {
  readonly #handle: FileHandle;
  readonly path: string;
  readonly header: Header;
  readonly format: LtxFormat;
  /** Index entries (v3 and early v3); undefined for v1, which is scanned. */
  readonly index: readonly PageIndexEntry[] | undefined;

  private constructor(
    handle: FileHandle,
    path: string,
    header: Header,
    format: LtxFormat,
    index?: PageIndexEntry[],
  ) {
    this.#handle = handle;
    this.path = path;
    this.header = header;
    this.format = format;
    this.index = index;
  }

  static async open(path: string): Promise<LtxPageReader> {
    const handle = await open(path, "r");
    try {
      const size = (await handle.stat()).size;
      const header = decodeHeader(await readAt(handle, path, 0, Math.min(size, HEADER_SIZE)), path);
      const head = await readAt(handle, path, 0, Math.min(size, resolveBytes(header.pageSize)));
      const { format } = detectFormat(header, head, head.length === size);
      validateHeader(header, { v1: isV1Format(format), file: path });
      if (isV1Format(format)) return new LtxPageReader(handle, path, header, format);
      const tailAt = size - TRAILER_SIZE - PAGE_INDEX_LENGTH_SIZE;
      if (tailAt < HEADER_SIZE + 6) {
        throw new LtxError(
          "ELTXTRUNCATED",
          `file of ${size} bytes is too short for a v3 page block and index`,
          {
            file: path,
            offset: size,
            rule: "complete file",
          },
        );
      }
      const lengthBytes = await readAt(handle, path, tailAt, PAGE_INDEX_LENGTH_SIZE);
      const indexLength = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0);
      const indexAt = BigInt(tailAt) - indexLength;
      if (indexLength < 1n || indexAt < BigInt(HEADER_SIZE + 6)) {
        throw new LtxError("ELTXINDEX", `page index length ${indexLength} does not fit a ${size}-byte file`, {
          file: path,
          offset: tailAt,
          rule: "index length",
        });
      }
      const indexBytes = await readAt(handle, path, Number(indexAt), Number(indexLength));
      const index = decodePageIndex(indexBytes, {
        file: path,
        offset: Number(indexAt),
        pageBlockEnd: Number(indexAt) - 6,
      });
      return new LtxPageReader(handle, path, header, format, index);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** The page's data, or undefined when the file does not hold that page. */
  async readPage(pgno: number): Promise<Uint8Array | undefined> {
    if (this.index === undefined) return this.#scanFor(pgno);
    const entry = findPageIndexEntry(this.index, pgno);
    if (entry === undefined) return undefined;
    // The index is consistent with the file, but a frame it describes may still span gigabytes of
    // it: refuse before reading (and allocating) more than any page's frame can take.
    const bound = pageFrameBound(this.header.pageSize, this.format !== "v3");
    if (entry.size > bound) {
      throw new LtxError(
        "ELTXFRAME",
        `page ${pgno} frame of ${entry.size} bytes; a page's frame takes at most ${bound}`,
        {
          file: this.path,
          offset: entry.offset,
          rule: "frame size bound",
        },
      );
    }
    const frame = await readAt(this.#handle, this.path, entry.offset, entry.size);
    const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
    const fail = (
      offset: number,
      rule: string,
      detail: string,
      code: "ELTXFRAME" | "ELTXLZ4" = "ELTXFRAME",
    ): never => {
      throw new LtxError(code, detail, { file: this.path, offset: entry.offset + offset, rule });
    };
    if (view.getUint32(0) !== pgno)
      fail(0, "index matches frames", `index points at page ${view.getUint32(0)} for page ${pgno}`);
    const pageSize = this.header.pageSize;
    let data: Uint8Array = new Uint8Array(pageSize);
    let length: number;
    try {
      if (this.format === "v3") {
        if (view.getUint16(4) !== 1)
          fail(4, "page flags", `page ${pgno} frame has flags ${view.getUint16(4)}`);
        const size = view.getUint32(6);
        if (size !== entry.size - 10 || size > lz4CompressBound(pageSize)) {
          fail(6, "index matches frames", `page ${pgno} frame size ${size} disagrees with its index entry`);
        }
        length = decompressBlock(frame.subarray(10), data);
      } else {
        if (view.getUint16(4) !== 0)
          fail(4, "page flags", `page ${pgno} frame has flags ${view.getUint16(4)}`);
        data = lz4FrameDecompress(frame.subarray(6), pageSize);
        length = data.length;
      }
    } catch (err) {
      if (err instanceof LtxError && err.file !== undefined) throw err;
      const detail = err instanceof LtxError ? err.detail : String(err);
      return fail(6, "lz4", `page ${pgno}: ${detail}`, "ELTXLZ4");
    }
    if (length !== pageSize)
      fail(6, "page decompresses to page size", `page ${pgno} decompresses to ${length} bytes`);
    return data;
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }

  async #scanFor(pgno: number): Promise<Uint8Array | undefined> {
    const decoder = openLtxFile(this.path, { format: this.format });
    try {
      for (;;) {
        const page = await decoder.readPage();
        if (page === undefined || page.pgno > pgno) return undefined;
        if (page.pgno === pgno) return page.data;
      }
    } finally {
      await decoder.close();
    }
  }
}

/** One page of an LTX file, or undefined when the file does not hold it. See LtxPageReader. */
export async function readPageAt(path: string, pgno: number): Promise<Uint8Array | undefined> {
  const reader = await LtxPageReader.open(path);
  try {
    return await reader.readPage(pgno);
  } finally {
    await reader.close();
  }
}

function readAt(handle: FileHandle, path: string, position: number, length: number): Promise<Uint8Array> {
  return readExactly(handle, position, length, (offset) => {
    throw new LtxError(
      "ELTXTRUNCATED",
      `file ends at byte ${offset}, ${position + length - offset} bytes short`,
      {
        file: path,
        offset,
        rule: "complete file",
      },
    );
  });
}
