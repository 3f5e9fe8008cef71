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
// acquisition holds nothing.

import type { LockTable } from "../fuse/lock-table.js";
import { LockTableError } from "../fuse/lock-table.js";
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

interface LockSpec {
  readonly kind: MountFileKind;
  readonly start: number;
  readonly end: number;
  readonly type: "read" | "write";
}

const SHARED_LAST = SHARED_FIRST + SHARED_SIZE - 1;
const SHM_READ_LOCK_LAST = SHM_READ_LOCK_FIRST + SHM_READ_LOCK_COUNT - 1;

/** Everything: rollback EXCLUSIVE (PENDING, RESERVED, whole SHARED range) and every -shm lock incl. DMS. */
const EXCLUSIVE: readonly LockSpec[] = [
  { kind: "database", start: PENDING_BYTE, end: SHARED_LAST, type: "write" },
  { kind: "shm", start: SHM_WRITE_LOCK, end: SHM_DMS_LOCK, type: "write" },
];

/** New write transactions (RESERVED; WAL WRITE) and checkpoints (CKPT) wait. */
const WRITE_BARRIER: readonly LockSpec[] = [
  { kind: "database", start: RESERVED_BYTE, end: RESERVED_BYTE, type: "write" },
  { kind: "shm", start: SHM_WRITE_LOCK, end: SHM_CKPT_LOCK, type: "write" },
];

/** A reader's SHARED lock, CKPT, and read mark 1 shared (a WAL restart needs READ1..4 exclusive). */
const SNAPSHOT_READ: readonly LockSpec[] = [
  { kind: "database", start: SHARED_FIRST, end: SHARED_LAST, type: "read" },
  { kind: "shm", start: SHM_CKPT_LOCK, end: SHM_CKPT_LOCK, type: "write" },
  { kind: "shm", start: shmReadLock(1), end: shmReadLock(1), type: "read" },
];

const APPLY_ROLLBACK: readonly LockSpec[] = [
  { kind: "database", start: PENDING_BYTE, end: PENDING_BYTE, type: "write" },
  { kind: "database", start: RESERVED_BYTE, end: RESERVED_BYTE, type: "write" },
  { kind: "database", start: SHARED_FIRST, end: SHARED_LAST, type: "write" },
];

const APPLY_WAL: readonly LockSpec[] = [
  { kind: "shm", start: SHM_DMS_LOCK, end: SHM_DMS_LOCK, type: "read" },
  { kind: "shm", start: SHM_WRITE_LOCK, end: SHM_READ_LOCK_LAST, type: "write" },
];

export class LockTimeoutError extends Error {
  override readonly name = "LockTimeoutError";
  readonly code = "ELOCKTIMEOUT";
}

export interface DatabaseLockGuardOptions {
  readonly lockTableOf: (db: string, kind: MountFileKind) => LockTable;
  /** Called after the exclusive locks of an import are released (cache invalidation). */
  readonly afterExclusive?: (db: string) => void;
  /** Holds new WAL readers of `db` back until the returned function is called (mount-locks.ts). */
  readonly holdWalReaders?: (db: string) => () => void;
}

/** Lock owners of the node itself: negative, so they never collide with the kernel's (u64) owners. */
let nextOwner = -2n;

export class DatabaseLockGuard {
  readonly #opts: DatabaseLockGuardOptions;

  constructor(opts: DatabaseLockGuardOptions) {
    this.#opts = opts;
  }

  exclusive(db: string, timeoutMs: number): Promise<() => void> {
    return this.#acquire(db, EXCLUSIVE, AbortSignal.timeout(timeoutMs), timeoutMs, () =>
      this.#opts.afterExclusive?.(db),
    );
  }

  writeBarrier(db: string, timeoutMs: number): Promise<() => void> {
    return this.#acquire(db, WRITE_BARRIER, AbortSignal.timeout(timeoutMs), timeoutMs, () => undefined);
  }

  snapshotRead(db: string, timeoutMs: number): Promise<() => void> {
    return this.#acquire(db, SNAPSHOT_READ, AbortSignal.timeout(timeoutMs), timeoutMs, () => undefined);
  }

  /**
   * What a replica holds while it writes a transaction into the database file. `walLocking`: local
   * connections may use WAL locking (the database is, or was, in WAL mode: its -wal exists). Waits
   * until every reader has finished its transaction, or `signal` aborts (its reason is thrown).
   */
  async replicaApply(db: string, walLocking: boolean, signal: AbortSignal): Promise<() => void> {
    if (!walLocking) return this.#acquire(db, APPLY_ROLLBACK, signal, null, () => undefined);
    const openGate = this.#opts.holdWalReaders?.(db) ?? (() => undefined);
    try {
      const release = await this.#acquire(db, APPLY_WAL, signal, null, () => undefined);
      return () => {
        release();
        openGate();
      };
    } catch (err) {
      openGate();
      throw err;
    }
  }

  async #acquire(
    db: string,
    specs: readonly LockSpec[],
    signal: AbortSignal,
    timeoutMs: number | null,
    after: () => void,
  ): Promise<() => void> {
    const owner = nextOwner--;
    const held: LockTable[] = [];
    const release = (): void => {
      for (const table of held) table.releaseOwner(owner);
    };
    try {
      for (const spec of specs) {
        const table = this.#opts.lockTableOf(db, spec.kind);
        await table.waitFor(owner, process.pid, BigInt(spec.start), BigInt(spec.end), spec.type, signal);
        if (!held.includes(table)) held.push(table);
      }
    } catch (err) {
      release();
      if (err instanceof LockTableError && err.code === "ELOCKINTR") {
        if (timeoutMs === null) throw signal.reason ?? err;
        throw new LockTimeoutError(`database ${JSON.stringify(db)} stayed busy for ${timeoutMs} ms`, {
          cause: err,
        });
      }
      throw err;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      after();
    };
  }
}
