// Keeps the node's epoch records (store/epoch-history.ts) up to date:
//   - `<data>/epoch`: raised (durably) whenever this node follows a newer lease epoch, or holds one
//     while it has no database, so that a replica still refuses an older primary after a restart. A
//     primary with databases records its epoch in their `epochs` lines (below) instead, and the
//     highest epoch seen is read back as the highest of the file and every database's last line: the
//     file's write (temp file, fsync, rename, directory fsync — two fsyncs in a row, on the event loop
//     until session 18; on the thread pool since, `raise`) was the largest part of entering the
//     primary role (handoff benchmarks: ~8 ms of ~10);
//   - per database `epochs`: a line when the first transaction under a new epoch is committed here
//     (primary: written at once when the lease is taken, for every database it has) or applied from a
//     stream (replica), so every transaction's epoch can be recovered from the data directory.
// Fed by the store's commit subscription; a failure to write is logged (the commit already happened).

import {
  type EpochChange,
  EpochHistoryFile,
  epochRuns,
  readHighestEpoch,
  writeHighestEpochAsync,
} from "../store/epoch-history.js";
import type { CommitEvent } from "../store/commit-event.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";

export interface EpochRecorderOptions {
  readonly store: Store;
  readonly log: StoreLogger;
  /** The epoch commits made here are written under (the held lease's), 0 when not primary. */
  readonly primaryEpoch: () => bigint;
  /** The epoch of the stream transactions are applied from now, 0 when none. */
  readonly streamEpoch: () => bigint;
  /**
   * The stream's primary's epoch history of `db` from where this replica stood when it connected
   * (epochHistoryFrom), undefined when the primary sent none: then every transaction the stream brings
   * is attributed to the stream's epoch, also those an earlier primary wrote (the catch-up).
   */
  readonly streamEpochLines?: (db: string) => readonly EpochChange[] | undefined;
  readonly noSync?: boolean;
}

export class EpochRecorder {
  readonly #opts: EpochRecorderOptions;
  readonly #files = new Map<string, EpochHistoryFile>();
  readonly #unsubscribe: () => void;
  #highest: bigint;
  /** The last raise, settled: the next one starts after it (one writer of the epoch file). */
  #raising: Promise<void> = Promise.resolve();
  /** Lines recorded at commits whose fsyncs have not ended yet (close waits for them). */
  readonly #syncing = new Set<Promise<boolean>>();

  constructor(opts: EpochRecorderOptions) {
    this.#opts = opts;
    let highest = readHighestEpoch(opts.store.dataDir.root);
    for (const db of opts.store.databases()) {
      const last = this.historyOf(db.name).lastEpoch;
      if (last > highest) highest = last;
    }
    this.#highest = highest;
    this.#unsubscribe = opts.store.subscribe((event) => this.#onCommit(event));
  }

  /** The highest epoch this node has held or followed (persisted). */
  get highest(): bigint {
    return this.#highest;
  }

  /**
   * Records `epoch` as seen (durably) when it is above the highest so far; `highest` says it once the
   * file is on disk. The fsyncs run on the thread pool: a replica raises its epoch when it connects to
   * a new primary, at a handoff or failover, while its applications read through the mount (1–22 ms
   * of FUSE requests held when they ran on the event loop, session 18). Raises run one at a time.
   */
  raise(epoch: bigint): Promise<void> {
    const done = this.#raising.then(async () => {
      if (epoch <= this.#highest) return;
      await writeHighestEpochAsync(this.#opts.store.dataDir.root, epoch, { noSync: this.#opts.noSync });
      this.#highest = epoch;
    });
    this.#raising = done.catch(() => undefined);
    return done;
  }

  /**
   * This node took the lease under `epoch`: mark every database's next TXID, and raise the epoch. The
   * databases' lines are written on the thread pool, their fsyncs overlapping (in turn, 200 appends
   * held the event loop for 64–138 ms, against 42–45 ms in parallel). They record `epoch` durably, so
   * the epoch file is written only when no database took a line (none exists, or every append failed;
   * see the header); when that write fails too, this throws and the node does not act as primary.
   */
  async primaryStarted(epoch: bigint): Promise<void> {
    const lines = this.#opts.store
      .databases()
      .map((db) => this.#recordAsync(db.name, epoch, db.pos.txid + 1n));
    const recorded = await Promise.all(lines);
    if (recorded.includes(true)) {
      if (epoch > this.#highest) this.#highest = epoch;
    } else {
      await this.raise(epoch); // no database, or none could take the line: the epoch file is its record
    }
  }

  /** The epochs file of `db`, read once. */
  historyOf(db: string): EpochHistoryFile {
    let file = this.#files.get(db);
    if (file === undefined) {
      const dbDir = this.#opts.store.dataDir.database(db);
      dbDir.ensure();
      file = new EpochHistoryFile(dbDir.dir, { noSync: this.#opts.noSync });
      this.#files.set(db, file);
    }
    return file;
  }

  /** Stops recording; resolves once the lines recorded so far are durable (or failed, logged). */
  async close(): Promise<void> {
    this.#unsubscribe();
    await Promise.all(this.#syncing);
  }

  #onCommit(event: CommitEvent): void {
    const epoch = event.source === "replication" ? this.#opts.streamEpoch() : this.#opts.primaryEpoch();
    if (epoch === 0n) return;
    const first = event.prevPos.txid + 1n <= event.pos.txid ? event.prevPos.txid + 1n : event.pos.txid;
    const lines = event.source === "replication" ? this.#opts.streamEpochLines?.(event.db) : undefined;
    if (lines === undefined) {
      this.#record(event.db, epoch, first);
      return;
    }
    // A catch-up brings transactions older primaries wrote: each goes to the epoch the primary's history
    // gives it, not to the stream's (which would rank this node above one holding more of that history).
    for (const run of epochRuns(lines, first, event.pos.txid, epoch))
      this.#record(event.db, run.epoch, run.firstTxid);
  }

  /** True when `db`'s epochs file holds `epoch` (or a later one) durably afterwards. */
  async #recordAsync(db: string, epoch: bigint, firstTxid: bigint): Promise<boolean> {
    try {
      const file = this.historyOf(db);
      if (epoch > file.lastEpoch) await file.record(epoch, firstTxid);
      return true;
    } catch (err) {
      this.#recordFailed(db, epoch, err);
      return false;
    }
  }

  #recordFailed(db: string, epoch: bigint, err: unknown): void {
    this.#opts.log.error("cannot record the epoch history", {
      db,
      epoch: epoch.toString(),
      error: (err as Error).message,
    });
  }

  /** At a commit: the line is in the file and the history at once, its fsyncs go on meanwhile. */
  #record(db: string, epoch: bigint, firstTxid: bigint): void {
    const syncing = this.#recordAsync(db, epoch, firstTxid);
    this.#syncing.add(syncing);
    void syncing.finally(() => this.#syncing.delete(syncing));
  }
}
