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
//   4. release the locks. Only now can a reader start a transaction, and it finds nothing stale.
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

export class ReplicaApplier {
  readonly #opts: ReplicaApplierOptions;

  constructor(opts: ReplicaApplierOptions) {
    this.#opts = opts;
  }

  /** Applies `plan` to `db` as described above. Rejects with the signal's reason when aborted first. */
  async apply(db: Database, plan: ReplicaApplyPlan, signal: AbortSignal): Promise<AppliedReplica> {
    const { fileSystem, session } = this.#opts;
    const walLocking = db.exists("wal");
    const t0 = performance.now();
    const persisted = db.persistStaged(plan);
    const t1 = performance.now();
    const release = await this.#lock(db.name, walLocking, signal);
    const t2 = performance.now();
    let applied: AppliedReplica;
    let t3: number;
    let t4: number;
    try {
      applied = db.applyStaged(plan, persisted);
      t3 = performance.now();
      const nodeId = fileSystem.currentNodeId(db.name, "database");
      if (nodeId !== undefined) await session.invalidateInode(nodeId);
      t4 = performance.now();
      if (applied.pageCount > 0 && db.exists("shm")) await this.#publishShmHeader(db, applied.pageCount);
      if (applied.created || applied.pageCount === 0 || (applied.walMode && !walLocking)) {
        await this.#invalidateNames(db.name);
      }
    } finally {
      // Awaited: with kernel locks the helper drops them a round trip later, and a reader that sees
      // the new position (syncApplied) must find the database unlocked.
      await release();
    }
    const t5 = performance.now();
    db.syncApplied(applied);
    this.#opts.log.debug("replicated transaction applied", {
      db: db.name,
      txid: applied.pos.txid.toString(16).padStart(16, "0"),
      persistMs: round(t1 - t0),
      lockMs: round(t2 - t1),
      writeMs: round(t3 - t2),
      invalidateMs: round(t4 - t3),
      shmMs: round(t5 - t4),
      syncMs: round(performance.now() - t5),
      sinceCommitMs: Date.now() - plan.staged.header.timestamp,
    });
    if (!applied.walMode && db.exists("wal") && !fileSystem.shmInUse(db.name)) {
      await this.#dropWalFiles(db);
      await this.#invalidateNames(db.name);
    }
    return applied;
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

  #publishShmHeader(db: Database, pageCount: number): Promise<void> {
    return publishWalIndexHeader({
      db,
      notifier: this.#opts.session,
      shmNodeId: this.#opts.fileSystem.currentNodeId(db.name, "shm"),
      pageCount,
    });
  }

  /**
   * Nothing to release any more (the applier holds no file in the mount); kept so that callers that
   * close it before unmounting need not change.
   */
  close(): Promise<void> {
    return Promise.resolve();
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
