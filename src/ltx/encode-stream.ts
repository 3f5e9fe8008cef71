// The encoder in front of a stream: LtxStreamEncoder writes to a Node Writable (waiting for 'drain'
// when it pushes back) or any sink with an async `write`, and writeLtxFile puts a whole file on disk
// the crash-safe way (temp file → fsync → rename → fsync directory).

import { once } from "node:events";
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import type { Writable } from "node:stream";
import { LtxEncoder, type LtxEncoderOptions } from "./encoder.js";
import type { Header } from "./header.js";
import type { Trailer } from "./trailer.js";

/** Where encoded bytes go. `write` may return a promise; the encoder waits for it before going on. */
export interface ByteSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

function isWritable(sink: Writable | ByteSink): sink is Writable {
  return (
    typeof (sink as Writable).once === "function" && typeof (sink as Writable).writableNeedDrain === "boolean"
  );
}

/** LtxEncoder with asynchronous, backpressure-aware output. Same rules and errors as LtxEncoder. */
export class LtxStreamEncoder {
  readonly #encoder: LtxEncoder;
  readonly #sink: Writable | ByteSink;
  #pending: Uint8Array[] = [];

  constructor(sink: Writable | ByteSink, options: LtxEncoderOptions = {}) {
    this.#sink = sink;
    this.#encoder = new LtxEncoder((chunk) => this.#pending.push(chunk), options);
  }

  /** Bytes produced so far. */
  get size(): number {
    return this.#encoder.size;
  }

  get header(): Header {
    return this.#encoder.header;
  }

  async writeHeader(header: Header): Promise<void> {
    this.#encoder.writeHeader(header);
    await this.#drain();
  }

  async writePage(pgno: number, data: Uint8Array): Promise<void> {
    this.#encoder.writePage(pgno, data);
    await this.#drain();
  }

  async finish(postApplyChecksum?: bigint): Promise<Trailer> {
    const trailer = this.#encoder.finish(postApplyChecksum);
    await this.#drain();
    return trailer;
  }

  async #drain(): Promise<void> {
    if (this.#pending.length === 0) return;
    const chunks = this.#pending;
    this.#pending = [];
    const sink = this.#sink;
    for (const chunk of chunks) {
      if (isWritable(sink)) {
        if (!sink.write(chunk)) await once(sink, "drain");
      } else {
        await sink.write(chunk);
      }
    }
  }
}

/** A sink writing to an open file at its current end, completing short writes. */
export function fileHandleSink(handle: FileHandle): ByteSink {
  return {
    async write(chunk: Uint8Array): Promise<void> {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.length - done);
        done += bytesWritten;
      }
    },
  };
}

/**
 * Creates `path` crash-safely: `produce` writes the contents to a sink backed by a temporary file in
 * the same directory, which is then fsynced and renamed over `path`, and the directory fsynced. If
 * `produce` throws, the temporary file is removed and `path` is untouched.
 */
export async function writeFileAtomically<T>(
  path: string,
  produce: (sink: ByteSink) => Promise<T>,
): Promise<T> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const handle = await open(temp, "wx");
  let result: T;
  try {
    result = await produce(fileHandleSink(handle));
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  await rename(temp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return result;
}

/**
 * Writes an LTX file to `path` crash-safely. `pages` must ascend. See LtxEncoder for the rules and
 * `postApplyChecksum`.
 */
export async function writeLtxFile(
  path: string,
  header: Header,
  pages: AsyncIterable<{ pgno: number; data: Uint8Array }> | Iterable<{ pgno: number; data: Uint8Array }>,
  postApplyChecksum?: bigint,
  options: Omit<LtxEncoderOptions, "file"> = {},
): Promise<{ trailer: Trailer; size: number }> {
  return writeFileAtomically(path, async (sink) => {
    const encoder = new LtxStreamEncoder(sink, { ...options, file: path });
    await encoder.writeHeader(header);
    for await (const { pgno, data } of pages) await encoder.writePage(pgno, data);
    const trailer = await encoder.finish(postApplyChecksum);
    return { trailer, size: encoder.size };
  });
}
