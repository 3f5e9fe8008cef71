// POSIX record locks of ONE file, kept the way the kernel keeps them (fs/locks.c), for a file system
// that answers GETLK/SETLK/SETLKW itself. Pure and synchronous: no I/O, no timers; waiting (SETLKW) is
// a promise that a later release settles, and abandoning a wait is the caller's AbortSignal.
//
// Units and ranges
// - Offsets are `bigint` byte offsets, ranges `[start, end]` INCLUSIVE, 0 ≤ start ≤ end ≤ OFFSET_MAX
//   (2^63 − 1). "To end of file" is `end = OFFSET_MAX`, exactly what the kernel sends in
//   `fuse_file_lock.end` for `l_len = 0`, and what it must get back (2^63 is answered with EIO).
//   bigint keeps every offset exact: a JS number would turn 2^63 − 1 into 2^63 and merge neighbours
//   above 2^53. Anything outside that range throws `LockTableError` code ELOCKRANGE (errno EINVAL).
// - Owners are `bigint`: the kernel's 64-bit lock owner (`lock_owner`), compared exactly. POSIX (per
//   process) and OFD (per open file description) owners are just different owner values here.
// - `pid` is stored only to be reported by GETLK (`test`); it never decides a conflict.
//
// API
// - `test(owner, start, end, type)` GETLK: the first lock (lowest start) of ANOTHER owner that
//   conflicts with `type` on the range, or null. "unlock" conflicts with nothing.
// - `set(owner, pid, start, end, type)` SETLK: false when another owner's lock conflicts (caller
//   answers EAGAIN), else applies it and returns true. The owner's own locks never conflict: a
//   request replaces them on its range (upgrade/downgrade, an unlock of a sub-range splits a lock) and
//   merges with the owner's same-type locks it overlaps or touches, like the kernel.
// - `waitFor(owner, pid, start, end, type, signal)` SETLKW: resolves once the lock is HELD (it is in the
//   table when the promise settles); rejects with code ELOCKINTR (errno EINTR) when `signal` aborts
//   first. Waiters are re-tried on every change that can free a range, oldest first (FIFO): an older
//   waiter gets a freed range before a younger one; a younger one whose range is free is not held back
//   by an older one that is still blocked. Deadlocks between owners are not detected: the kernel's
//   EDEADLK check spans all files and skips OFD owners, and one table sees neither other files nor
//   (FUSE does not say) which owners are OFD. A signal to a deadlocked process (INTERRUPT → abort)
//   ends its wait; on a plain file system the kernel would answer EDEADLK instead.
// - `releaseOwner(owner)` drops every lock of `owner` (FLUSH/RELEASE: close() drops POSIX locks,
//   the last close of a description drops its OFD locks); true if it held any.
// - Introspection: `holders()` (all locks, by start), `locksOf(owner)`, `lockCount`, `waiterCount`,
//   `isEmpty`. "Does an owner other than X hold a write lock on byte 120?" is
//   `test(X, 120n, 120n, "read") !== null` (only a write lock conflicts with a read).
//
// Cost: `test` is one scan of this file's locks (n: a handful for SQLite, one or a few per
// connection), `set`/`releaseOwner` one scan plus a new array (~0.25 µs with 16 locks, vs ~15 µs for
// the FUSE round trip that carries it) — except a `set` that changes nothing (an unlock where the
// owner holds nothing, a lock it already holds), which is one scan and allocates nothing; a wake-up
// re-tries each waiter once per pass.

export type LockType = "read" | "write" | "unlock";

/** One held lock. Immutable: the table replaces records, never edits them, so callers may keep them. */
export interface LockRecord {
  readonly owner: bigint;
  readonly pid: number;
  readonly start: bigint;
  /** Inclusive; OFFSET_MAX means "to end of file". */
  readonly end: bigint;
  readonly type: "read" | "write";
}

/** Largest byte offset (2^63 − 1, the kernel's OFFSET_MAX): the `end` of a lock that runs to EOF. */
export const OFFSET_MAX = 0x7fff_ffff_ffff_ffffn;

/** Not a valid 64-bit owner: `test(NO_OWNER, …)` asks "does anybody hold a conflicting lock?". */
export const NO_OWNER = -1n;

export type LockTableErrorCode =
  | "ELOCKRANGE" // start/end outside 0 ≤ start ≤ end ≤ OFFSET_MAX
  | "ELOCKTYPE" // a lock type other than read/write/unlock
  | "ELOCKINTR"; // a SETLKW wait was aborted (interrupted) before the lock was granted

const ERRNO_OF: Record<LockTableErrorCode, "EINVAL" | "EINTR"> = {
  ELOCKRANGE: "EINVAL",
  ELOCKTYPE: "EINVAL",
  ELOCKINTR: "EINTR",
};

export class LockTableError extends Error {
  override readonly name = "LockTableError";
  readonly code: LockTableErrorCode;
  /** The errno a FUSE reply should carry for this error. */
  readonly errno: "EINVAL" | "EINTR";

  constructor(code: LockTableErrorCode, detail: string, options?: { cause?: unknown }) {
    super(`lock table: ${detail} (${code})`, options);
    this.code = code;
    this.errno = ERRNO_OF[code];
  }
}

/** Linux F_RDLCK/F_WRLCK/F_UNLCK, as carried in `fuse_file_lock.type`. */
const POSIX_TYPES: Record<number, LockType> = { 0: "read", 1: "write", 2: "unlock" };
const POSIX_NUMBERS: Record<LockType, number> = { read: 0, write: 1, unlock: 2 };

/** Maps `fuse_file_lock.type` (F_RDLCK 0, F_WRLCK 1, F_UNLCK 2) to a LockType; throws ELOCKTYPE. */
export function lockTypeFromPosix(type: number): LockType {
  const t = POSIX_TYPES[type];
  if (t === undefined) throw new LockTableError("ELOCKTYPE", `unknown lock type ${type}`);
  return t;
}

/** Maps a LockType to Linux F_RDLCK/F_WRLCK/F_UNLCK. */
export function posixFromLockType(type: LockType): number {
  return POSIX_NUMBERS[type];
}

interface Waiter {
  readonly owner: bigint;
  readonly pid: number;
  readonly start: bigint;
  readonly end: bigint;
  readonly type: "read" | "write";
  readonly resolve: () => void;
  readonly detach: () => void;
}

function compareLocks(a: LockRecord, b: LockRecord): number {
  if (a.start !== b.start) return a.start < b.start ? -1 : 1;
  if (a.owner !== b.owner) return a.owner < b.owner ? -1 : 1;
  return 0;
}

/**
 * Insertion sort by (start, owner): `#apply` leaves at most a few records out of place (the new lock
 * at the end, the right part of a split), so this is O(n) in practice, unlike a general sort.
 */
function sortNearlySorted(locks: LockRecord[]): void {
  for (let i = 1; i < locks.length; i++) {
    const x = locks[i];
    let j = i - 1;
    while (j >= 0 && compareLocks(locks[j], x) > 0) {
      locks[j + 1] = locks[j];
      j--;
    }
    locks[j + 1] = x;
  }
}

function checkRange(start: bigint, end: bigint): void {
  if (typeof start !== "bigint" || typeof end !== "bigint") {
    throw new LockTableError("ELOCKRANGE", `offsets must be bigint, got ${typeof start}/${typeof end}`);
  }
  if (start < 0n || end < start || end > OFFSET_MAX) {
    throw new LockTableError("ELOCKRANGE", `invalid range [${start}, ${end}]`);
  }
}

function checkType(type: LockType): void {
  if (type !== "read" && type !== "write" && type !== "unlock") {
    throw new LockTableError("ELOCKTYPE", `unknown lock type ${String(type)}`);
  }
}

export class LockTable {
  /** Held locks sorted by (start, owner). Locks of one owner never overlap, and same-type ones never touch. */
  #locks: LockRecord[] = [];
  /** Blocked SETLKW requests, oldest first. */
  #waiters: Waiter[] = [];

  get lockCount(): number {
    return this.#locks.length;
  }

  get waiterCount(): number {
    return this.#waiters.length;
  }

  get isEmpty(): boolean {
    return this.#locks.length === 0 && this.#waiters.length === 0;
  }

  /** A copy of every held lock, sorted by start then owner. */
  holders(): LockRecord[] {
    return this.#locks.slice();
  }

  /** The locks `owner` holds, sorted by start. */
  locksOf(owner: bigint): LockRecord[] {
    return this.#locks.filter((l) => l.owner === owner);
  }

  /** GETLK: the lowest-starting lock of another owner that conflicts with `type` on [start, end], or null. */
  test(owner: bigint, start: bigint, end: bigint, type: LockType): LockRecord | null {
    checkRange(start, end);
    checkType(type);
    if (type === "unlock") return null;
    return this.#conflict(owner, start, end, type);
  }

  /** SETLK: false on conflict with another owner (nothing changes); otherwise applies and returns true. */
  set(owner: bigint, pid: number, start: bigint, end: bigint, type: LockType): boolean {
    checkRange(start, end);
    checkType(type);
    if (this.#changesNothing(owner, start, end, type)) return true; // no allocation, nothing to wake
    if (type !== "unlock" && this.#conflict(owner, start, end, type) !== null) return false;
    this.#apply(owner, pid, start, end, type);
    this.#wake();
    return true;
  }

  /**
   * The fast paths of SQLite's commonest requests: an unlock of a range where `owner` holds nothing
   * (SQLite unlocks bytes it may not hold), and a lock `owner` already holds on the whole range. Both
   * leave the table as it is, and neither can conflict: nobody else can hold a conflicting lock on a
   * range the owner holds.
   */
  #changesNothing(owner: bigint, start: bigint, end: bigint, type: LockType): boolean {
    for (const l of this.#locks) {
      if (l.start > end) break;
      if (l.owner !== owner || l.end < start) continue;
      // l overlaps the range: an unlock changes it; a lock changes nothing only if l covers it all.
      return type === l.type && l.start <= start && l.end >= end;
    }
    return type === "unlock";
  }

  /**
   * SETLKW: resolves when the lock is held (granted at once if free). Rejects with ELOCKINTR if
   * `signal` aborts first, also when it is already aborted and the lock is not free.
   */
  waitFor(
    owner: bigint,
    pid: number,
    start: bigint,
    end: bigint,
    type: LockType,
    signal: AbortSignal,
  ): Promise<void> {
    checkRange(start, end);
    checkType(type);
    if (this.set(owner, pid, start, end, type)) return Promise.resolve();
    if (signal.aborted) return Promise.reject(interrupted(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i < 0) return; // already granted: the grant won the race
        this.#waiters.splice(i, 1);
        reject(interrupted(signal));
      };
      const waiter: Waiter = {
        owner,
        pid,
        start,
        end,
        type: type === "write" ? "write" : "read",
        resolve,
        detach: () => signal.removeEventListener("abort", onAbort),
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Drops every lock of `owner`; returns true if it held any. Pending waits of `owner` stay. */
  releaseOwner(owner: bigint): boolean {
    const before = this.#locks.length;
    this.#locks = this.#locks.filter((l) => l.owner !== owner);
    if (this.#locks.length === before) return false;
    this.#wake();
    return true;
  }

  #conflict(owner: bigint, start: bigint, end: bigint, type: "read" | "write"): LockRecord | null {
    for (const l of this.#locks) {
      if (l.start > end) break; // sorted by start: nothing further can overlap
      if (l.owner === owner || l.end < start) continue;
      if (type === "write" || l.type === "write") return l;
    }
    return null;
  }

  /** Replaces `owner`'s locks on [start, end] with `type` (none for unlock), merging same-type neighbours. */
  #apply(owner: bigint, pid: number, start: bigint, end: bigint, type: LockType): void {
    let mergedStart = start;
    let mergedEnd = end;
    const next: LockRecord[] = [];
    const beforeStart = start - 1n; // bigint arithmetic allocates: once per call, not per lock
    const afterEnd = end + 1n;
    for (const l of this.#locks) {
      if (l.owner !== owner || l.end < beforeStart || l.start > afterEnd) {
        next.push(l);
        continue;
      }
      // l overlaps or touches the request.
      if (l.type === type) {
        if (l.start < mergedStart) mergedStart = l.start;
        if (l.end > mergedEnd) mergedEnd = l.end;
        continue;
      }
      if (l.end < start || l.start > end) {
        next.push(l); // merely touches, different type: stays as it is
        continue;
      }
      if (l.start < start) next.push({ owner, pid: l.pid, start: l.start, end: beforeStart, type: l.type });
      if (l.end > end) next.push({ owner, pid: l.pid, start: afterEnd, end: l.end, type: l.type });
    }
    if (type !== "unlock") {
      if (!(mergedStart <= mergedEnd && mergedEnd <= OFFSET_MAX))
        throw new Error("lock table: merge broke range");
      next.push({ owner, pid, start: mergedStart, end: mergedEnd, type });
    }
    sortNearlySorted(next);
    this.#locks = next;
  }

  /** Grants every waiter that can now be granted, oldest first, until a pass grants nothing. */
  #wake(): void {
    let granted = true;
    while (granted && this.#waiters.length > 0) {
      granted = false;
      for (let i = 0; i < this.#waiters.length; i++) {
        const w = this.#waiters[i];
        if (this.#conflict(w.owner, w.start, w.end, w.type) !== null) continue;
        this.#waiters.splice(i, 1);
        i--;
        this.#apply(w.owner, w.pid, w.start, w.end, w.type);
        w.detach();
        w.resolve();
        granted = true;
      }
    }
  }
}

function interrupted(signal: AbortSignal): LockTableError {
  return new LockTableError("ELOCKINTR", "wait for lock interrupted", { cause: signal.reason });
}
