// Receiving one LTX file from the primary on a replica: its bytes arrive in chunks of any size while
// an LtxParser checks them as they pass (header, every page frame, page index, file checksum, and for
// a snapshot the rolling checksum of all its pages). A file of up to HELD_FILE_BYTES stays in memory
// (`StagedLtx.bytes`): with `finish({ writeBehind })` its write to the temporary name starts on the
// thread pool once it is complete and verified (`StagedLtx.written`), otherwise it is first written
// when it is made durable (`persistStagedLtx…`); a bigger one goes into the temporary file in the
// database's `ltx/` directory as it arrives. Temporary names are unique per stager: a write still in
// flight for a discarded file never meets the next copy of the same transaction. Nothing of the
// database changes while a file is staged: only a finished, fully verified file becomes a StagedLtx
// that the database can apply (database.ts `applyStaged`).
//
// Memory: an incremental file's pages are kept in memory up to `memoryLimitBytes` (most transactions
// are a few pages); past that they are dropped and read back from the verified file when applied. A
// snapshot's pages are written into a temporary database file as they arrive, so a multi-GB snapshot
// never sits in memory and applying it is one rename.
//
// Temporary files end in ".tmp": recovery removes them after a crash, `abort` removes them otherwise.

import fs from "node:fs";
import path from "node:path";

import { pageChecksum } from "../ltx/checksum.js";
import { formatFileName } from "../ltx/file-name.js";
import type { Header } from "../ltx/header.js";
import { LtxParser, NEED_INPUT, type LtxSummary } from "../ltx/parser.js";
import type { DatabaseDir } from "./data-dir.js";
import { removeFile, TEMP_SUFFIX, writeAll } from "./durable-file.js";
import { PageChecksums } from "./page-checksums.js";
import { StoreError } from "./store-error.js";

/** Bytes of a snapshot's pages written to the temporary database file at once. */
const RUN_BYTES = 1 << 20;
/** Bytes written to a temporary file between two background flushes. */
const FLUSH_BYTES = 64 << 20;
/**
 * An LTX file up to this size is held in memory while it arrives, not created and written chunk by
 * chunk: creating a file per transaction on the event loop blocked it in the kernel — 35 % of a busy
 * replica's main thread in session 21's profile, at ~5,000 tx/s (most likely on the file system's
 * journal, busy with the previous run's fsyncs: not traced).
 */
const HELD_FILE_BYTES = 4 << 20;

/**
 * Starts writing a big file's dirty pages to disk while it is still being written (an fdatasync on a
 * descriptor of its own, on the thread pool), so that the fsync that makes it durable later finds
 * little left to do and the disk works while the CPU decodes. Best effort: errors are ignored (the
 * final fsync reports any real one); at most one flush per file at a time.
 */
class BackgroundFlush {
  readonly #path: string;
  #written = 0;
  #flushedAt = 0;
  #running: Promise<void> | null = null;

  constructor(path: string) {
    this.#path = path;
  }

  wrote(bytes: number): void {
    this.#written += bytes;
    if (this.#running !== null || this.#written - this.#flushedAt < FLUSH_BYTES) return;
    this.#flushedAt = this.#written;
    this.#running = (async () => {
      const handle = await fs.promises.open(this.#path, "r");
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        this.#running = null;
      });
  }
}

/** Default bytes of page data an incremental file may keep in memory. */
export const DEFAULT_STAGED_MEMORY_BYTES = 32 << 20;

export interface StagedLtx {
  readonly db: string;
  readonly header: Header;
  readonly postApplyChecksum: bigint;
  /** Bytes of the LTX file. */
  readonly size: number;
  /**
   * The complete, verified file's temporary name (not fsynced yet): written as the file arrived when
   * `bytes` is null, else by `written` or at the persist.
   */
  readonly tempPath: string;
  /** The whole file, when it was held in memory (up to HELD_FILE_BYTES); null for a bigger one. */
  readonly bytes: Uint8Array | null;
  /**
   * The write of `bytes` to `tempPath` started at staging (`writeBehind`), not fsynced: resolves once
   * the file is there, rejects with the write's error. null when none was started.
   */
  readonly written: Promise<void> | null;
  /** Where it goes once applied: `<ltx>/%016x-%016x.ltx`. */
  readonly finalPath: string;
  /** Page numbers the file carries, ascending, and each page's LTX checksum (same order). */
  readonly pgnos: readonly number[];
  readonly pageChecksums: readonly bigint[];
  /** Incremental files: the pages (same order), or null when they did not fit in memory. */
  readonly pages: readonly Uint8Array[] | null;
  /** Snapshots: a temporary file holding the whole new database, and its page checksums. */
  readonly snapshot: { readonly databasePath: string; readonly checksums: PageChecksums } | null;
}

export interface LtxStagerOptions {
  /** The TXID range the stream announced; the file's header must say the same. */
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  readonly memoryLimitBytes?: number;
}

/** Makes each stager's temporary name unique within the process. */
let stagerSeq = 0;

export class LtxStager {
  readonly db: string;
  readonly #opts: LtxStagerOptions;
  readonly #parser: LtxParser;
  readonly #dir: DatabaseDir;
  readonly #tempPath: string;
  readonly #finalPath: string;
  readonly #snapshotPath: string;
  /** The temporary file, once the file outgrew HELD_FILE_BYTES. */
  #fd: number | null = null;
  /** The bytes so far while the file is held in memory; null once it is in the temporary file. */
  #held: Uint8Array[] | null = [];
  #snapshotFd: number | null = null;
  #header: Header | undefined;
  #bytes = 0;
  #summary: LtxSummary | undefined;
  readonly #pgnos: number[] = [];
  readonly #sums: bigint[] = [];
  #pages: Uint8Array[] | null = [];
  #pageBytes = 0;
  #snapshotSums: PageChecksums | null = null;
  /** A snapshot's pages not yet written: consecutive pages from #runFirst, flushed in big writes. */
  #run: Buffer | null = null;
  readonly #ltxFlush: BackgroundFlush;
  #snapshotFlush: BackgroundFlush | null = null;
  #runFirst = 0;
  #runPages = 0;
  #failed = false;
  #finished = false;

  constructor(dir: DatabaseDir, db: string, opts: LtxStagerOptions) {
    this.db = db;
    this.#opts = opts;
    this.#dir = dir;
    this.#finalPath = dir.ltxFile(opts.minTxid, opts.maxTxid);
    this.#tempPath = path.join(
      dir.ltxDir,
      `${formatFileName(opts.minTxid, opts.maxTxid)}.${++stagerSeq}.recv${TEMP_SUFFIX}`,
    );
    this.#snapshotPath = path.join(dir.dir, `database.snapshot${TEMP_SUFFIX}`);
    this.#parser = new LtxParser({ file: this.#tempPath });
    this.#ltxFlush = new BackgroundFlush(this.#tempPath);
  }

  /** Bytes received so far. */
  get size(): number {
    return this.#bytes;
  }

  /**
   * Adds the next bytes of the file. Throws LtxError (bad bytes) or StoreError EAPPLY (a header that is
   * not the announced file); after a throw the stager is aborted.
   */
  push(chunk: Uint8Array): void {
    this.#assertUsable();
    try {
      if (this.#held !== null && this.#bytes + chunk.length <= HELD_FILE_BYTES) this.#held.push(chunk);
      else {
        this.#spill();
        writeAll(this.#fd!, chunk, this.#bytes);
        this.#ltxFlush.wrote(chunk.length);
      }
      this.#bytes += chunk.length;
      this.#parser.push(chunk);
      this.#drain();
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /**
   * Declares the end of the file; returns it verified. Throws like `push` (and aborts).
   *
   * `writeBehind`: a file held in memory starts its write to the temporary name now (open, write,
   * close on the thread pool), to overlap with receiving the files after it in the same run; not for
   * a snapshot (written where it is persisted). For a file applied at once it would only add thread
   * pool hops before its fsync: the persist writes it.
   */
  finish(opts: { writeBehind?: boolean } = {}): StagedLtx {
    this.#assertUsable();
    try {
      this.#parser.end();
      this.#drain();
      const summary = this.#summary;
      if (summary === undefined) throw new Error("LTX parser ended without a summary");
      const header = summary.header;
      this.#finished = true;
      if (this.#fd !== null) fs.closeSync(this.#fd);
      this.#fd = null;
      const bytes = this.#held === null ? null : Buffer.concat(this.#held, this.#bytes);
      this.#held = null;
      let written: Promise<void> | null = null;
      if (bytes !== null && opts.writeBehind === true && this.#snapshotFd === null) {
        written = writeNewFile(this.#dir, this.#tempPath, bytes);
        written.catch(() => undefined); // the persist awaits it; a discarded file's failure is nobody's
      }
      let snapshot: StagedLtx["snapshot"] = null;
      if (this.#snapshotFd !== null) {
        this.#flushRun();
        fs.ftruncateSync(this.#snapshotFd, header.commit * header.pageSize);
        fs.closeSync(this.#snapshotFd);
        this.#snapshotFd = null;
        snapshot = { databasePath: this.#snapshotPath, checksums: this.#snapshotSums! };
      }
      return {
        db: this.db,
        header,
        postApplyChecksum: summary.trailer.postApplyChecksum,
        size: this.#bytes,
        tempPath: this.#tempPath,
        bytes,
        written,
        finalPath: this.#finalPath,
        pgnos: this.#pgnos,
        pageChecksums: this.#sums,
        pages: snapshot === null ? this.#pages : null,
        snapshot,
      };
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Removes the temporary files; safe to call more than once and after `finish` (before applying). */
  abort(): void {
    this.#failed = true;
    for (const fd of [this.#fd, this.#snapshotFd]) if (fd !== null) fs.closeSync(fd);
    this.#fd = null;
    this.#snapshotFd = null;
    this.#held = null;
    removeFile(this.#tempPath);
    removeFile(this.#snapshotPath);
  }

  #assertUsable(): void {
    if (this.#failed || this.#finished) {
      throw new StoreError("EAPPLY", "LTX file staging was aborted or already finished", { db: this.db });
    }
  }

  /** Moves the file from memory into its temporary file (it outgrew HELD_FILE_BYTES). */
  #spill(): void {
    if (this.#fd !== null) return;
    this.#dir.ensure();
    this.#fd = fs.openSync(this.#tempPath, "w", 0o644);
    let at = 0;
    for (const chunk of this.#held ?? []) {
      writeAll(this.#fd, chunk, at);
      at += chunk.length;
    }
    this.#ltxFlush.wrote(at);
    this.#held = null;
  }

  #drain(): void {
    for (;;) {
      const event = this.#parser.next();
      if (event === NEED_INPUT || event === undefined) return;
      switch (event.kind) {
        case "header":
          this.#onHeader(event.header);
          break;
        case "page":
          this.#onPage(event.page.pgno, event.page.data);
          break;
        case "end":
          this.#summary = event.summary;
          return;
      }
    }
  }

  #onHeader(header: Header): void {
    if (header.minTxid !== this.#opts.minTxid || header.maxTxid !== this.#opts.maxTxid) {
      throw new StoreError(
        "EAPPLY",
        `LTX header has TXIDs ${header.minTxid}-${header.maxTxid}, the stream announced ` +
          `${this.#opts.minTxid}-${this.#opts.maxTxid}`,
        { db: this.db, file: this.#tempPath },
      );
    }
    this.#header = header;
    if (header.minTxid === 1n && header.commit > 0) {
      this.#dir.ensure();
      this.#snapshotFd = fs.openSync(this.#snapshotPath, "w", 0o644);
      this.#snapshotFlush = new BackgroundFlush(this.#snapshotPath);
      this.#snapshotSums = new PageChecksums(header.pageSize, header.commit);
    }
  }

  /** Collects runs of consecutive pages (a snapshot's are 1..commit) into one write per RUN_BYTES. */
  #bufferSnapshotPage(pgno: number, data: Uint8Array, pageSize: number): void {
    if (this.#run !== null && pgno !== this.#runFirst + this.#runPages) this.#flushRun();
    this.#run ??= Buffer.allocUnsafe(Math.max(pageSize, RUN_BYTES - (RUN_BYTES % pageSize)));
    if (this.#runPages === 0) this.#runFirst = pgno;
    this.#run.set(data, this.#runPages * pageSize);
    this.#runPages++;
    if ((this.#runPages + 1) * pageSize > this.#run.length) this.#flushRun();
  }

  #flushRun(): void {
    if (this.#run === null || this.#runPages === 0) return;
    const pageSize = this.#header!.pageSize;
    const bytes = this.#runPages * pageSize;
    writeAll(this.#snapshotFd!, this.#run.subarray(0, bytes), (this.#runFirst - 1) * pageSize);
    this.#snapshotFlush?.wrote(bytes);
    this.#runPages = 0;
  }

  #onPage(pgno: number, data: Uint8Array): void {
    const header = this.#header!;
    const sum = pageChecksum(pgno, data);
    if (this.#snapshotFd !== null) {
      this.#bufferSnapshotPage(pgno, data, header.pageSize);
      this.#snapshotSums!.set(pgno, sum);
      return;
    }
    this.#pgnos.push(pgno);
    this.#sums.push(sum);
    if (this.#pages === null) return;
    this.#pageBytes += data.length;
    if (this.#pageBytes > (this.#opts.memoryLimitBytes ?? DEFAULT_STAGED_MEMORY_BYTES)) {
      this.#pages = null; // read back from the verified file when applied
      return;
    }
    this.#pages.push(data);
  }
}

/** `bytes` as a new file at `file`, on the thread pool; the database's directories made on ENOENT. */
async function writeNewFile(dir: DatabaseDir, file: string, bytes: Uint8Array): Promise<void> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, "w", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    await fs.promises.mkdir(dir.ltxDir, { recursive: true });
    handle = await fs.promises.open(file, "w", 0o644);
  }
  try {
    await handle.writeFile(bytes);
  } finally {
    await handle.close();
  }
}

/**
 * Removes what staging `staged` left (its temporary file, a snapshot's temporary database file), and
 * again once a write started at staging has settled. Failures are ignored: leftover temporary files
 * are removed at the next start.
 */
export function discardStaged(staged: StagedLtx): void {
  const remove = (): void => {
    for (const file of [staged.tempPath, staged.snapshot?.databasePath]) {
      if (file === undefined) continue;
      try {
        fs.rmSync(file, { force: true });
      } catch {
        // left for the next start
      }
    }
  };
  remove();
  staged.written?.then(remove, remove);
}
