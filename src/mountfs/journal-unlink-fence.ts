// Kernel-locks mode: closes SQLite's read-only hot-journal race around a DELETE-mode rollback.
//
// The race (SQLite's own; it happens on any local disk): a writer that rolls back a transaction it
// holds only RESERVED for (it never reached PENDING/EXCLUSIVE) deletes the journal, then drops
// RESERVED. A reader holding SHARED checks for a hot journal (pager.c hasHotJournal): the journal
// exists → RESERVED is free (F_GETLK) → opening the journal fails ENOENT → "assume hot" → a read-only
// connection cannot roll it back: SQLITE_READONLY_ROLLBACK. A commit cannot meet it: its writer holds
// EXCLUSIVE (PENDING and the SHARED range), so no reader holds SHARED. With table locks the mount
// answers the reader's F_GETLK and the writer's unlock in order, which closes the window in practice;
// with kernel locks nothing ordered them until this fence.
//
// The fence, run when the mount receives the UNLINK of `<db>-journal` and before it does anything:
// 1. the unlinking process (the request's thread → its thread group) holds a write lock on PENDING:
//    it is EXCLUSIVE (a commit, or a rollback after EXCLUSIVE) — nothing to do. It holds no write lock
//    on RESERVED: not a rolling-back SQLite writer — nothing to do.
// 2. the node takes a write lock on PENDING through its lock helper (NodeLocks): a reader gets SHARED
//    by first read-locking PENDING, so new readers get SQLITE_BUSY and retry in their busy handler.
//    Skipped when the node itself already holds PENDING for another owner (an OFD lock, e.g. a replica
//    apply waiting for the writer's SHARED): that keeps new readers out as well, and waiting for it
//    would wait on the writer this very unlink holds up.
// 3. it waits until no process but the unlinker holds a lock in the SHARED range. Readers that hold
//    SHARED meanwhile see RESERVED held (the writer keeps it until the unlink is answered) and the
//    journal still in place, so they take it for what it is — not hot.
// 4. the caller unlinks and answers, then calls the release, which drops PENDING. Order matters: a
//    reader that gets SHARED after that finds the journal gone.
// Bound: steps 2 and 3 together wait at most `boundMs` (default 2 s); past it the unlink goes on and a
// warning names the processes still reading — a long read transaction must not hang a rollback
// forever (the race is then possible again for those readers, as without the fence).
// The wait is asynchronous: the FUSE loop serves every other request (the readers' own) meanwhile.
// What cannot be read (no /proc/locks, the mount's device unknown, the unlinker gone, no lock helper)
// leaves the unlink unfenced, with one warning per cause.

import { setImmediate as immediate, setTimeout as sleep } from "node:timers/promises";

import { PENDING_BYTE, RESERVED_BYTE, SHARED_FIRST, SHARED_SIZE } from "../store/sqlite-locks.js";
import type { StoreLogger } from "../store/store-logger.js";
import {
  type KernelFileId,
  type KernelLock,
  locksOnFile,
  mountDevice,
  overlaps,
  threadGroupOf,
  threadInUnlink,
  waitsForDirectoryLock,
} from "./kernel-lock-view.js";
import { lockSpan, NodeLockError, type NodeLocks } from "./node-locks.js";

const PENDING = BigInt(PENDING_BYTE);
const RESERVED = BigInt(RESERVED_BYTE);
const SHARED_FIRST_BYTE = BigInt(SHARED_FIRST);
const SHARED_LAST_BYTE = BigInt(SHARED_FIRST + SHARED_SIZE - 1);
const PENDING_SPAN = [lockSpan("database", PENDING, PENDING, "write")] as const;
const POLL_MAX_MS = 2;
const TGID_KEEP_MS = 1000;
const TGIDS_MAX = 256;

/** Owners of the fence's PENDING locks: negative (the node's), apart from the lock guard's and HALT's. */
let nextOwner = -(1n << 41n);

export interface JournalUnlinkFenceOptions {
  /** The node's kernel locks, or null while the helper is not running (the unlink is then unfenced). */
  readonly nodeLocks: () => NodeLocks | null;
  /** Where the mount is (to find its device in mountinfo). */
  readonly mountDir: string;
  readonly log: StoreLogger;
  /** How long steps 2 and 3 may wait in all (see the header); default 2000 ms. */
  readonly boundMs?: number;
}

/** What `fence` did, for the caller's checks and the node's debug log. */
export type FenceOutcome = "exclusive" | "not-a-writer" | "fenced" | "bound-passed" | "unfenced";

export interface Fence {
  readonly outcome: FenceOutcome;
  /** Step 2 was skipped: the node held PENDING already. */
  readonly nodeHeldPending?: boolean;
  /** Processes holding SHARED that were not waited for: they wait for the directory lock. */
  readonly heldUp?: readonly number[];
  /**
   * Call once the unlink has been answered: drops the fence's PENDING lock as soon as the unlinking
   * thread is out of its unlink (step 4). Idempotent.
   */
  release(): void;
}

export class JournalUnlinkFence {
  readonly #opts: JournalUnlinkFenceOptions;
  readonly #boundMs: number;
  /** Looked up at the first fence (the mount is up by then); not kept while unknown. */
  #device: { major: number; minor: number } | null = null;
  readonly #warned = new Set<string>();
  /** tid → [tgid, when read]: a writer's unlinks come from one thread, one transaction after another. */
  readonly #tgids = new Map<number, readonly [number, number]>();

  constructor(opts: JournalUnlinkFenceOptions) {
    this.#opts = opts;
    this.#boundMs = opts.boundMs ?? 2000;
  }

  /**
   * Runs steps 1–3 for the unlink of `db`'s journal by thread `tid`; `ino` is the database file's
   * inode number as the kernel knows it (its node id). Synchronous when nothing needs fencing (every
   * commit: no extra turn of the event loop), else a promise. Never throws or rejects: what fails
   * leaves the unlink unfenced.
   */
  fence(db: string, ino: number, tid: number): Fence | Promise<Fence> {
    const file = this.#fileId(ino);
    if (file === null) return unfenced("unfenced");
    const unlinker = this.#threadGroupOf(tid);
    if (unlinker === null) {
      this.#warnOnce("pid", "journal unlink: its process is gone; not fenced", { tid });
      return unfenced("unfenced");
    }
    let locks: KernelLock[];
    try {
      locks = locksOnFile(file);
    } catch (err) {
      this.#warnOnce("proc-locks", "cannot read /proc/locks: journal unlinks are not fenced", {
        error: (err as Error).message,
      });
      return unfenced("unfenced");
    }
    const own = locks.filter((l) => l.kind === "POSIX" && l.pid === unlinker && l.type === "write");
    if (own.some((l) => overlaps(l, PENDING, PENDING))) return unfenced("exclusive");
    if (!own.some((l) => overlaps(l, RESERVED, RESERVED))) return unfenced("not-a-writer");
    const nodeLocks = this.#opts.nodeLocks();
    if (nodeLocks === null) {
      this.#warnOnce("helper", "journal unlink before the lock helper runs: not fenced", { db });
      return unfenced("unfenced");
    }
    const nodeHoldsPending = locks.some(
      (l) => l.kind === "OFDLCK" && l.type === "write" && overlaps(l, PENDING, PENDING),
    );
    return this.#hold(db, file, { pid: unlinker, tid }, nodeLocks, nodeHoldsPending);
  }

  /** Steps 2 and 3 (see the header); the fence's release is step 4. */
  async #hold(
    db: string,
    file: KernelFileId,
    unlinker: { readonly pid: number; readonly tid: number },
    nodeLocks: NodeLocks,
    nodeHoldsPending: boolean,
  ): Promise<Fence> {
    const deadline = Date.now() + this.#boundMs;
    const owner = nextOwner--;
    let held = false;
    const drop = (): void => {
      if (!held) return;
      held = false;
      nodeLocks.releaseOwner(db, owner).catch((err: unknown) =>
        this.#opts.log.error("could not drop the journal-unlink fence's PENDING lock", {
          db,
          error: (err as Error).message,
        }),
      );
    };
    const release = (): void => {
      if (held) void this.#unlinkDone(file, unlinker).then(drop);
    };
    if (!nodeHoldsPending) {
      try {
        held = true;
        await nodeLocks.take(db, owner, PENDING_SPAN, {
          wait: true,
          signal: AbortSignal.timeout(Math.max(0, deadline - Date.now())),
        });
      } catch (err) {
        drop();
        if (!(err instanceof NodeLockError && err.code === "ELOCKINTR")) {
          this.#opts.log.error("journal unlink: could not take PENDING; not fenced", {
            db,
            error: (err as Error).message,
          });
          return unfenced("unfenced");
        }
        this.#opts.log.warn("journal unlink: PENDING stayed locked past the bound; not fenced", {
          db,
          boundMs: this.#boundMs,
          holders: describe(this.#locksOrNone(file).filter((l) => overlaps(l, PENDING, PENDING))),
        });
        return unfenced("bound-passed");
      }
    }
    const { left: readers, heldUp } = await this.#readersGone(file, unlinker.pid, deadline);
    if (readers.length > 0) {
      this.#opts.log.warn("journal unlink: readers still hold SHARED past the bound; answered anyway", {
        db,
        boundMs: this.#boundMs,
        pids: [...new Set(readers.map((l) => l.pid))],
      });
      return { outcome: "bound-passed", release, nodeHeldPending: nodeHoldsPending, heldUp };
    }
    return { outcome: "fenced", release, nodeHeldPending: nodeHoldsPending, heldUp };
  }

  /**
   * Polls until no process but `unlinker` holds a lock in the SHARED range, not counting those that
   * wait for the directory lock this unlink holds (see the header); returns those left at the deadline.
   * The caller unlinks and answers in the same turn of the event loop as the last check: no other
   * request (a reader's GETATTR of the journal) is answered in between.
   */
  async #readersGone(
    file: KernelFileId,
    unlinker: number,
    deadline: number,
  ): Promise<{ left: KernelLock[]; heldUp: number[] }> {
    let delay = 0;
    for (;;) {
      const readers = this.#locksOrNone(file).filter(
        (l) => l.kind === "POSIX" && l.pid !== unlinker && overlaps(l, SHARED_FIRST_BYTE, SHARED_LAST_BYTE),
      );
      const left = readers.filter((l) => !waitsForDirectoryLock(l.pid));
      const heldUp = readers.filter((l) => !left.includes(l)).map((l) => l.pid);
      if (left.length === 0 || Date.now() >= deadline) return { left, heldUp };
      if (delay === 0) await immediate();
      else await sleep(delay);
      delay = delay === 0 ? 0.1 : Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  /**
   * Step 4's wait, after the answer: until the unlinking thread is out of its unlink system call — the
   * kernel drops the journal's name from its cache before the call returns, and only then may a new
   * reader get SHARED — or the unlinker no longer holds RESERVED (it dropped it after the call), or
   * the bound passed. Until the thread runs again after the answer, a reader that got SHARED would
   * still find the journal's name.
   */
  async #unlinkDone(
    file: KernelFileId,
    unlinker: { readonly pid: number; readonly tid: number },
  ): Promise<void> {
    const deadline = Date.now() + this.#boundMs;
    let delay = 0;
    for (;;) {
      if (threadInUnlink(unlinker.pid, unlinker.tid) === "outside") return;
      const reserved = this.#locksOrNone(file).some(
        (l) =>
          l.kind === "POSIX" &&
          l.pid === unlinker.pid &&
          l.type === "write" &&
          overlaps(l, RESERVED, RESERVED),
      );
      if (!reserved) return;
      if (Date.now() >= deadline) {
        this.#opts.log.warn("journal unlink: the unlinking thread stayed in its unlink past the bound", {
          pid: unlinker.pid,
          tid: unlinker.tid,
          boundMs: this.#boundMs,
        });
        return;
      }
      if (delay === 0) await immediate();
      else await sleep(delay);
      delay = delay === 0 ? 0.1 : Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  /**
   * `threadGroupOf`, remembered for a second (a procfs read per commit is ~35 µs): a thread id is
   * reused only after the kernel's pid counter wraps, which takes far longer.
   */
  #threadGroupOf(tid: number): number | null {
    const now = Date.now();
    const known = this.#tgids.get(tid);
    if (known !== undefined && now - known[1] < TGID_KEEP_MS) return known[0];
    const tgid = threadGroupOf(tid);
    if (this.#tgids.size >= TGIDS_MAX) this.#tgids.clear();
    if (tgid !== null) this.#tgids.set(tid, [tgid, now]);
    return tgid;
  }

  #locksOrNone(file: KernelFileId): KernelLock[] {
    try {
      return locksOnFile(file);
    } catch {
      return [];
    }
  }

  #fileId(ino: number): KernelFileId | null {
    if (this.#device === null) {
      try {
        this.#device = mountDevice(this.#opts.mountDir);
      } catch {
        this.#device = null;
      }
      if (this.#device === null) {
        this.#warnOnce("device", "the mount's device is not in mountinfo: journal unlinks are not fenced", {
          mountDir: this.#opts.mountDir,
        });
        return null;
      }
    }
    return { ...this.#device, ino };
  }

  #warnOnce(cause: string, msg: string, fields: Record<string, unknown>): void {
    if (this.#warned.has(cause)) return;
    this.#warned.add(cause);
    this.#opts.log.warn(msg, fields);
  }
}

function unfenced(outcome: FenceOutcome): Fence {
  return { outcome, release: () => undefined };
}

function describe(locks: readonly KernelLock[]): string[] {
  return locks.map((l) => `${l.kind} ${l.type} pid ${l.pid}`);
}
