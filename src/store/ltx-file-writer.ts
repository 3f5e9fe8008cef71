// Writes one LTX file into a database's `ltx/` directory crash-safely: encoded straight to a temporary
// file as pages arrive (so a multi-GB snapshot never sits in memory), fsynced, renamed to its final
// `%016x-%016x.ltx` name, and the directory fsynced. The encoder enforces every rule of the format on
// the way in; the decoder checks them again wherever the file is read.

import fs from "node:fs";
import path from "node:path";

import { LtxEncoder } from "../ltx/encoder.js";
import type { LtxWriteFormat } from "../ltx/format.js";
import type { Header } from "../ltx/header.js";
import type { DatabaseDir } from "./data-dir.js";
import { fsyncDirectory, removeFile, TEMP_SUFFIX, writeAll } from "./durable-file.js";
import type { TempFile } from "./spare-ltx-file.js";

export interface LtxWriteOptions {
  /** Default "v3". */
  readonly format?: LtxWriteFormat;
  /** Skip fsyncs (tests only). */
  readonly noSync?: boolean;
  /**
   * Skip both fsyncs (the file's, before the rename, and the directory's, after it): the caller makes
   * the file durable later (PendingLtxSync) and recovery handles a file a power failure tore or lost
   * (recovery.ts, ltx-tail.ts). The rename still makes the file whole-or-absent against a process
   * crash, which the page cache survives. Default false.
   */
  readonly deferSync?: boolean;
  /**
   * An empty temporary file already created in the same directory (spare-ltx-file.ts), written and
   * renamed instead of creating `<name>.tmp`. The writer owns it from then on (removed on abort).
   */
  readonly temp?: TempFile;
}

export interface WrittenLtx {
  readonly path: string;
  readonly bytes: number;
}

/** An LTX file being written: `writePage` in ascending order, then `commit` or `abort`. */
export class LtxFileWriter {
  readonly path: string;
  readonly #temp: string;
  readonly #noSync: boolean;
  readonly #deferSync: boolean;
  readonly #encoder: LtxEncoder;
  #fd: number | null;
  #bytes = 0;

  /** `dir` only needs to name the file (a database's `ltx/` directory, or a quarantine directory). */
  constructor(dir: Pick<DatabaseDir, "ltxFile">, header: Header, opts: LtxWriteOptions = {}) {
    this.path = dir.ltxFile(header.minTxid, header.maxTxid);
    this.#temp = opts.temp?.path ?? this.path + TEMP_SUFFIX;
    this.#noSync = opts.noSync === true;
    this.#deferSync = opts.deferSync === true;
    const fd = opts.temp?.fd ?? fs.openSync(this.#temp, "w", 0o644);
    this.#fd = fd;
    this.#encoder = new LtxEncoder(
      (chunk) => {
        writeAll(fd, chunk, this.#bytes);
        this.#bytes += chunk.length;
      },
      { format: opts.format ?? "v3", file: this.#temp },
    );
    try {
      this.#encoder.writeHeader(header);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  writePage(pgno: number, data: Uint8Array): void {
    try {
      this.#encoder.writePage(pgno, data);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Finishes the file and makes it durable under its final name (unless `deferSync`). */
  commit(postApplyChecksum: bigint): WrittenLtx {
    const fd = this.#fd;
    if (fd === null) throw new Error("LTX writer: already finished");
    try {
      const trailer = this.#encoder.finish(postApplyChecksum);
      if (trailer.postApplyChecksum !== postApplyChecksum || this.#bytes !== this.#encoder.size) {
        throw new Error(
          `LTX writer: wrote ${this.#bytes} of ${this.#encoder.size} bytes or a wrong post-apply checksum`,
        );
      }
      if (!this.#noSync && !this.#deferSync) fs.fsyncSync(fd);
    } catch (err) {
      this.abort();
      throw err;
    }
    fs.closeSync(fd);
    this.#fd = null;
    fs.renameSync(this.#temp, this.path);
    if (!this.#noSync && !this.#deferSync) fsyncDirectory(path.dirname(this.path));
    return { path: this.path, bytes: this.#bytes };
  }

  /** Removes the temporary file; safe to call more than once. */
  abort(): void {
    if (this.#fd === null) return;
    fs.closeSync(this.#fd);
    this.#fd = null;
    removeFile(this.#temp);
  }
}

export interface LtxFileContent {
  readonly header: Header;
  /** Page numbers, ascending. */
  readonly pgnos: Iterable<number>;
  /** Returns page `pgno` (header.pageSize bytes); only read during the call. */
  readonly readPage: (pgno: number) => Uint8Array;
  readonly postApplyChecksum: bigint;
}

/** Writes a whole LTX file whose pages can be read synchronously. */
export function writeLtxFile(
  dir: DatabaseDir,
  content: LtxFileContent,
  opts: LtxWriteOptions = {},
): WrittenLtx {
  const writer = new LtxFileWriter(dir, content.header, opts);
  for (const pgno of content.pgnos) writer.writePage(pgno, content.readPage(pgno));
  return writer.commit(content.postApplyChecksum);
}
