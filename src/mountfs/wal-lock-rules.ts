// The two rules the mount adds to POSIX locking on a database's `-shm` file, decided from the lock
// table and the request alone:
// - A WAL transaction is over when the owner holding the WRITE lock (byte 120) lets go of it — an
//   unlock or downgrade covering byte 120, or a close (FLUSH/RELEASE) dropping the owner's locks.
//   The store captures WAL transactions at the write that completes their commit frame; the release
//   captures again (before the lock is really released, so no other writer can start first) whatever
//   that left, which is normally nothing. Neither rule applies in kernel-locks mode (no lock request
//   reaches the mount there).
// - A CKPT lock (byte 121) is refused while another owner holds WRITE: a checkpoint must not run while
//   a WAL transaction may still lack its LTX file.

import type { LockTable } from "../fuse/lock-table.js";
import { SHM_CKPT_LOCK, SHM_WRITE_LOCK } from "../store/sqlite-locks.js";

const WRITE = BigInt(SHM_WRITE_LOCK);
const CKPT = BigInt(SHM_CKPT_LOCK);

/** True when `owner` holds the WAL write lock. */
export function holdsWalWriteLock(table: LockTable, owner: bigint): boolean {
  return table.locksOf(owner).some((l) => l.type === "write" && l.start <= WRITE && WRITE <= l.end);
}

/** True when anybody holds the WAL write lock. */
export function walWriteLockHeld(table: LockTable): boolean {
  return table.holders().some((l) => l.type === "write" && l.start <= WRITE && WRITE <= l.end);
}

/** True when the request makes `owner` give up a WAL write lock it holds. */
export function releasesWalWriteLock(
  table: LockTable,
  owner: bigint,
  lock: { start: bigint; end: bigint; type: "read" | "write" | "unlock" },
): boolean {
  if (lock.type === "write") return false;
  if (lock.start > WRITE || lock.end < WRITE) return false;
  return holdsWalWriteLock(table, owner);
}

/** True when a write lock on CKPT by `owner` must be refused because another owner holds WRITE. */
export function checkpointBlockedByWriter(
  table: LockTable,
  owner: bigint,
  lock: { start: bigint; end: bigint; type: "read" | "write" | "unlock" },
): boolean {
  if (lock.type !== "write" || lock.start > CKPT || lock.end < CKPT) return false;
  return table.test(owner, WRITE, WRITE, "read") !== null;
}
