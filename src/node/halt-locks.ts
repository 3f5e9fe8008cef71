// The locks the node takes for HALT locks (through a NodeLocks: the mount's lock tables, or kernel
// locks in kernel-locks mode; the HALT byte of `<db>-lock` always in the table), as named lock spans
// under owners of its own (negative, so they never collide with the kernel's owners, nor with DatabaseLockGuard's,
// which count down from −2):
// - HALT_HOLD (primary, while a replica holds the HALT lock): the HALT byte of `<db>-lock` (another
//   HALT, or a local lock on it, waits), RESERVED on the database, WRITE and CKPT on `-shm`: no local
//   write transaction or checkpoint can start, readers go on.
// - HALT_APPLY_ROLLBACK / HALT_APPLY_WAL (added on top of HALT_HOLD while the primary writes a replica's
//   transaction into the database file): what a SQLite writer holds to change the file, so that no
//   reader is inside a transaction meanwhile.

import { HALT_LOCK_BYTE } from "../mountfs/halt-hooks.js";
import { lockSpan, NodeLockError, type NodeLocks, type NodeLockSpan } from "../mountfs/node-locks.js";
import {
  PENDING_BYTE,
  RESERVED_BYTE,
  SHARED_FIRST,
  SHARED_SIZE,
  SHM_CKPT_LOCK,
  SHM_DMS_LOCK,
  SHM_READ_LOCK_COUNT,
  SHM_READ_LOCK_FIRST,
  SHM_RECOVER_LOCK,
  SHM_WRITE_LOCK,
} from "../store/sqlite-locks.js";
import { HaltError } from "../api/halt-error.js";

export const HALT_BYTE_SPAN: NodeLockSpan = lockSpan("lock", HALT_LOCK_BYTE, HALT_LOCK_BYTE, "write");

export const HALT_HOLD: readonly NodeLockSpan[] = [
  HALT_BYTE_SPAN,
  lockSpan("database", RESERVED_BYTE, RESERVED_BYTE, "write"),
  lockSpan("shm", SHM_WRITE_LOCK, SHM_CKPT_LOCK, "write"),
];

export const HALT_APPLY_ROLLBACK: readonly NodeLockSpan[] = [
  lockSpan("database", PENDING_BYTE, PENDING_BYTE, "write"),
  lockSpan("database", SHARED_FIRST, SHARED_FIRST + SHARED_SIZE - 1, "write"),
];

export const HALT_APPLY_WAL: readonly NodeLockSpan[] = [
  lockSpan("shm", SHM_DMS_LOCK, SHM_DMS_LOCK, "read"),
  lockSpan("shm", SHM_RECOVER_LOCK, SHM_READ_LOCK_FIRST + SHM_READ_LOCK_COUNT - 1, "write"),
];

let nextOwner = -(1n << 40n);

/** A lock owner no one else uses. */
export function newHaltLockOwner(): bigint {
  return nextOwner--;
}

/**
 * Takes `spans` for `owner`, waiting until `signal` aborts (EHALTBUSY then, naming `what`); with
 * `wait` false a conflict fails at once (EHALTBUSY). On failure none of `spans` stays held.
 */
export async function takeLocks(
  locks: NodeLocks,
  db: string,
  owner: bigint,
  spans: readonly NodeLockSpan[],
  opts: { readonly wait: boolean; readonly signal: AbortSignal; readonly what: string },
): Promise<void> {
  try {
    await locks.take(db, owner, spans, { wait: opts.wait, signal: opts.signal });
  } catch (err) {
    if (err instanceof NodeLockError && err.code === "ELOCKBUSY") {
      throw new HaltError("EHALTBUSY", `${opts.what}: database ${JSON.stringify(db)} is locked`, {
        cause: err,
      });
    }
    if (err instanceof NodeLockError && err.code === "ELOCKINTR") {
      throw new HaltError("EHALTBUSY", `${opts.what}: database ${JSON.stringify(db)} stayed locked`, {
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Unlocks `spans` of `owner` (other locks of the owner stay). Table mode is done on return; kernel
 * mode when the promise settles (it never rejects: a helper that is gone holds nothing any more).
 */
export function dropLocks(
  locks: NodeLocks,
  db: string,
  owner: bigint,
  spans: readonly NodeLockSpan[],
): Promise<void> {
  return locks.drop(db, owner, spans).catch(() => undefined);
}
