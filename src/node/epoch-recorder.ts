// Keeps the node's epoch records (store/epoch-history.ts) up to date:
//   - `<data>/epoch`: raised (durably) whenever this node holds or follows a newer lease epoch, so that
//     a replica still refuses an older primary after a restart;
//   - per database `epochs`: a line when the first transaction under a new epoch is committed here
//     (primary: written at once when the lease is taken, for every database it has) or applied from a
//     stream (replica), so every transaction's epoch can be recovered from the data directory.
// Fed by the store's commit subscription; a failure to write is logged (the commit already happened).

import {
  type EpochChange,
  EpochHistoryFile,
  epochRuns,
  readHighestEpoch,
  writeHighestEpoch,
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

  constructor(opts: EpochRecorderOptions) {
    this.#opts = opts;
    this.#highest = readHighestEpoch(opts.store.dataDir.root);
    this.#unsubscribe = opts.store.subscribe((event) => this.#onCommit(event));
  }

  /** The highest epoch this node has held or followed (persisted). */
  get highest(): bigint {
    return this.#highest;
  }

  /** Records `epoch` as seen (durably) when it is above the highest so far. */
  raise(epoch: bigint): void {
    if (epoch <= this.#highest) return;
    writeHighestEpoch(this.#opts.store.dataDir.root, epoch, { noSync: this.#opts.noSync });
    this.#highest = epoch;
  }

  /**
   * This node took the lease under `epoch`: raise the epoch and mark every database's next TXID. The
   * databases' lines are written on the thread pool while the epoch file is written here, so their
   * fsyncs overlap it and each other (in turn, entering the role took three fsyncs with one database
   * and one more per database, two for a new file: in isolation 200 appends held the event loop for
   * 64–138 ms, against 42–45 ms in parallel on the thread pool).
   */
  async primaryStarted(epoch: bigint): Promise<void> {
    const lines = this.#opts.store
      .databases()
      .map((db) => this.#recordAsync(db.name, epoch, db.pos.txid + 1n));
    try {
      this.raise(epoch);
    } finally {
      await Promise.all(lines);
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

  close(): void {
    this.#unsubscribe();
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

  async #recordAsync(db: string, epoch: bigint, firstTxid: bigint): Promise<void> {
    try {
      const file = this.historyOf(db);
      if (epoch > file.lastEpoch) await file.recordAsync(epoch, firstTxid);
    } catch (err) {
      this.#recordFailed(db, epoch, err);
    }
  }

  #recordFailed(db: string, epoch: bigint, err: unknown): void {
    this.#opts.log.error("cannot record the epoch history", {
      db,
      epoch: epoch.toString(),
      error: (err as Error).message,
    });
  }

  #record(db: string, epoch: bigint, firstTxid: bigint): void {
    try {
      const file = this.historyOf(db);
      if (epoch > file.lastEpoch) file.record(epoch, firstTxid);
    } catch (err) {
      this.#recordFailed(db, epoch, err);
    }
  }
}
