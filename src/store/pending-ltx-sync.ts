// LTX files of WAL transactions written without fsync (lazy durability, docs/store.md "Durability"),
// and the making of them durable: in the background on a short timer, or at once when something is
// about to depend on them (SQLite syncing the WAL or the database file, a checkpoint, the WAL losing
// frames, a journal commit, close).
//
// Contract with recovery (ltx-tail.ts): at any moment at most MAX_UNSYNCED_LTX_FILES files of one
// database are not known durable, and they are the newest ones — files are added in TXID order and
// `syncNow` runs before a file that must be durable (a journal commit's) is written. So after a power
// failure only the newest MAX_UNSYNCED_LTX_FILES files can be torn or missing.
//
// "Durable" means: each file's content fsynced, then the directory fsynced (the renames) — or, for a
// batch, one syncfs of the file system (durable-file.ts `syncFileSystem`), which does both for every
// file at once at a small fraction of the cost of one fsync per file. If syncfs is not available (no
// `sync` tool) or fails, the files are fsynced one by one. A process crash loses nothing here: the
// page cache holds the files whether or not they were fsynced.

import fs from "node:fs";

import {
  fsyncDirectory,
  fsyncPathAsync,
  fsyncPathIfExists,
  syncFileSystem,
  syncFileSystemAsync,
} from "./durable-file.js";
import type { StoreLogger } from "./store-logger.js";

/** Most LTX files of one database that may be not yet durable; recovery checks this many newest files. */
export const MAX_UNSYNCED_LTX_FILES = 256;

/** Delay after the first unsynced file before the background sync starts. */
export const LTX_SYNC_DELAY_MS = 200;

/**
 * From this many pending files on, one syncfs is used instead of an fsync per file (and directory):
 * in the background from a few files on (it blocks nobody); synchronously only for a bigger batch,
 * because syncfs also waits for every other dirty file of the file system, which a busy neighbour
 * can make slow (measured here: ~0.2–2 ms per fsync, 5–30 ms per syncfs).
 */
const SYNCFS_MIN_FILES_BACKGROUND = 4;
const SYNCFS_MIN_FILES_NOW = 32;

export class PendingLtxSync {
  readonly #db: string;
  readonly #dir: string;
  readonly #log: StoreLogger;
  /** Renamed into place, not yet known durable; TXID order. */
  #pending: string[] = [];
  #timer: NodeJS.Timeout | null = null;
  #background: Promise<void> | null = null;
  #closed = false;
  /** syncfs failed once (no tool, or an error): fsync file by file from then on. */
  #syncFsBroken = false;

  constructor(db: string, ltxDir: string, log: StoreLogger) {
    this.#db = db;
    this.#dir = ltxDir;
    this.#log = log;
  }

  get count(): number {
    return this.#pending.length;
  }

  /** True when the next file would exceed MAX_UNSYNCED_LTX_FILES: call syncNow before writing it. */
  get full(): boolean {
    return this.#pending.length >= MAX_UNSYNCED_LTX_FILES;
  }

  /** Records a file renamed into place without fsync (the newest so far) and schedules its fsync. */
  added(file: string): void {
    if (this.#closed) throw new Error("pending LTX sync: closed");
    if (this.#pending.length >= MAX_UNSYNCED_LTX_FILES)
      throw new Error(`pending LTX sync: more than ${MAX_UNSYNCED_LTX_FILES} unsynced files`);
    this.#pending.push(file);
    if (this.#background !== null) return; // the next one is scheduled when it ends
    if (this.#pending.length >= MAX_UNSYNCED_LTX_FILES / 2) {
      // Commits outpace the timer: start now, so that the cap (a synchronous sync) is rarely reached.
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#startBackground();
    } else if (this.#timer === null) {
      this.#timer = setTimeout(() => this.#startBackground(), LTX_SYNC_DELAY_MS);
      this.#timer.unref();
    }
  }

  /**
   * Makes every pending file durable before returning (synchronous: the caller answers a FUSE request
   * only afterwards). Throws if an fsync fails; the files then stay pending.
   */
  syncNow(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending.slice();
    if (!this.#syncAsBatch(batch)) {
      for (const file of batch) fsyncFileIfExists(file);
      fsyncDirectory(this.#dir);
    }
    this.#pending = this.#pending.slice(batch.length);
    this.#clearTimerIfIdle();
  }

  /** Syncs what is pending (errors are logged: the WAL still holds those transactions) and stops the timer. */
  close(): void {
    if (this.#closed) return;
    try {
      this.syncNow();
    } catch (err) {
      this.#log.error("LTX fsync failed at close", { db: this.#db, error: (err as Error).message });
    }
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** One syncfs for `batch` if worth it and available; false: the caller fsyncs file by file. */
  #syncAsBatch(batch: readonly string[]): boolean {
    if (this.#syncFsBroken || batch.length < SYNCFS_MIN_FILES_NOW) return false;
    try {
      syncFileSystem(this.#dir);
      return true;
    } catch (err) {
      this.#syncFsFailed(err);
      return false;
    }
  }

  #syncFsFailed(err: unknown): void {
    this.#syncFsBroken = true;
    this.#log.warn("syncfs unavailable: fsyncing LTX files one by one", {
      db: this.#db,
      error: (err as Error).message,
    });
  }

  #clearTimerIfIdle(): void {
    if (this.#pending.length === 0 && this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #startBackground(): void {
    this.#timer = null;
    if (this.#closed || this.#pending.length === 0 || this.#background !== null) return;
    const batch = this.#pending.slice();
    this.#background = this.#syncInBackground(batch)
      .then(
        () => {
          // syncNow may have taken these (and more) meanwhile: drop only what is still at the front.
          let n = 0;
          while (n < batch.length && this.#pending[n] === batch[n]) n++;
          if (n === batch.length) this.#pending = this.#pending.slice(n);
        },
        (err: unknown) => {
          if (!this.#closed)
            this.#log.error("background LTX fsync failed (retried later)", {
              db: this.#db,
              error: (err as Error).message,
            });
        },
      )
      .finally(() => {
        this.#background = null;
        if (this.#closed || this.#pending.length === 0 || this.#timer !== null) return;
        if (this.#pending.length >= MAX_UNSYNCED_LTX_FILES / 2) {
          this.#startBackground();
          return;
        }
        this.#timer = setTimeout(() => this.#startBackground(), LTX_SYNC_DELAY_MS);
        this.#timer.unref();
      });
  }

  /** syncfs in a child process, or fsyncs on the thread pool: the FUSE thread goes on meanwhile. */
  async #syncInBackground(batch: readonly string[]): Promise<void> {
    if (!this.#syncFsBroken && batch.length >= SYNCFS_MIN_FILES_BACKGROUND) {
      try {
        await syncFileSystemAsync(this.#dir);
        return;
      } catch (err) {
        this.#syncFsFailed(err);
      }
    }
    await Promise.all(batch.map((file) => fsyncPathIfExists(file)));
    await fsyncPathAsync(this.#dir);
  }
}

/** A file removed meanwhile (retention, a deleted database) needs no fsync. */
function fsyncFileIfExists(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
