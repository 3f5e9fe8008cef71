// The locks the node takes in the mount's lock tables for HALT locks, as named lock spans under owners
// of its own (negative, so they never collide with the kernel's owners, nor with DatabaseLockGuard's,
// which count down from −2):
// - HALT_HOLD (primary, while a replica holds the HALT lock): the HALT byte of `<db>-lock` (another
//   HALT, or a local lock on it, waits), RESERVED on the database, WRITE and CKPT on `-shm`: no local
//   write transaction or checkpoint can start, readers go on.
// - HALT_APPLY_ROLLBACK / HALT_APPLY_WAL (added on top of HALT_HOLD while the primary writes a replica's
//   transaction into the database file): what a SQLite writer holds to change the file, so that no
//   reader is inside a transaction meanwhile.

import type { LockTable } from "../fuse/lock-table.js";
import { LockTableError } from "../fuse/lock-table.js";
import { HALT_LOCK_BYTE } from "../mountfs/halt-hooks.js";
import type { MountFileKind } from "../mountfs/node-table.js";
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

export interface LockSpan {
  readonly kind: MountFileKind;
  readonly start: bigint;
  readonly end: bigint;
  readonly type: "read" | "write";
}

const span = (kind: MountFileKind, start: number | bigint, end: number | bigint, type: "read" | "write") => ({
  kind,
  start: BigInt(start),
  end: BigInt(end),
  type,
});

export const HALT_BYTE_SPAN: LockSpan = span("lock", HALT_LOCK_BYTE, HALT_LOCK_BYTE, "write");

export const HALT_HOLD: readonly LockSpan[] = [
  HALT_BYTE_SPAN,
  span("database", RESERVED_BYTE, RESERVED_BYTE, "write"),
  span("shm", SHM_WRITE_LOCK, SHM_CKPT_LOCK, "write"),
];

export const HALT_APPLY_ROLLBACK: readonly LockSpan[] = [
  span("database", PENDING_BYTE, PENDING_BYTE, "write"),
  span("database", SHARED_FIRST, SHARED_FIRST + SHARED_SIZE - 1, "write"),
];

export const HALT_APPLY_WAL: readonly LockSpan[] = [
  span("shm", SHM_DMS_LOCK, SHM_DMS_LOCK, "read"),
  span("shm", SHM_RECOVER_LOCK, SHM_READ_LOCK_FIRST + SHM_READ_LOCK_COUNT - 1, "write"),
];

let nextOwner = -(1n << 40n);

/** A lock owner no one else uses. */
export function newHaltLockOwner(): bigint {
  return nextOwner--;
}

export type LockTableOf = (db: string, kind: MountFileKind) => LockTable;

/**
 * Takes `spans` for `owner`, waiting until `signal` aborts (EHALTBUSY then, naming `what`); with
 * `wait` false a conflict fails at once. On failure the spans taken so far are dropped again.
 */
export async function takeLocks(
  tableOf: LockTableOf,
  db: string,
  owner: bigint,
  spans: readonly LockSpan[],
  opts: { readonly wait: boolean; readonly signal: AbortSignal; readonly what: string },
): Promise<void> {
  const taken: LockSpan[] = [];
  try {
    for (const s of spans) {
      const table = tableOf(db, s.kind);
      if (opts.wait) await table.waitFor(owner, process.pid, s.start, s.end, s.type, opts.signal);
      else if (!table.set(owner, process.pid, s.start, s.end, s.type))
        throw new HaltError("EHALTBUSY", `${opts.what}: database ${JSON.stringify(db)} is locked`);
      taken.push(s);
    }
  } catch (err) {
    dropLocks(tableOf, db, owner, taken);
    if (err instanceof LockTableError && err.code === "ELOCKINTR") {
      throw new HaltError("EHALTBUSY", `${opts.what}: database ${JSON.stringify(db)} stayed locked`, {
        cause: err,
      });
    }
    throw err;
  }
}

/** Unlocks `spans` of `owner` (other locks of the owner stay). */
export function dropLocks(tableOf: LockTableOf, db: string, owner: bigint, spans: readonly LockSpan[]): void {
  for (const s of spans) tableOf(db, s.kind).set(owner, process.pid, s.start, s.end, "unlock");
}
