// Applying a replicated transaction on a replica so that a reader connected through the mount sees it
// whole — never half of one, never a stale page — in every journal mode:
//
//   0. make its LTX file durable — with those of the transactions queued before it (a run: `apply`'s
//      `more`), before any lock is taken (store/replica-apply.ts);
//   1. take the locks a SQLite writer would (mountfs/database-lock-guard.ts `replicaApply`): readers
//      finish their transactions, new ones wait;
//   2. write it (store: pages, truncate, position) — every transaction of the run, in TXID order;
//   3. drop the kernel's cached pages and attributes of the database file (FUSE notify inval inode),
//      and in WAL mode publish a new wal-index header in `-shm` (mountfs/wal-index-publisher.ts:
//      written into the backing file, the kernel's pages that readers map dropped around it), whose
//      bumped change counter makes every connection drop its page cache at its next transaction;
//   4. when the file's size changed, have the kernel fetch the new attributes while the locks are still
//      held (kernel-node-locks.ts `refreshAttributes`: a reader's fstat racing another process's
//      attribute refresh could read the old size as valid, and SQLite takes the database for corrupt);
//   5. release the locks. Only now can a reader start a transaction, and it finds nothing stale;
//   6. fsync the database file (store), on the thread pool: the next round's pages wait for it (its
//      LTX files need not).
// Entries the kernel may have cached as missing (a database that just appeared, a new `-wal`) are
// invalidated too. When the database leaves WAL mode and no connection has `-shm` open any more, the
// empty `-wal` and `-shm` go, so that new connections use rollback locking again.
//
// The applier never opens a file in the node's own mount, nor makes any system call on it: a process
// holding a file there hangs forever in the kernel when it is SIGKILLed (wal-index-publisher.ts).

import fs from "node:fs";

import type { FuseSession } from "../fuse/session.js";
import { formatPos, posEqual, type Pos } from "../ltx/pos.js";
import type { DatabaseLockGuard, ReleaseLocks } from "../mountfs/database-lock-guard.js";
import type { LitefsFileSystem } from "../mountfs/litefs-file-system.js";
import { ROOT_NODE_ID } from "../mountfs/node-table.js";
import { publishWalIndexHeader } from "../mountfs/wal-index-publisher.js";
import type { Database } from "../store/database.js";
import { discardStaged, type StagedLtx } from "../store/ltx-stager.js";
import { REPLICA_RUN_MAX_FILES, type AppliedReplica } from "../store/replica-apply.js";
import {
  planReplicaApply,
  stateAfterPlan,
  type ReplicaApplyPlan,
  type ReplicaState,
} from "../store/replica-apply-plan.js";
import type { StoreLogger } from "../store/store-logger.js";

export interface ReplicaApplierOptions {
  readonly fileSystem: LitefsFileSystem;
  readonly session: FuseSession;
  readonly locks: DatabaseLockGuard;
  readonly log: StoreLogger;
  /** Log a warning when readers keep the locks this long (and again each time as long). */
  readonly slowLockWarnMs?: number;
}

/** Incremental transactions of one database planned and waiting to be applied as one run. */
interface QueuedRun {
  readonly db: Database;
  readonly plans: ReplicaApplyPlan[];
  /** The state after the last queued plan: what the next transaction is planned against. */
  state: ReplicaState;
  /** Their LTX files' bytes (a staged file may hold its pages in memory too). */
  bytes: number;
}

/** One lock round of a run: the transactions written under locks taken once. */
interface LockRound {
  readonly db: Database;
  readonly release: ReleaseLocks;
  /** The locks were taken for WAL mode. */
  readonly walLocking: boolean;
  readonly lockMs: number;
  /** Waiting for the previous round's database fsync. */
  readonly settleMs: number;
  readonly persistMs: number;
  writeMs: number;
  count: number;
  /** The round's latest transaction; null while none is applied yet (locked only). */
  last: AppliedReplica | null;
  created: boolean;
  snapshot: boolean;
  namesChanged: boolean;
  firstTimestamp: number;
  /** The database file's size when the locks were taken (a snapshot may replace a file of any size). */
  readonly sizeBefore: number;
}

/** A run stops growing at this many bytes of LTX files (their pages may be held in memory). */
const RUN_MAX_BYTES = 64 << 20;

export class ReplicaApplier {
  readonly #opts: ReplicaApplierOptions;
  #queued: QueuedRun | null = null;
  /**
   * The LTX file of a transaction whose page writes failed part way (an I/O error): the database file
   * may hold some of its pages, and only that file rolls them forward after a crash, so it is never
   * discarded — until the database has moved past it.
   */
  #torn: { readonly db: Database; readonly txid: bigint; readonly file: string } | null = null;
  /**
   * The last lock round's database fsync, on the thread pool (`done`: its error, or null). The next
   * round writes no page before it has finished (`#settle`): recovery needs the database durable at a
   * run's first position.
   */
  #durable: {
    readonly db: Database;
    readonly applied: AppliedReplica;
    readonly done: Promise<Error | null>;
  } | null = null;

  constructor(opts: ReplicaApplierOptions) {
    this.#opts = opts;
  }

  /** The position `db` will be at once the transactions queued for it are applied. */
  plannedPos(db: Database): Pos {
    return this.#queued?.db === db ? this.#queued.state.pos : db.pos;
  }

  /** Checks `staged` against the state `db` will be in once the transactions queued for it are applied. */
  plan(db: Database, staged: StagedLtx): ReplicaApplyPlan {
    const state = this.#queued?.db === db ? this.#queued.state : db.replicaState;
    return planReplicaApply(db.name, state, staged);
  }

  /**
   * Applies `plan` (made by `plan`) to `db` as described above; rejects with the signal's reason when
   * aborted first.
   *
   * With `more` (the caller has the next transaction of the same database at hand already), an
   * incremental transaction is only queued (null is returned): the queued run is applied by the next
   * `apply` without `more`, or by `flush`, and costs two fsyncs for all its LTX files (in parallel, off
   * the event loop), one lock round, one invalidation, one wal-index header and one fsync of the
   * database, instead of that much per transaction — a replica applying one at a time kept up with
   * ~180 tx/s (session 9) while a WAL writer on the primary commits several times faster. Readers wait
   * only while the pages are written. The caller must `flush` before it waits for anything else, and
   * plan the next transaction with `plan` (the database itself has not moved yet).
   */
  async apply(
    db: Database,
    plan: ReplicaApplyPlan,
    signal: AbortSignal,
    opts: { more?: boolean } = {},
  ): Promise<AppliedReplica | null> {
    if (this.#queued !== null && this.#queued.db !== db) await this.flush(signal);
    if (plan.snapshot) {
      await this.flush(signal);
      return this.#applyRun(db, [plan], signal);
    }
    const run = this.#queued ?? { db, plans: [], state: db.replicaState, bytes: 0 };
    if (!posEqual(plan.from, run.state.pos)) {
      throw new Error(`replica apply: a plan from ${formatPos(plan.from)} after ${formatPos(run.state.pos)}`);
    }
    this.#queued = run;
    run.plans.push(plan);
    run.bytes += plan.staged.size;
    run.state = stateAfterPlan(run.state, plan);
    const full = run.plans.length >= REPLICA_RUN_MAX_FILES || run.bytes >= RUN_MAX_BYTES;
    if (opts.more === true && !full) return null;
    return this.flush(signal);
  }

  /** Applies the queued run, if any; returns its last transaction (null when nothing was queued). */
  async flush(signal: AbortSignal): Promise<AppliedReplica | null> {
    const run = this.#queued;
    if (run === null) return null;
    this.#queued = null;
    return this.#applyRun(run.db, run.plans, signal);
  }

  /** Drops the queued run without applying it (the stream ended): its staged files are removed. */
  discardQueued(): void {
    const run = this.#queued;
    if (run === null) return;
    this.#queued = null;
    discardFrom(run.plans, 0);
    this.#opts.log.debug("dropped transactions received but not applied", {
      db: run.db.name,
      transactions: run.plans.length,
    });
  }

  /** A queued run is dropped; the last database fsync is waited for (a failure is logged). */
  async close(): Promise<void> {
    this.discardQueued();
    await this.#settle().catch((err: unknown) => {
      this.#opts.log.error("could not make the last replicated transactions durable", {
        error: (err as Error).message,
      });
    });
  }

  /**
   * Waits for the last round's database fsync; if it failed, fsyncs again here (throwing if that
   * fails too, and then again at the next call). Returns the time waited.
   */
  async #settle(): Promise<number> {
    const pending = this.#durable;
    if (pending === null) return 0;
    const t = performance.now();
    const err = await pending.done;
    if (err !== null) {
      this.#opts.log.warn("fsync of a replicated database failed; retrying", {
        db: pending.db.name,
        error: err.message,
      });
      try {
        pending.db.syncApplied(pending.applied);
      } catch (retryErr) {
        // A database closed since (the store stopping, the database removed) has nothing left to wait
        // for here; anything else keeps the next round from writing.
        if ((retryErr as { code?: string }).code !== "ECLOSED") throw retryErr;
      }
    }
    if (this.#durable === pending) this.#durable = null;
    return performance.now() - t;
  }

  /**
   * Persists `plans` (one snapshot, or incremental files in TXID order), then writes them under the
   * locks, in as few lock rounds as the journal mode allows: a round ends after a snapshot, a created
   * or emptied database, or a change of journal mode, whose readers need other locks.
   */
  async #applyRun(
    db: Database,
    plans: readonly ReplicaApplyPlan[],
    signal: AbortSignal,
  ): Promise<AppliedReplica> {
    let next = 0; // plans before it are written (or being written)
    let persistMs: number;
    let persisted = { supersededFiles: 0 };
    if (this.#torn !== null && (this.#torn.db !== db || db.pos.txid >= this.#torn.txid)) this.#torn = null;
    const keep = this.#torn?.file ?? null;
    try {
      const t0 = performance.now();
      if (plans.length === 1 && plans[0].snapshot) persisted = db.persistStaged(plans[0]);
      else await db.persistStagedBatch(plans);
      persistMs = performance.now() - t0;
    } catch (err) {
      discardFrom(plans, 0, keep);
      throw err;
    }
    let last: AppliedReplica | null = null;
    while (next < plans.length) {
      let round: LockRound;
      try {
        round = await this.#lockRound(db, persistMs, plans[next], signal);
      } catch (err) {
        discardFrom(plans, next, keep);
        throw err;
      }
      persistMs = 0;
      try {
        while (next < plans.length) {
          const t = performance.now();
          const plan = plans[next++];
          const applied = db.applyStaged(plan, persisted);
          round.writeMs += performance.now() - t;
          round.count++;
          round.last = last = applied;
          round.created ||= applied.created;
          round.snapshot ||= applied.snapshot;
          round.namesChanged ||=
            applied.created || applied.pageCount === 0 || (applied.walMode && !round.walLocking);
          // Only plain transactions in the mode the locks were taken for share a round with the next.
          const plain = !applied.snapshot && !applied.created && applied.pageCount > 0;
          if (!plain || applied.walMode !== round.walLocking) break;
        }
      } catch (err) {
        const failed = plans[next - 1];
        if (!failed.snapshot) this.#torn = { db, txid: failed.pos.txid, file: failed.staged.finalPath };
        discardFrom(plans, next, keep); // the failed one's file stays: its pages may be partly written
        await this.#finishRound(round); // the round's earlier transactions are finished; locks released
        throw err;
      }
      await this.#finishRound(round);
    }
    return last!;
  }

  async #lockRound(
    db: Database,
    persistMs: number,
    first: ReplicaApplyPlan,
    signal: AbortSignal,
  ): Promise<LockRound> {
    const settleMs = await this.#settle(); // the last round's pages durable before this one's
    const t = performance.now();
    const walLocking = db.exists("wal");
    const release = await this.#lock(db.name, walLocking, signal);
    return {
      db,
      release,
      walLocking,
      lockMs: performance.now() - t,
      settleMs,
      persistMs,
      writeMs: 0,
      count: 0,
      last: null,
      created: false,
      snapshot: false,
      namesChanged: false,
      firstTimestamp: first.staged.header.timestamp,
      sizeBefore: db.files.size("database"),
    };
  }

  /**
   * Finishes a lock round: drops the kernel's cached pages, publishes the wal-index header, releases
   * the locks, fsyncs the database.
   */
  async #finishRound(round: LockRound): Promise<void> {
    const { db, last } = round;
    if (last === null) return round.release(); // locked, nothing applied
    const { fileSystem, session } = this.#opts;
    const t3 = performance.now();
    let t4 = t3;
    try {
      const nodeId = fileSystem.currentNodeId(db.name, "database");
      if (nodeId !== undefined) await session.invalidateInode(nodeId);
      t4 = performance.now();
      if (last.pageCount > 0 && db.exists("shm")) await this.#publishShmHeader(db, last.pageCount);
      if (round.namesChanged) await this.#invalidateNames(db.name);
      if (db.files.size("database") !== round.sizeBefore) await this.#refreshAttributes(db.name);
    } finally {
      // Awaited: with kernel locks the helper drops them a round trip later, and a reader that sees
      // the new position (syncApplied) must find the database unlocked.
      await round.release();
    }
    const t5 = performance.now();
    const applied = { ...last, created: round.created, snapshot: round.snapshot };
    const done = db.syncAppliedAsync(applied).then(
      () => null,
      (err: unknown) => err as Error,
    );
    this.#durable = { db, applied, done };
    this.#opts.log.debug("replicated transaction applied", {
      db: db.name,
      txid: last.pos.txid.toString(16).padStart(16, "0"),
      transactions: round.count,
      persistMs: round3(round.persistMs),
      settleMs: round3(round.settleMs),
      lockMs: round3(round.lockMs),
      writeMs: round3(round.writeMs),
      invalidateMs: round3(t4 - t3),
      shmMs: round3(t5 - t4),
      syncMs: round3(performance.now() - t5),
      sinceCommitMs: Date.now() - round.firstTimestamp,
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

/**
 * Removes what `plans[from..]` left on disk: their temporary files, or their LTX files when already
 * renamed into place (no page of theirs was written: the database never moves to them, and the stream
 * sends them again), a snapshot's temporary database file — but never `keep`. Failures are ignored
 * (leftover temporary files are removed at the next start; a leftover LTX file is overwritten when its
 * transaction comes).
 */
function discardFrom(plans: readonly ReplicaApplyPlan[], from: number, keep: string | null = null): void {
  for (const { staged, snapshot } of plans.slice(from)) {
    discardStaged(staged);
    // A snapshot's LTX file is never removed: the older files it superseded may be gone already.
    if (snapshot || staged.finalPath === keep) continue;
    try {
      fs.rmSync(staged.finalPath, { force: true });
    } catch {
      // Left for the transaction's next arrival (which overwrites it by name).
    }
  }
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
