// Reading LTX files: a streaming decoder over any source of byte chunks (a Node Readable, a file, an
// HTTP body, an array), and whole-file conveniences built on it. All of them verify everything the
// parser verifies (see parser.ts) and throw LtxError, naming file, offset and rule, for bad input.
// Errors of the source itself (an I/O error of the file) pass through unchanged.

import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { LtxError } from "./errors.js";
import type { LtxFormat } from "./format.js";
import type { Header } from "./header.js";
import type { LtxPage } from "./page-frame.js";
import {
  LtxParser,
  NEED_INPUT,
  type LtxParserOptions,
  type LtxSummary,
  type NeedInput,
  type ParseEvent,
} from "./parser.js";

export type { LtxPage, LtxSummary };

/** Any source of bytes: chunks arrive in order, of any size. Chunks must not be modified afterwards. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Readable;

export type LtxDecoderOptions = LtxParserOptions;

/** Chunk size for file reads: large enough that per-chunk overhead vanishes, small enough to stream. */
const FILE_CHUNK_BYTES = 256 * 1024;

/**
 * Streams one LTX file: `readHeader()`, then `readPage()` until it returns undefined, at which point
 * the whole file (index, checksums, trailer, end of input) has been verified and `summary` is set.
 * Pages come out before the end is verified: act on them only once `readPage()` returned undefined.
 * Holds at most one page frame beyond the current input chunk.
 */
export class LtxDecoder {
  readonly #parser: LtxParser;
  readonly #iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  #header: Header | undefined;
  #formatCertain = true;
  #summary: LtxSummary | undefined;
  #closed = false;

  constructor(source: ByteSource, options: LtxDecoderOptions = {}) {
    this.#parser = new LtxParser(options);
    if (Symbol.asyncIterator in source)
      this.#iterator = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    else if (Symbol.iterator in source) this.#iterator = source[Symbol.iterator]();
    else throw new TypeError("LtxDecoder: source is not iterable");
  }

  get file(): string | undefined {
    return this.#parser.file;
  }

  /** The format (after readHeader). */
  get format(): LtxFormat {
    const format = this.#parser.format;
    if (format === undefined) throw new Error("LtxDecoder: header not read yet");
    return format;
  }

  /** False when a v1 file could look like this format (see format.ts); whole-file readers retry as v1. */
  get formatCertain(): boolean {
    return this.#formatCertain;
  }

  /** Set once the last page has been read and the file verified. */
  get summary(): LtxSummary | undefined {
    return this.#summary;
  }

  async readHeader(): Promise<Header> {
    if (this.#header !== undefined) return this.#header;
    const event = await this.#next();
    if (event?.kind !== "header") throw new Error("LtxDecoder: expected the header event first");
    this.#header = event.header;
    this.#formatCertain = event.formatCertain;
    return event.header;
  }

  /** The next page, or undefined once the file has been read to its end and verified. */
  async readPage(): Promise<LtxPage | undefined> {
    if (this.#header === undefined) await this.readHeader();
    if (this.#summary !== undefined) return undefined;
    // Fast path: the page is already in the input pushed so far, no await needed to get it.
    let event: ParseEvent | NeedInput | undefined;
    try {
      event = this.#parser.next();
    } catch (err) {
      await this.close().catch(() => undefined);
      throw err;
    }
    if (event === NEED_INPUT || event?.kind === "end") event = await this.#next(event);
    if (event === undefined) return undefined;
    if (event.kind === "page") return event.page;
    if (event.kind === "end") {
      this.#summary = event.summary;
      return undefined;
    }
    throw new Error(`LtxDecoder: unexpected ${event.kind} event`);
  }

  async *pages(): AsyncGenerator<LtxPage, void, undefined> {
    for (;;) {
      const page = await this.readPage();
      if (page === undefined) return;
      yield page;
    }
  }

  /** Reads (and discards) the remaining pages, verifying the file to its end. */
  async finish(): Promise<LtxSummary> {
    while ((await this.readPage()) !== undefined) {
      // Only the verification matters here.
    }
    return this.#summary!;
  }

  /** Stops reading and releases the source (closes a file stream). Safe to call more than once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#iterator.return?.();
  }

  /** The next event, reading input as needed; `pending` is one the caller already took. */
  async #next(pending?: ParseEvent | NeedInput): Promise<ParseEvent | undefined> {
    try {
      for (;;) {
        const event = pending ?? this.#parser.next();
        pending = undefined;
        if (event !== NEED_INPUT) {
          if (event?.kind === "end") await this.close();
          return event;
        }
        if (this.#closed) throw new Error("LtxDecoder: read after close");
        const step = await this.#iterator.next();
        if (step.done === true) this.#parser.end();
        else this.#parser.push(asBytes(step.value));
      }
    } catch (err) {
      await this.close().catch(() => undefined);
      throw err;
    }
  }
}

function asBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError(`LtxDecoder: source yielded ${typeof chunk}, not bytes`);
}

/** A file's bytes as a stream of chunks. */
export function fileSource(path: string): Readable {
  return createReadStream(path, { highWaterMark: FILE_CHUNK_BYTES });
}

/** A whole LTX file in memory. */
export interface DecodedLtx extends LtxSummary {
  pages: LtxPage[];
}

/** Decodes `bytes` whole; `seen.certain` records how sure format detection was, even on failure. */
function runParser(bytes: Uint8Array, options: LtxDecoderOptions, seen: { certain: boolean }): DecodedLtx {
  const parser = new LtxParser(options);
  parser.push(bytes);
  parser.end();
  const pages: LtxPage[] = [];
  for (;;) {
    const event = parser.next();
    if (event === NEED_INPUT || event === undefined) throw new Error("LtxParser: stalled on complete input");
    if (event.kind === "header") seen.certain = event.formatCertain;
    else if (event.kind === "page") pages.push(event.page);
    else return { ...event.summary, pages };
  }
}

/**
 * Decodes and verifies a whole LTX file held in memory. When the format was detected with doubt (a
 * v1 file can look like v3) and decoding fails, it is tried as v1 before the first error is thrown.
 */
export function decodeLtx(bytes: Uint8Array, options: LtxDecoderOptions = {}): DecodedLtx {
  const seen = { certain: true };
  try {
    return runParser(bytes, options, seen);
  } catch (err) {
    if (!(err instanceof LtxError) || options.format !== undefined || seen.certain) throw err;
    try {
      return runParser(bytes, { ...options, format: "v1" }, seen);
    } catch {
      throw err;
    }
  }
}

/** Decodes and verifies an LTX file, streaming it from disk; pages are collected in memory. */
export async function readLtxFile(
  path: string,
  options: Omit<LtxDecoderOptions, "file"> = {},
): Promise<DecodedLtx> {
  return withV1Fallback(path, options, async (decoder) => {
    const pages: LtxPage[] = [];
    for await (const page of decoder.pages()) pages.push(page);
    return { ...decoder.summary!, pages };
  });
}

/** Verifies an LTX file by streaming it from disk, holding no more than a page at a time. */
export async function verifyLtxFile(
  path: string,
  options: Omit<LtxDecoderOptions, "file"> = {},
): Promise<LtxSummary> {
  return withV1Fallback(path, options, (decoder) => decoder.finish());
}

/** A streaming decoder over a file on disk. Call `close()` if you stop before the end. */
export function openLtxFile(path: string, options: Omit<LtxDecoderOptions, "file"> = {}): LtxDecoder {
  return new LtxDecoder(fileSource(path), { ...options, file: path });
}

async function withV1Fallback<T>(
  path: string,
  options: Omit<LtxDecoderOptions, "file">,
  read: (decoder: LtxDecoder) => Promise<T>,
): Promise<T> {
  const decoder = openLtxFile(path, options);
  try {
    await decoder.readHeader();
    return await read(decoder);
  } catch (err) {
    await decoder.close();
    const doubtful = decoder.file !== undefined && options.format === undefined && !decoder.formatCertain;
    if (!(err instanceof LtxError) || !doubtful) throw err;
    const retry = openLtxFile(path, { ...options, format: "v1" });
    try {
      await retry.readHeader();
      return await read(retry);
    } catch {
      await retry.close();
      throw err;
    }
  }
}
