// The POSIX locks of the mount: one LockTable per (database, file kind), shared by every incarnation of
// the file, answering GETLK/SETLK/SETLKW and dropping an owner's locks on FLUSH/RELEASE — plus the
// rules the mount adds on top:
// - On a primary, the release of the WAL write lock ends a WAL transaction: the store captures it
//   before the lock really goes (wal-lock-rules.ts) — normally already done by the write that
//   completed its commit frame (store/database.ts), so this finds nothing new — and CKPT is refused
//   while another owner writes.
// In kernel-locks mode (litefs-file-system.ts) no request of the kernel reaches these tables: they
// hold only the node's own bookkeeping locks (the HALT byte of `<db>-lock`).
// - On a replica, nothing is ever captured (local connections are read-only), and while the node
//   waits to apply a transaction in WAL mode it holds new readers back: a read-mark lock (READ0..4) or
//   a recovery (WRITE) requested by an owner that holds none of those bytes yet is answered EAGAIN —
//   SQLite retries such a lock by itself — so a steady stream of short read transactions cannot keep
//   the replica from ever getting every lock. Rollback mode needs no such gate: the applier's PENDING
//   lock already stops new readers, as SQLite's own writers do.

import type { FileLock, LockRequest, RequestContext } from "../fuse/file-system.js";
import { LockTable } from "../fuse/lock-table.js";
import { SHM_READ_LOCK_COUNT, SHM_READ_LOCK_FIRST, SHM_WRITE_LOCK } from "../store/sqlite-locks.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import type { DatabaseNode, MountFileKind } from "./node-table.js";
import type { NodeRole } from "./replica-access.js";
import { checkpointBlockedByWriter, releasesWalWriteLock } from "./wal-lock-rules.js";

const GATED_FIRST = BigInt(SHM_WRITE_LOCK);
const GATED_LAST = BigInt(SHM_READ_LOCK_FIRST + SHM_READ_LOCK_COUNT - 1);

export class LockRefusedError extends Error {
  override readonly name = "LockRefusedError";
  readonly code = "ELOCKREFUSED";
}

export class MountLocks {
  readonly #store: Store;
  readonly #log: StoreLogger;
  readonly #role: () => NodeRole;
  /** database → file kind → table. Two map lookups, no key string built per lock request. */
  readonly #tables = new Map<string, Map<MountFileKind, LockTable>>();
  /** Databases whose new WAL readers are held back (count of holders per database). */
  readonly #gated = new Map<string, number>();

  constructor(opts: { store: Store; log: StoreLogger; role: () => NodeRole }) {
    this.#store = opts.store;
    this.#log = opts.log;
    this.#role = opts.role;
  }

  /** The lock table of a database's file (every incarnation of the file shares it). */
  tableOf(db: string, kind: MountFileKind): LockTable {
    let kinds = this.#tables.get(db);
    if (kinds === undefined) {
      kinds = new Map();
      this.#tables.set(db, kinds);
    }
    let table = kinds.get(kind);
    if (table === undefined) {
      table = new LockTable();
      kinds.set(kind, table);
    }
    return table;
  }

  getlk(node: DatabaseNode, lock: LockRequest): FileLock | null {
    const held = this.tableOf(node.db, node.kind).test(lock.owner, lock.start, lock.end, lock.type);
    return held === null ? null : { start: held.start, end: held.end, type: held.type, pid: held.pid };
  }

  /** SETLK/SETLKW. Throws LockRefusedError (→ EAGAIN) for a conflict or a held-back reader. */
  setlk(ctx: RequestContext, node: DatabaseNode, lock: LockRequest): void | Promise<void> {
    const table = this.tableOf(node.db, node.kind);
    if (node.kind === "shm") {
      if (this.#role() === "primary") {
        if (checkpointBlockedByWriter(table, lock.owner, lock))
          throw new LockRefusedError("CKPT while writing");
        if (releasesWalWriteLock(table, lock.owner, lock)) this.#captureWal(node.db);
      } else if (this.#heldBack(node.db, table, lock)) {
        throw new LockRefusedError("a replicated transaction is waiting to be applied");
      }
    }
    if (lock.wait) return table.waitFor(lock.owner, lock.pid, lock.start, lock.end, lock.type, ctx.signal);
    if (!table.set(lock.owner, lock.pid, lock.start, lock.end, lock.type)) {
      throw new LockRefusedError("conflicting lock");
    }
  }

  /** FLUSH/RELEASE: drops every lock `owner` holds on the file (capturing a WAL commit first). */
  releaseOwner(node: DatabaseNode, owner: bigint): void {
    const table = this.#tables.get(node.db)?.get(node.kind);
    if (table === undefined) return;
    if (
      node.kind === "shm" &&
      this.#role() === "primary" &&
      releasesWalWriteLock(table, owner, { start: 0n, end: 0x7fffffffffffffffn, type: "unlock" })
    ) {
      this.#captureWal(node.db);
    }
    table.releaseOwner(owner);
  }

  /**
   * Holds back new WAL readers of `db` (see the header) until the returned function is called. Nests:
   * the gate opens when every holder has let go.
   */
  holdWalReaders(db: string): () => void {
    this.#gated.set(db, (this.#gated.get(db) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#gated.get(db) ?? 1) - 1;
      if (left > 0) this.#gated.set(db, left);
      else this.#gated.delete(db);
    };
  }

  /** True when anybody (a local connection) holds a lock on the database's `-shm` (DMS included). */
  shmInUse(db: string): boolean {
    const table = this.#tables.get(db)?.get("shm");
    return table !== undefined && !table.isEmpty;
  }

  #heldBack(db: string, table: LockTable, lock: LockRequest): boolean {
    if (!this.#gated.has(db) || lock.type === "unlock") return false;
    if (lock.end < GATED_FIRST || lock.start > GATED_LAST) return false;
    // An owner already inside (holding one of these bytes) may go on, e.g. to finish a recovery.
    return !table.locksOf(lock.owner).some((held) => held.start <= GATED_LAST && held.end >= GATED_FIRST);
  }

  /** Captures the WAL transaction whose writer is letting go; the lock is released whatever happens. */
  #captureWal(name: string): void {
    const db = this.#store.db(name);
    if (db === undefined) return;
    try {
      db.captureWal();
    } catch (err) {
      // The frames stay in the WAL: the next release of the write lock, or the next restart of the
      // WAL, tries again (Database#captureBeforeLosingWal). Releasing the lock must not fail.
      this.#log.error("WAL commit capture failed", { db: name, error: (err as Error).message });
    }
  }
}
