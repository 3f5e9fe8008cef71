// What the mount asks the node about HALT locks (writes from a replica, docs/node-api.md "HALT lock").
// The mount itself knows nothing of primaries or HTTP: it hands every lock request on `<db>-lock` to
// these hooks, asks them whether a replica may change a database, and lets them delay the answer to a
// change that committed a transaction until the primary has confirmed it.
//
// The HALT lock is a write lock on byte 72 of `<db>-lock` (POSIX or OFD, SETLK or SETLKW), as in LiteFS.
// A lock that does not cover byte 72 with a write lock is an ordinary lock of the lock file.

import type { LockRequest, RequestContext } from "../fuse/file-system.js";
import type { LockTable } from "../fuse/lock-table.js";

/** The byte of `<db>-lock` whose write lock is the HALT lock. */
export const HALT_LOCK_BYTE = 72n;

export interface MountHaltHooks {
  /** True while this replica holds the HALT lock of `db`: local changes to it are allowed. */
  mayWriteOnReplica(db: string): boolean;
  /**
   * SETLK/SETLKW on `<db>-lock` (any range, any type); `table` is the file's lock table, which the
   * hooks must keep exactly as a plain lock file would. Throws a FuseError (EAGAIN: held elsewhere).
   */
  setlk(ctx: RequestContext, db: string, lock: LockRequest, table: LockTable): void | Promise<void>;
  /** After an owner's locks on `<db>-lock` were dropped (close of the file, process exit). */
  ownerReleased(db: string, table: LockTable): void;
  /**
   * RELEASE of a handle of `<db>-lock` (its last descriptor closed). The kernel names no lock owner
   * here, yet an OFD lock (whose owner is the open file itself) must go now: the hooks drop the locks
   * of the owners that locked through this handle.
   */
  handleReleased(db: string, fh: number, table: LockTable): void;
  /**
   * After a change to `db` through the mount. Null when nothing is to wait for; a promise when the
   * change committed transactions that must be confirmed first (a HALT commit on a replica): the
   * request is answered when it settles, with its error (a FuseError) when it rejects.
   */
  afterChange(db: string): Promise<void> | null;
}

/** True when `lock` covers the HALT byte. */
export function coversHaltByte(lock: { readonly start: bigint; readonly end: bigint }): boolean {
  return lock.start <= HALT_LOCK_BYTE && lock.end >= HALT_LOCK_BYTE;
}

/** True when `owner` holds a write lock on the HALT byte of `table`. */
export function holdsHaltByte(table: LockTable, owner: bigint): boolean {
  return table.locksOf(owner).some((l) => l.type === "write" && coversHaltByte(l));
}

/** The owner holding a write lock on the HALT byte of `table`, or null when nobody does. */
export function haltByteHolder(table: LockTable): bigint | null {
  const held = table.holders().find((l) => l.type === "write" && coversHaltByte(l));
  return held?.owner ?? null;
}
