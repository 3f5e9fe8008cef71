// The mount's side of "may this node commit?" — asked by the store at every commit point a local
// connection reaches (store/database.ts, "refused commits") — and of role changes at run time.
//
// The gate: on a primary, the node's `mayCommit` (false once it lost its lease while a transaction was
// in flight); on a replica, only a database whose HALT lock this node holds (halt-hooks.ts) may commit.
//
// What a refusal looks like to SQLite (the store has already undone the transaction):
//   - rollback journal (DELETE: unlink, TRUNCATE: truncate to 0, PERSIST: header zeroing): the request
//     fails with EIO → SQLITE_IOERR ("disk I/O error"), the connection drops its page cache, and every
//     later reader finds the database at its last committed state and no hot journal (in DELETE mode
//     the mount removes the emptied journal before answering: litefs-file-system.ts);
//   - WAL (the write that completes the commit frame): EIO → SQLITE_IOERR; the wal-index never
//     published the frames, so readers keep seeing the last commit.
// The kernel cached what the client wrote (pages, sizes) while the store put other bytes in the files,
// so the refusal drops those caches, and no connection may read the database between the refusal and
// the drop (it would see pages that were never committed — a stale read it could combine with a newer
// write elsewhere). Rollback journal, table locks (`fuse.kernel-locks: false`): the refusal is answered
// at once (a handoff's in-flight commit learns of it without waiting for the kernel: 15–180 ms under
// load), and the node holds a write lock on PENDING_BYTE from the moment the writer lets go of its own
// until the drops are done: every connection takes PENDING (read) before SHARED, so none can start
// reading in between — it gets SQLITE_BUSY and its busy handler retries. Kernel locks (the default; no
// lock request reaches the mount, and a node lock taken through the helper could lose the race for
// PENDING to a reader's own non-blocking lock): the database's pages are dropped before the answer (the
// writer keeps its locks until it hears back, so no reader can look in between), the journal's too
// except when the request is a write to it. A write request holds its own pages locked in the kernel
// until it is answered, so invalidating them before the answer would deadlock — those go right after
// it (WAL: the wal-index never published the refused frames, so no reader looks at them).
//
// Role changes: the role is asked per request (replica-access.ts); `roleChanged` only drops what the
// kernel cached under the old role (attributes: modes 0444/0666; the `.primary` name). A write
// transaction that began while the node was primary may finish its page writes after a demotion
// (`localWriterActive`): its commit point meets the gate, and a ROLLBACK can still put pages back.
// With kernel locks (config fuse.kernel-locks) the gate is the same; only `localWriterActive` reads
// the transaction's files instead of the lock tables.

import { FuseError } from "../fuse/errors.js";
import type { LockTable } from "../fuse/lock-table.js";
import type { InvalidateInodeRange } from "../fuse/notification.js";
import { JOURNAL_HEADER_FIELDS_SIZE, journalHeaderState } from "../store/journal-format.js";
import { PENDING_BYTE, RESERVED_BYTE, SHM_WRITE_LOCK } from "../store/sqlite-locks.js";
import { isStoreError } from "../store/store-error.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { type MountFileKind, PRIMARY_FILE_NAME, ROOT_NODE_ID } from "./node-table.js";
import type { NodeRole } from "./replica-access.js";

/** What the gate needs of a FUSE session (FuseSession has both). */
export interface KernelCacheNotifier {
  invalidateInode(nodeId: number, range?: InvalidateInodeRange): Promise<void>;
  invalidateEntry(parent: number, name: string): Promise<void>;
}

export interface CommitGateOptions {
  readonly store: Store;
  readonly log: StoreLogger;
  readonly role: () => NodeRole;
  /** The node's answer while primary. */
  readonly mayCommit: () => boolean;
  /** True while this replica holds `db`'s HALT lock. */
  readonly mayWriteOnReplica: (db: string) => boolean;
  /** The node id the kernel knows (db, kind) by, if any. */
  readonly nodeIdOf: (db: string, kind: MountFileKind) => number | undefined;
  readonly lockTableOf: (db: string, kind: MountFileKind) => LockTable;
  /** Kernel-locks mode: no lock request reaches the mount; `localWriterActive` is judged from data. */
  readonly kernelLocks?: boolean;
}

/** The request that reached a commit point. */
export type CommitPointRequest = "write" | "truncate" | "unlink";

const RESERVED = BigInt(RESERVED_BYTE);
const PENDING = BigInt(PENDING_BYTE);
const WAL_WRITE = BigInt(SHM_WRITE_LOCK);
const CACHED_KINDS: readonly MountFileKind[] = ["database", "journal", "wal", "shm", "pos", "lock"];

/** Lock owners of refusals holding readers back (negative: the node's own; apart from the guard's and
 *  the HALT code's ranges, database-lock-guard.ts and halt-locks.ts). */
let nextRefusalOwner = -(1n << 50n);

export class CommitGate {
  readonly #opts: CommitGateOptions;
  #session: KernelCacheNotifier | null = null;

  constructor(opts: CommitGateOptions) {
    this.#opts = opts;
    opts.store.setCommitGate((db) => this.allows(db));
    opts.store.setBehindKernelListener((db, kinds) => {
      for (const kind of kinds) void this.#invalidate(db, kind);
    });
  }

  /** May a local connection's transaction on `db` commit now? */
  allows(db: string): boolean {
    return this.#opts.role() === "primary" ? this.#opts.mayCommit() : this.#opts.mayWriteOnReplica(db);
  }

  attachSession(session: KernelCacheNotifier): void {
    this.#session = session;
  }

  /**
   * True while a local SQLite connection holds `db`'s write lock: RESERVED (or more) on the database
   * file, or the WAL write lock on `-shm`. The node's own lock owners (negative) do not count.
   * In kernel-locks mode the locks are out of sight, so the transaction's data answers instead: a
   * rollback journal that a transaction is writing (valid magic, or the header of a synchronous one
   * not yet synced), or WAL frames written past the last captured commit. A rolled-back WAL
   * transaction looks in flight until the next commit; that only lets a connection opened while the
   * node was primary write frames that can never commit on a replica (the gate refuses the commit).
   */
  localWriterActive(db: string): boolean {
    if (this.#opts.kernelLocks === true) return this.#writerFromData(db);
    const holdsWrite = (table: LockTable, byte: bigint): boolean =>
      table.holders().some((l) => l.owner >= 0n && l.type === "write" && l.start <= byte && byte <= l.end);
    return (
      holdsWrite(this.#opts.lockTableOf(db, "database"), RESERVED) ||
      holdsWrite(this.#opts.lockTableOf(db, "shm"), WAL_WRITE)
    );
  }

  #writerFromData(name: string): boolean {
    const db = this.#opts.store.db(name);
    if (db === undefined) return false;
    if (db.walWritesPastCapture) return true;
    if (!db.exists("journal")) return false;
    const state = journalHeaderState(db.read("journal", 0, JOURNAL_HEADER_FIELDS_SIZE));
    return state === "active" || state === "unsynced";
  }

  /**
   * Runs a change that may reach a commit point. Null when it went through; otherwise (the commit was
   * refused) a promise that drops the kernel caches the refusal made stale and then rejects with the
   * change's FuseError (EIO). Every other error is thrown as is.
   */
  run(
    db: string,
    kind: MountFileKind,
    request: CommitPointRequest,
    change: () => void,
  ): Promise<never> | null {
    try {
      change();
      return null;
    } catch (err) {
      if (
        err instanceof FuseError &&
        isStoreError(err.cause, "ECAPTURE") &&
        kind === "wal" &&
        request === "write"
      ) {
        // The store voided the commit frame whose capture failed: the kernel's cached copy of the
        // frame header must go too (after the answer, as for a refusal).
        this.#invalidateAfterAnswer(db, "wal");
      }
      if (!(err instanceof FuseError) || !isStoreError(err.cause, "ECOMMITREFUSED")) throw err;
      return this.#refused(db, kind, request, err);
    }
  }

  /**
   * Drops what the kernel cached under the old role (see the header), and the "no such file" it may
   * have cached for each `-wal` in `walsCreated` (created behind its back).
   */
  async roleChanged(role: NodeRole, dbs: readonly string[], walsCreated: readonly string[]): Promise<void> {
    const session = this.#session;
    this.#opts.log.info("mount role changed", { role });
    if (session === null) {
      this.#opts.log.warn("role changed before a session was attached: kernel caches not dropped", { role });
      return;
    }
    const jobs: Promise<void>[] = [];
    for (const db of dbs) {
      for (const kind of CACHED_KINDS) {
        const nodeId = this.#opts.nodeIdOf(db, kind);
        if (nodeId !== undefined) jobs.push(session.invalidateInode(nodeId, { attributesOnly: true }));
      }
    }
    jobs.push(session.invalidateEntry(ROOT_NODE_ID, PRIMARY_FILE_NAME));
    for (const db of walsCreated) jobs.push(session.invalidateEntry(ROOT_NODE_ID, `${db}-wal`));
    const results = await Promise.allSettled(jobs);
    const failed = results.filter((r) => r.status === "rejected").length;
    if (failed > 0) this.#opts.log.warn("could not drop some cached attributes", { role, failed });
  }

  async #refused(
    db: string,
    kind: MountFileKind,
    request: CommitPointRequest,
    err: FuseError,
  ): Promise<never> {
    if (kind === "journal" && this.#opts.kernelLocks !== true) {
      this.#holdReadersUntilDropped(db, request);
    } else if (kind === "journal" && request === "write") {
      await this.#invalidate(db, "database");
      this.#invalidateAfterAnswer(db, "journal");
    } else if (kind === "journal") {
      // Both before the answer, sent together: one wait for the notification worker instead of two in
      // a row (each 10–50 ms when the machine is loaded).
      await Promise.all([this.#invalidate(db, "database"), this.#invalidate(db, "journal")]);
    } else if (kind === "wal" && request === "write") {
      this.#invalidateAfterAnswer(db, "wal");
    }
    throw err;
  }

  /**
   * Table locks, rollback journal: the refusal is answered now, and no connection may read `db`
   * until the kernel dropped what the refused transaction left cached. A write lock on PENDING_BYTE is
   * queued at once; the writer holds PENDING itself (it is at its commit point, EXCLUSIVE), so the
   * lock is granted inside the request that releases the writer's — before any other request is
   * served — and stays until the drops are done. Drops that finish first cancel the queued lock: the
   * writer still held its locks all that time, so nobody could read. A drop that fails is logged
   * (#invalidate) and the lock goes all the same, as the old order (drop, then answer) did.
   */
  #holdReadersUntilDropped(db: string, request: CommitPointRequest): void {
    const table = this.#opts.lockTableOf(db, "database");
    const owner = nextRefusalOwner--;
    const cancel = new AbortController();
    // Cancelled (rejects) when the drops were done before the writer let go.
    table.waitFor(owner, process.pid, PENDING, PENDING, "write", cancel.signal).catch(() => undefined);
    // The journal's pages: a write request holds them locked until answered (see the header).
    const journal =
      request === "write"
        ? new Promise<void>((resolve) =>
            setImmediate(() => void this.#invalidate(db, "journal").then(resolve)),
          )
        : this.#invalidate(db, "journal");
    void Promise.all([this.#invalidate(db, "database"), journal]).then(() => {
      cancel.abort(); // a lock still queued goes away…
      table.releaseOwner(owner); // …and a granted one is dropped (both synchronous, either order safe)
    });
  }

  /**
   * Drops the kernel's cached entry `name` (in the mount root) once the current request is answered: a
   * request that changes the directory (UNLINK) holds the directory lock the invalidation needs.
   */
  invalidateNameAfterAnswer(name: string): void {
    const session = this.#session;
    if (session === null) return;
    setImmediate(() => {
      session.invalidateEntry(ROOT_NODE_ID, name).catch((err: unknown) => {
        this.#opts.log.warn("could not drop a cached name", { name, error: (err as Error).message });
      });
    });
  }

  /** After the current request is answered (a rejected handler promise is answered in a microtask). */
  #invalidateAfterAnswer(db: string, kind: MountFileKind): void {
    setImmediate(() => void this.#invalidate(db, kind));
  }

  /** Drops the kernel's cached attributes and pages of (db, kind); failures are logged, never thrown. */
  async #invalidate(db: string, kind: MountFileKind): Promise<void> {
    const nodeId = this.#opts.nodeIdOf(db, kind);
    if (nodeId === undefined) return;
    if (this.#session === null) {
      this.#opts.log.warn("no session attached: cached pages not dropped", { db, kind });
      return;
    }
    try {
      await this.#session.invalidateInode(nodeId);
    } catch (err) {
      this.#opts.log.warn("could not drop cached pages", { db, kind, error: (err as Error).message });
    }
  }
}
