// Applying a replicated transaction on a replica so that a reader connected through the mount sees it
// whole — never half of one, never a stale page — in every journal mode:
//
//   1. take the locks a SQLite writer would (mountfs/database-lock-guard.ts `replicaApply`): readers
//      finish their transactions, new ones wait;
//   2. write it (store: LTX durable, pages, truncate, fsync, position);
//   3. drop the kernel's cached pages and attributes of the database file (FUSE notify inval inode),
//      and in WAL mode publish a new wal-index header in `-shm` (mountfs/wal-index-publisher.ts:
//      written into the backing file, the kernel's pages that readers map dropped around it), whose
//      bumped change counter makes every connection drop its page cache at its next transaction;
//   4. when the file's size changed, have the kernel fetch the new attributes while the locks are still
//      held (kernel-node-locks.ts `refreshAttributes`: a reader's fstat racing another process's
//      attribute refresh could read the old size as valid, and SQLite takes the database for corrupt);
//   5. release the locks. Only now can a reader start a transaction, and it finds nothing stale.
// Entries the kernel may have cached as missing (a database that just appeared, a new `-wal`) are
// invalidated too. When the database leaves WAL mode and no connection has `-shm` open any more, the
// empty `-wal` and `-shm` go, so that new connections use rollback locking again.
//
// The applier never opens a file in the node's own mount, nor makes any system call on it: a process
// holding a file there hangs forever in the kernel when it is SIGKILLed (wal-index-publisher.ts).

import type { FuseSession } from "../fuse/session.js";
import type { DatabaseLockGuard, ReleaseLocks } from "../mountfs/database-lock-guard.js";
import type { LitefsFileSystem } from "../mountfs/litefs-file-system.js";
import { ROOT_NODE_ID } from "../mountfs/node-table.js";
import { publishWalIndexHeader } from "../mountfs/wal-index-publisher.js";
import type { Database } from "../store/database.js";
import type { AppliedReplica } from "../store/replica-apply.js";
import type { ReplicaApplyPlan } from "../store/replica-apply-plan.js";
import type { StoreLogger } from "../store/store-logger.js";

export interface ReplicaApplierOptions {
  readonly fileSystem: LitefsFileSystem;
  readonly session: FuseSession;
  readonly locks: DatabaseLockGuard;
  readonly log: StoreLogger;
  /** Log a warning when readers keep the locks this long (and again each time as long). */
  readonly slowLockWarnMs?: number;
}

/** Transactions applied under locks still held (see `apply`'s `more`): what the flush owes them. */
interface HeldBatch {
  readonly db: Database;
  readonly release: ReleaseLocks;
  /** The locks were taken for WAL mode. */
  readonly walLocking: boolean;
  readonly lockMs: number;
  persistMs: number;
  writeMs: number;
  count: number;
  /** The batch's latest transaction; null while none is applied yet (locked only). */
  last: AppliedReplica | null;
  created: boolean;
  snapshot: boolean;
  namesChanged: boolean;
  firstTimestamp: number;
  /** The database file's size when the locks were taken (a snapshot may replace a file of any size). */
  readonly sizeBefore: number;
}

export class ReplicaApplier {
  readonly #opts: ReplicaApplierOptions;
  #held: HeldBatch | null = null;

  constructor(opts: ReplicaApplierOptions) {
    this.#opts = opts;
  }

  /**
   * Applies `plan` to `db` as described above. Rejects with the signal's reason when aborted first.
   *
   * With `more` (the caller has the next transaction of the same database at hand already), steps 3
   * and 4 and the database's fsync may wait for the next `apply` or `flush`: a batch of transactions
   * then costs one lock round, one invalidation, one wal-index header and one fsync instead of one
   * each — a replica applying one at a time kept up with ~180 tx/s (session 9) while a WAL writer on
   * the primary commits several times faster. Readers wait while a batch holds the locks, as they
   * would for each transaction; the caller must `flush` before it waits for anything else.
   */
  async apply(
    db: Database,
    plan: ReplicaApplyPlan,
    signal: AbortSignal,
    opts: { more?: boolean } = {},
  ): Promise<AppliedReplica> {
    if (this.#held !== null && this.#held.db !== db) await this.flush();
    const t0 = performance.now();
    let held = this.#held;
    let persisted: ReturnType<Database["persistStaged"]>;
    try {
      persisted = db.persistStaged(plan); // before the locks, unless a batch holds them already
    } catch (err) {
      await this.flush();
      throw err;
    }
    const t1 = performance.now();
    if (held === null) {
      const walLocking = db.exists("wal");
      const release = await this.#lock(db.name, walLocking, signal);
      held = {
        db,
        release,
        walLocking,
        lockMs: performance.now() - t1,
        persistMs: 0,
        writeMs: 0,
        count: 0,
        last: null,
        created: false,
        snapshot: false,
        namesChanged: false,
        firstTimestamp: plan.staged.header.timestamp,
        sizeBefore: db.files.size("database"),
      };
      this.#held = held;
    }
    held.persistMs += t1 - t0;
    const t2 = performance.now();
    let applied: AppliedReplica;
    try {
      applied = db.applyStaged(plan, persisted);
    } catch (err) {
      await this.flush(); // the batch's earlier transactions are finished; the locks released
      throw err;
    }
    held.writeMs += performance.now() - t2;
    held.count++;
    held.last = applied;
    held.created ||= applied.created;
    held.snapshot ||= applied.snapshot;
    held.namesChanged ||= applied.created || applied.pageCount === 0 || (applied.walMode && !held.walLocking);
    // Only plain transactions in the mode the locks were taken for wait for the next one.
    const plain = !applied.snapshot && !applied.created && applied.pageCount > 0;
    if (opts.more !== true || !plain || applied.walMode !== held.walLocking) await this.flush();
    return applied;
  }

  /**
   * Finishes the transactions applied under locks still held: drops the kernel's cached pages, publishes
   * the wal-index header, releases the locks, fsyncs the database. A no-op when nothing is held.
   */
  async flush(): Promise<void> {
    const held = this.#held;
    if (held === null) return;
    this.#held = null;
    const { db, last } = held;
    if (last === null) return held.release(); // locked, nothing applied yet
    const { fileSystem, session } = this.#opts;
    const t3 = performance.now();
    let t4 = t3;
    try {
      const nodeId = fileSystem.currentNodeId(db.name, "database");
      if (nodeId !== undefined) await session.invalidateInode(nodeId);
      t4 = performance.now();
      if (last.pageCount > 0 && db.exists("shm")) await this.#publishShmHeader(db, last.pageCount);
      if (held.namesChanged) await this.#invalidateNames(db.name);
      if (db.files.size("database") !== held.sizeBefore) await this.#refreshAttributes(db.name);
    } finally {
      // Awaited: with kernel locks the helper drops them a round trip later, and a reader that sees
      // the new position (syncApplied) must find the database unlocked.
      await held.release();
    }
    const t5 = performance.now();
    db.syncApplied({ ...last, created: held.created, snapshot: held.snapshot });
    this.#opts.log.debug("replicated transaction applied", {
      db: db.name,
      txid: last.pos.txid.toString(16).padStart(16, "0"),
      transactions: held.count,
      persistMs: round(held.persistMs),
      lockMs: round(held.lockMs),
      writeMs: round(held.writeMs),
      invalidateMs: round(t4 - t3),
      shmMs: round(t5 - t4),
      syncMs: round(performance.now() - t5),
      sinceCommitMs: Date.now() - held.firstTimestamp,
    });
    if (!last.walMode && db.exists("wal") && !fileSystem.shmInUse(db.name)) {
      await this.#dropWalFiles(db);
      await this.#invalidateNames(db.name);
    }
  }

  async #lock(db: string, walLocking: boolean, signal: AbortSignal): Promise<ReleaseLocks> {
    const warnMs = this.#opts.slowLockWarnMs ?? 5000;
    const started = performance.now();
    const timer = setInterval(() => {
      this.#opts.log.warn("waiting for local readers to finish before applying a transaction", {
        db,
        ms: Math.round(performance.now() - started),
      });
    }, warnMs);
    try {
      return await this.#opts.locks.replicaApply(db, walLocking, signal);
    } finally {
      clearInterval(timer);
    }
  }

  /** Step 4 (see the header); a failure leaves the kernel to fetch the attributes at the next stat. */
  async #refreshAttributes(db: string): Promise<void> {
    await this.#opts.locks.refreshAttributes(db).catch((err: unknown) => {
      this.#opts.log.warn("could not refresh the kernel's attributes of a database", {
        db,
        error: (err as Error).message,
      });
    });
  }

  #publishShmHeader(db: Database, pageCount: number): Promise<void> {
    return publishWalIndexHeader({
      db,
      notifier: this.#opts.session,
      shmNodeId: this.#opts.fileSystem.currentNodeId(db.name, "shm"),
      pageCount,
    });
  }

  /** Finishes a batch still held (the applier holds no file in the mount). */
  close(): Promise<void> {
    return this.flush();
  }

  /** Synchronous from the caller's check to the unlinks: no connection can open `-shm` in between. */
  #dropWalFiles(db: Database): Promise<void> {
    db.unlink("shm");
    db.unlink("wal");
    this.#opts.fileSystem.renewFile(db.name, "shm");
    this.#opts.fileSystem.renewFile(db.name, "wal");
    this.#opts.log.info("database left WAL mode: removed the empty -wal and -shm", { db: db.name });
    return Promise.resolve();
  }

  async #invalidateNames(db: string): Promise<void> {
    const { fileSystem, session, log } = this.#opts;
    for (const name of fileSystem.fileNamesOf(db)) {
      await session.invalidateEntry(ROOT_NODE_ID, name).catch((err: unknown) => {
        log.warn("could not invalidate a cached name", { db, name, error: (err as Error).message });
      });
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
