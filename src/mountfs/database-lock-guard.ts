// Locks the node itself takes on a database through the mount's lock tables, so that SQLite
// connections see it as just another locker: an import holds everything a writer, a checkpointer or a
// WAL recovery would need (no connection can be inside the database while it is replaced); an export
// holds what a writer and a checkpointer need (readers go on, no transaction can commit meanwhile).
// Waiting is bounded: past the timeout the call fails with code ELOCKTIMEOUT and holds nothing.

import type { LockTable } from "../fuse/lock-table.js";
import { LockTableError } from "../fuse/lock-table.js";
import {
  PENDING_BYTE,
  RESERVED_BYTE,
  SHARED_FIRST,
  SHARED_SIZE,
  SHM_CKPT_LOCK,
  SHM_DMS_LOCK,
  SHM_WRITE_LOCK,
} from "../store/sqlite-locks.js";
import type { MountFileKind } from "./node-table.js";

interface LockSpec {
  readonly kind: MountFileKind;
  readonly start: number;
  readonly end: number;
}

/** Everything: rollback EXCLUSIVE (PENDING, RESERVED, whole SHARED range) and every -shm lock incl. DMS. */
const EXCLUSIVE: readonly LockSpec[] = [
  { kind: "database", start: PENDING_BYTE, end: SHARED_FIRST + SHARED_SIZE - 1 },
  { kind: "shm", start: SHM_WRITE_LOCK, end: SHM_DMS_LOCK },
];

/** New write transactions (RESERVED; WAL WRITE) and checkpoints (CKPT) wait. */
const WRITE_BARRIER: readonly LockSpec[] = [
  { kind: "database", start: RESERVED_BYTE, end: RESERVED_BYTE },
  { kind: "shm", start: SHM_WRITE_LOCK, end: SHM_CKPT_LOCK },
];

export class LockTimeoutError extends Error {
  override readonly name = "LockTimeoutError";
  readonly code = "ELOCKTIMEOUT";
}

export interface DatabaseLockGuardOptions {
  readonly lockTableOf: (db: string, kind: MountFileKind) => LockTable;
  /** Called after the exclusive locks of an import are released (cache invalidation). */
  readonly afterExclusive?: (db: string) => void;
}

/** Lock owners of the node itself: negative, so they never collide with the kernel's (u64) owners. */
let nextOwner = -2n;

export class DatabaseLockGuard {
  readonly #opts: DatabaseLockGuardOptions;

  constructor(opts: DatabaseLockGuardOptions) {
    this.#opts = opts;
  }

  exclusive(db: string, timeoutMs: number): Promise<() => void> {
    return this.#acquire(db, EXCLUSIVE, timeoutMs, () => this.#opts.afterExclusive?.(db));
  }

  writeBarrier(db: string, timeoutMs: number): Promise<() => void> {
    return this.#acquire(db, WRITE_BARRIER, timeoutMs, () => undefined);
  }

  async #acquire(
    db: string,
    specs: readonly LockSpec[],
    timeoutMs: number,
    after: () => void,
  ): Promise<() => void> {
    const owner = nextOwner--;
    const signal = AbortSignal.timeout(timeoutMs);
    const held: LockTable[] = [];
    const release = (): void => {
      for (const table of held) table.releaseOwner(owner);
    };
    try {
      for (const spec of specs) {
        const table = this.#opts.lockTableOf(db, spec.kind);
        await table.waitFor(owner, process.pid, BigInt(spec.start), BigInt(spec.end), "write", signal);
        held.push(table);
      }
    } catch (err) {
      release();
      if (err instanceof LockTableError && err.code === "ELOCKINTR") {
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
