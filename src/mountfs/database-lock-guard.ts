// Locks the node itself takes on a database through the mount's lock tables, so that SQLite
// connections see it as just another locker:
// - import: everything a writer, a checkpointer or a WAL recovery would need (no connection can be
//   inside the database while it is replaced);
// - export: what a writer and a checkpointer need (readers go on, no transaction can commit meanwhile);
// - snapshot read (a primary streaming a snapshot to a replica): what a reader holds, plus CKPT — no
//   rollback commit, checkpoint or WAL restart can rewrite a committed byte, while WAL writers go on
//   appending (their frames are past what the snapshot reads);
// - replica apply: what a SQLite writer holds to change the database file — in rollback mode PENDING
//   (new readers wait), RESERVED, then the whole SHARED range (existing readers have finished); in WAL
//   mode DMS shared (the -shm stays as it is) and WRITE, CKPT, RECOVER, READ0..4, with new readers held
//   back meanwhile (mount-locks.ts) so that a stream of short read transactions cannot starve it.
// Waiting is bounded by a timeout (ELOCKTIMEOUT) or an abort signal (its reason is thrown); a failed
// acquisition holds nothing. The locks go through a NodeLocks (node-locks.ts): entries in the mount's
// lock tables (table mode), or real kernel locks held by a helper process (kernel-locks mode).
// Each acquisition resolves with its release: callable any number of times, it resolves once the locks
// are gone (at once in table mode; in kernel mode when the helper has dropped them) and never rejects.
// A caller that tells a client "done" afterwards (an import's or an export's answer) awaits it first,
// so that the client's next statement cannot find the node's lock.

import type { LockTable } from "../fuse/lock-table.js";
import {
  PENDING_BYTE,
  RESERVED_BYTE,
  SHARED_FIRST,
  SHARED_SIZE,
  SHM_CKPT_LOCK,
  SHM_DMS_LOCK,
  SHM_READ_LOCK_COUNT,
  SHM_READ_LOCK_FIRST,
  SHM_WRITE_LOCK,
  shmReadLock,
} from "../store/sqlite-locks.js";
import type { MountFileKind } from "./node-table.js";
import {
  lockSpan,
  NodeLockError,
  type NodeLocks,
  type NodeLockSpan,
  routeLockFileToTable,
  tableNodeLocks,
} from "./node-locks.js";

const SHARED_LAST = SHARED_FIRST + SHARED_SIZE - 1;
const SHM_READ_LOCK_LAST = SHM_READ_LOCK_FIRST + SHM_READ_LOCK_COUNT - 1;

/** Everything: rollback EXCLUSIVE (PENDING, RESERVED, whole SHARED range) and every -shm lock incl. DMS. */
const EXCLUSIVE: readonly NodeLockSpan[] = [
  lockSpan("database", PENDING_BYTE, SHARED_LAST, "write"),
  lockSpan("shm", SHM_WRITE_LOCK, SHM_DMS_LOCK, "write"),
];

/** New write transactions (RESERVED; WAL WRITE) and checkpoints (CKPT) wait. */
const WRITE_BARRIER: readonly NodeLockSpan[] = [
  lockSpan("database", RESERVED_BYTE, RESERVED_BYTE, "write"),
  lockSpan("shm", SHM_WRITE_LOCK, SHM_CKPT_LOCK, "write"),
];

/** A reader's SHARED lock, CKPT, and read mark 1 shared (a WAL restart needs READ1..4 exclusive). */
const SNAPSHOT_READ: readonly NodeLockSpan[] = [
  lockSpan("database", SHARED_FIRST, SHARED_LAST, "read"),
  lockSpan("shm", SHM_CKPT_LOCK, SHM_CKPT_LOCK, "write"),
  lockSpan("shm", shmReadLock(1), shmReadLock(1), "read"),
];

const APPLY_ROLLBACK: readonly NodeLockSpan[] = [
  lockSpan("database", PENDING_BYTE, PENDING_BYTE, "write"),
  lockSpan("database", RESERVED_BYTE, RESERVED_BYTE, "write"),
  lockSpan("database", SHARED_FIRST, SHARED_LAST, "write"),
];

const APPLY_WAL: readonly NodeLockSpan[] = [
  lockSpan("shm", SHM_DMS_LOCK, SHM_DMS_LOCK, "read"),
  lockSpan("shm", SHM_WRITE_LOCK, SHM_READ_LOCK_LAST, "write"),
];

/** Lets go of an acquisition's locks; resolves once they are gone, never rejects (see the header). */
export type ReleaseLocks = () => Promise<void>;

export class LockTimeoutError extends Error {
  override readonly name = "LockTimeoutError";
  readonly code = "ELOCKTIMEOUT";
}

export interface DatabaseLockGuardOptions {
  /** The mount's lock tables: the node's locks in table mode, and the `-lock` file's in both modes. */
  readonly lockTableOf: (db: string, kind: MountFileKind) => LockTable;
  /** Called after the exclusive locks of an import are released (cache invalidation). */
  readonly afterExclusive?: (db: string) => void;
  /** Holds new WAL readers of `db` back until the returned function is called (mount-locks.ts; table mode). */
  readonly holdWalReaders?: (db: string) => () => void;
  /** Where database and `-shm` locks go: default the lock tables (`tableNodeLocks`). */
  readonly nodeLocks?: NodeLocks;
}

/** Lock owners of the node itself: negative, so they never collide with the kernel's (u64) owners. */
let nextOwner = -2n;

export class DatabaseLockGuard {
  readonly #opts: DatabaseLockGuardOptions;
  /**
   * The node's locks, for the HALT code too: database and `-shm` spans go to the NodeLocks given (or
   * the tables), `-lock` spans to the lock table in both modes.
   */
  readonly nodeLocks: NodeLocks;

  constructor(opts: DatabaseLockGuardOptions) {
    this.#opts = opts;
    const tables = tableNodeLocks(opts.lockTableOf, opts.holdWalReaders);
    this.nodeLocks = opts.nodeLocks === undefined ? tables : routeLockFileToTable(opts.nodeLocks, tables);
  }

  exclusive(db: string, timeoutMs: number): Promise<ReleaseLocks> {
    return this.#acquire(db, EXCLUSIVE, AbortSignal.timeout(timeoutMs), timeoutMs, () =>
      this.#opts.afterExclusive?.(db),
    );
  }

  writeBarrier(db: string, timeoutMs: number): Promise<ReleaseLocks> {
    return this.#acquire(db, WRITE_BARRIER, AbortSignal.timeout(timeoutMs), timeoutMs, () => undefined);
  }

  snapshotRead(db: string, timeoutMs: number): Promise<ReleaseLocks> {
    return this.#acquire(db, SNAPSHOT_READ, AbortSignal.timeout(timeoutMs), timeoutMs, () => undefined);
  }

  /**
   * What a replica holds while it writes a transaction into the database file. `walLocking`: local
   * connections may use WAL locking (the database is, or was, in WAL mode: its -wal exists). Waits
   * until every reader has finished its transaction, or `signal` aborts (its reason is thrown). In WAL
   * mode new readers are held back meanwhile (table mode: the mount's reader gate; kernel mode: the
   * read marks are taken one at a time), so a stream of short read transactions cannot starve it.
   */
  replicaApply(db: string, walLocking: boolean, signal: AbortSignal): Promise<ReleaseLocks> {
    return this.#acquire(db, walLocking ? APPLY_WAL : APPLY_ROLLBACK, signal, null, () => undefined);
  }

  /** Kernel mode: the kernel fetches `db`'s attributes now if it dropped them (NodeLocks). */
  refreshAttributes(db: string): Promise<void> {
    return this.nodeLocks.refreshAttributes(db);
  }

  async #acquire(
    db: string,
    specs: readonly NodeLockSpan[],
    signal: AbortSignal,
    timeoutMs: number | null,
    after: () => void,
  ): Promise<ReleaseLocks> {
    const owner = nextOwner--;
    const locks = this.nodeLocks;
    try {
      await locks.take(db, owner, specs, { wait: true, signal });
    } catch (err) {
      if (err instanceof NodeLockError && err.code === "ELOCKINTR") {
        if (timeoutMs === null) throw signal.reason ?? err;
        throw new LockTimeoutError(`database ${JSON.stringify(db)} stayed busy for ${timeoutMs} ms`, {
          cause: err,
        });
      }
      throw err;
    }
    let released: Promise<void> | null = null;
    return () => {
      if (released !== null) return released;
      // Table mode lets go synchronously; kernel mode when the helper has closed the descriptors (a
      // failure there means the helper is gone, and its locks with it).
      released = locks.releaseOwner(db, owner).catch(() => undefined);
      after();
      return released;
    };
  }
}
