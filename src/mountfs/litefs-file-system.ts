// The FUSE view of the store: a flat directory of databases and their companions. It only translates
// requests into store calls (and store errors into errno, errno-map.ts); what is a commit, and what
// goes into an LTX file, is decided in the store.
//
// Names: `<db>` (a database; any new valid name creates one on a primary), `<db>-journal|-wal|-shm`
// (only while the backing file exists), `<db>-pos` (read-only position, 34 bytes), `<db>-lock` (by
// lookup only, for HALT locks), `.lag` (`%+010d\n`, 0 on a primary), `.primary` (replicas only: the
// primary's hostname). Databases with no pages are hidden from readdir. Anything else (directories,
// renames, writes to -pos) is refused with EPERM/EACCES and changes nothing.
//
// Role: on a replica every change but to `-shm` is refused so that SQLite reports SQLITE_READONLY
// (replica-access.ts), and files show mode 0444. The role is asked per request (it may change).
// While the node holds a database's HALT lock (halt-hooks.ts: a write lock on byte 72 of `<db>-lock`),
// a replica lets local clients change that database, and a change that commits is answered only once
// the hooks have had the primary confirm the transaction. On a primary, during a handoff's pace step, a
// change that commits is answered once the handoff's target is close enough (src/node/handoff-pacer.ts).
//
// Locks (table mode, fuse.kernel-locks: false): the file system keeps POSIX locks itself
// (mount-locks.ts), because SQLite's WAL write lock on `-shm` tells when a WAL transaction is over
// (wal-lock-rules.ts), and because a replica takes the same locks to keep readers out while it applies
// a transaction. FLUSH (every close) and RELEASE drop the owner's locks, exactly like the kernel would.
//
// Kernel-locks mode (`kernelLocks`, config fuse.kernel-locks, the default; the session is mounted
// without FUSE_POSIX_LOCKS): the kernel keeps every fcntl lock and the mount never sees one. WAL
// transactions are then captured by the write that completes their commit frame (store/database.ts), as
// in table mode, where that write comes before the lock release; a checkpoint can never see an
// uncaptured frame, so no CKPT rule is needed. What the lock tables told the mount comes from data
// and open handles: a writer in flight (commit-gate.ts `localWriterActive`), whether a local
// connection uses `-shm` (`shmInUse`: its open handles, the node's lock helper's excepted). A WAL write
// without the WAL write lock (locking_mode=EXCLUSIVE) cannot be told apart and is not refused: frame
// capture replicates it correctly on a primary. The node's own locks (replica apply, HALT, import,
// export, snapshots) are kernel locks taken by a helper process (`lockHelperPid`), which alone may open
// database files for writing on a replica (a write lock needs a writable descriptor); it never writes.
// A DELETE-mode writer's journal unlink that ends a RESERVED-only transaction (a rollback) is held
// until the readers holding SHARED are done, new readers kept out with PENDING, so that none meets
// SQLite's read-only hot-journal race (journal-unlink-fence.ts).
//
// Caching: every change on a primary goes through this mount, so the kernel may cache attributes,
// names and pages (keep_cache) — except `-pos`, `.lag` and `.primary`, whose content changes without a
// write through the mount (direct I/O). A replica's applier invalidates what it changes behind the
// kernel's back (node/replica-applier.ts). A re-created file gets a new node id (node-table.ts).
//
// Unlinked open files: as in POSIX, a file unlinked while handles are open on it lives on, nameless,
// until the last of them is released. SQLite relies on it for `-shm`, which it unlinks while it still
// has it mapped: pages written back afterwards must reach the orphan, not re-create the name. The mount
// opens its own descriptor on the file before the store removes it, and serves the old node id's I/O
// from that descriptor (bypassing the store: a nameless file is no part of any transaction).

import fs from "node:fs";

import { FuseError } from "../fuse/errors.js";
import type {
  AttrReply,
  CreateReply,
  Entry,
  FileAttributes,
  FileLock,
  FuseFileSystem,
  LockRequest,
  OpenReply,
  ReleaseInfo,
  RequestContext,
  SetattrChanges,
  StatfsReply,
  WriteInfo,
} from "../fuse/file-system.js";
import type { DirectoryListing } from "../fuse/directory-listing.js";
import type { Database } from "../store/database.js";
import { fsyncDirectory, readFully, writeAll } from "../store/durable-file.js";
import type { Store } from "../store/store.js";
import type { StoreLogger } from "../store/store-logger.js";
import { toFuseError } from "./errno-map.js";
import { formatLag, modeOf, MountAttributes, READ_ONLY_MODE, ROOT_MODE } from "./mount-attributes.js";
import type { MountHaltHooks } from "./halt-hooks.js";
import { LockRefusedError, MountLocks } from "./mount-locks.js";
import { CommitGate, type KernelCacheNotifier } from "./commit-gate.js";
import type { Fence, JournalUnlinkFence } from "./journal-unlink-fence.js";
import type { LockTable } from "../fuse/lock-table.js";
import {
  type DatabaseNode,
  LAG_FILE_NAME,
  LAG_NODE_ID,
  type MountFileKind,
  NodeTable,
  parseMountName,
  PRIMARY_FILE_NAME,
  PRIMARY_NODE_ID,
  ROOT_NODE_ID,
  SUFFIX_OF_KIND,
} from "./node-table.js";
import { type FileChange, type NodeRole, replicaRefusal } from "./replica-access.js";
import { walWriteLockHeld } from "./wal-lock-rules.js";

export interface LitefsFileSystemOptions {
  readonly store: Store;
  readonly log: StoreLogger;
  /** Milliseconds behind the primary, for `.lag` (0 on a primary). */
  readonly lagMs?: () => number;
  /** The node's role now; default primary. A replica refuses changes (replica-access.ts). */
  readonly role?: () => NodeRole;
  /** The primary's hostname for `.primary` (shown on replicas only); null when unknown. */
  readonly primaryHostname?: () => string | null;
  /** Skip fsyncs (tests only). */
  readonly noSync?: boolean;
  /** Called after each successful write through the mount (the node's write-count metrics). */
  readonly onWrite?: (db: string, kind: MountFileKind) => void;
  /** HALT locks (halt-hooks.ts); without them `<db>-lock` is a plain lock file and replicas never write. */
  readonly halt?: MountHaltHooks;
  /**
   * Asked after every change it is about to answer (write, truncate, unlink): null to answer now, or
   * a promise to answer after — a primary's handoff paces its writers so (src/node/handoff-pacer.ts).
   */
  readonly pacer?: { afterChange(db: string): Promise<void> | null };
  /**
   * Asked synchronously at every commit point while the role is primary (default: always true): false
   * means the node lost its lease while the transaction was in flight, and the commit is refused
   * (commit-gate.ts). On a replica a commit is allowed only under the database's HALT lock.
   */
  readonly mayCommit?: () => boolean;
  /**
   * True while the primary hands its lease off and lets the transactions in flight finish first
   * (lease-role.ts, "drain"): a change that would start a write transaction — creating a database or
   * a journal, the first write to a journal or to the WAL after a commit — is refused as on a replica,
   * at once and before SQLite wrote anything; a transaction already writing goes on to its commit.
   * Default: never.
   */
  readonly writesClosing?: () => boolean;
  /** Kernel-locks mode (see the header); mount the session with `posixLocks: !fs.kernelLocks`. */
  readonly kernelLocks?: boolean;
  /**
   * The pid of the node's lock helper (kernel-locks mode), or null while there is none: its requests
   * may open database files for writing on a replica, and its handles do not count as use of `-shm`.
   */
  readonly lockHelperPid?: () => number | null;
  /**
   * Kernel-locks mode: orders a rolling-back writer's journal unlink with read-only connections
   * (journal-unlink-fence.ts). Without it, SQLite's own read-only hot-journal race is open.
   */
  readonly journalUnlinkFence?: JournalUnlinkFence;
  /**
   * Kernel-locks mode: the directory where the lock-file mount (lock-file-system.ts) is mounted.
   * `<db>-lock` is then a symbolic link to `<lockFileDir>/<db>-lock`, so that a client's fcntl locks on
   * it — the HALT lock — reach the node. Without it `<db>-lock` is a file of this mount.
   */
  readonly lockFileDir?: string;
}

interface OpenFile {
  readonly node: DatabaseNode | null; // null: .lag or .primary
  readonly flags: number;
  /** The process that opened the handle. */
  readonly pid: number;
}

const BACKED_KINDS = new Set<MountFileKind>(["database", "journal", "wal", "shm"]);

export class LitefsFileSystem implements FuseFileSystem {
  readonly #store: Store;
  readonly #log: StoreLogger;
  readonly #lagMs: () => number;
  readonly #role: () => NodeRole;
  readonly #writesClosing: () => boolean;
  readonly #primaryHostname: () => string | null;
  readonly #noSync: boolean;
  readonly #onWrite: ((db: string, kind: MountFileKind) => void) | undefined;
  readonly #halt: MountHaltHooks | undefined;
  readonly #pacer: LitefsFileSystemOptions["pacer"];
  readonly #gate: CommitGate;
  readonly #lockHelperPid: () => number | null;
  readonly #journalUnlinkFence: JournalUnlinkFence | undefined;
  /**
   * Databases whose file was written since their journal's header was (re)written — the start of each
   * transaction's journal, in every rollback mode: SQLite writes database pages only under EXCLUSIVE, so
   * that journal's unlink needs no fence (and no read of /proc/locks on a commit).
   */
  readonly #writtenUnderJournal = new Set<string>();
  readonly #lockFileDir: string | undefined;
  /** Kernel-locks mode (see the header): the session must not negotiate FUSE_POSIX_LOCKS. */
  readonly kernelLocks: boolean;
  readonly #nodes = new NodeTable();
  readonly #handles = new Map<number, OpenFile>();
  readonly #attrs = new MountAttributes();
  /** The mount's POSIX lock tables (also used by the node for its own locks). */
  readonly locks: MountLocks;
  /** node id of an unlinked file with open handles → descriptor of that (nameless) file. */
  readonly #orphans = new Map<number, number>();
  #nextFh = 1;

  constructor(opts: LitefsFileSystemOptions) {
    this.#store = opts.store;
    this.#log = opts.log;
    this.#lagMs = opts.lagMs ?? (() => 0);
    this.#role = opts.role ?? (() => "primary");
    this.#writesClosing = opts.writesClosing ?? (() => false);
    this.#primaryHostname = opts.primaryHostname ?? (() => null);
    this.#noSync = opts.noSync === true;
    this.#onWrite = opts.onWrite;
    this.#halt = opts.halt;
    this.#pacer = opts.pacer;
    this.kernelLocks = opts.kernelLocks === true;
    this.#lockHelperPid = opts.lockHelperPid ?? (() => null);
    this.#journalUnlinkFence = this.kernelLocks ? opts.journalUnlinkFence : undefined;
    this.#lockFileDir = opts.lockFileDir;
    this.locks = new MountLocks({ store: this.#store, log: this.#log, role: this.#role });
    this.#gate = new CommitGate({
      store: this.#store,
      log: this.#log,
      role: this.#role,
      mayCommit: opts.mayCommit ?? (() => true),
      mayWriteOnReplica: (db) => this.#halt?.mayWriteOnReplica(db) === true,
      nodeIdOf: (db, kind) => this.currentNodeId(db, kind),
      lockTableOf: (db, kind) => this.locks.tableOf(db, kind),
      kernelLocks: this.kernelLocks,
    });
  }

  /**
   * Gives the file system the session it is mounted by, for the kernel cache invalidations a refused
   * commit, a role change and a demoted node's first replica apply need (commit-gate.ts). Call right
   * after FuseSession.mount; until then those invalidations are skipped (and logged).
   */
  attachSession(session: KernelCacheNotifier): void {
    this.#gate.attachSession(session);
  }

  /** `primaryHostname()` changed without a role change (a handoff that failed): drop `.primary`'s entry. */
  primaryNameChanged(): void {
    this.#gate.invalidateNameAfterAnswer(PRIMARY_FILE_NAME);
  }

  /** True while a local connection's write transaction on `db` is in flight (commit-gate.ts). */
  localWriterActive(db: string): boolean {
    return this.#gate.localWriterActive(db);
  }

  /**
   * Tell the mount that `role()` now answers `role` (call on every change): it drops the kernel's
   * cached attributes (modes 0666 ↔ 0444) and the `.primary` name. Connections opened while the node
   * was a replica write after a promotion if SQLite could open the database read-write — a rollback
   * journal database with no journal (replica-access.ts); others (WAL mode) stay read-only: apps must
   * reopen them to write after a promotion.
   */
  roleChanged(role: NodeRole): Promise<void> {
    const dbs = this.#store.databases();
    const walsCreated = role === "replica" ? this.#keepReplicaWals(dbs) : [];
    return this.#gate.roleChanged(
      role,
      dbs.map((db) => db.name),
      walsCreated,
    );
  }

  /**
   * A replica keeps an empty `-wal` while a database is in WAL mode: a read-only connection cannot
   * create it and then fails even to read (replica-access.ts). The replica applier creates it with
   * each apply; a node that was primary has none once its last local connection closed (SQLite
   * checkpoints and removes it), so its readers failed from the turn to replica (a handoff, a restart
   * after another node took the lease) until the next replicated transaction. Called once the role
   * answers "replica" (no local unlink gets through any more). Returns the databases whose `-wal` it
   * created.
   */
  #keepReplicaWals(dbs: readonly Database[]): string[] {
    const created: string[] = [];
    for (const db of dbs) {
      if (!db.walMode || db.exists("wal")) continue;
      try {
        db.create("wal");
        created.push(db.name);
      } catch (err) {
        this.#log.warn(
          "cannot create the empty -wal a replica keeps: read-only connections fail until the next apply",
          {
            db: db.name,
            error: (err as Error).message,
          },
        );
      }
    }
    return created;
  }

  // --- names ---------------------------------------------------------------------------------------

  lookup(_ctx: RequestContext, parent: number, name: string): Entry | null {
    if (parent !== ROOT_NODE_ID) throw new FuseError("ENOENT");
    const parsed = parseMountName(name);
    if (parsed.type === "lag") return this.#entry(LAG_NODE_ID, this.#attrs.lag(this.#lagText()));
    if (parsed.type === "primary") {
      // An error, not a negative entry: the kernel would cache "no .primary" for the negative timeout,
      // and an application polling it after a handoff would learn the new primary that much later.
      const text = this.#primaryText();
      if (text === null) throw new FuseError("ENOENT");
      return this.#entry(PRIMARY_NODE_ID, this.#attrs.primary(text));
    }
    if (parsed.type === "invalid") return null;
    const db = this.#store.db(parsed.db);
    if (db === undefined || !this.#exists(db, parsed.kind)) {
      // A WAL-mode database's missing `-wal`: an error, not a negative entry. A turn to replica creates
      // it behind the kernel's back (#keepReplicaWals), and a "no -wal" the kernel cached while this
      // node was primary would fail every read-only connection (SQLITE_READONLY_DIRECTORY) until the
      // invalidation that follows landed, or the negative timeout ran out (bench/chaos.ts: a read
      // failed so during a handoff). In WAL mode SQLite looks it up when a connection opens its WAL,
      // not per transaction; other modes keep the cached answer (they look per transaction).
      if (db !== undefined && parsed.kind === "wal" && db.walMode) throw new FuseError("ENOENT");
      return null;
    }
    const node = this.#nodes.nodeOf(db.name, parsed.kind);
    return this.#entry(node.nodeId, this.#attr(node));
  }

  /** `<db>-lock` in kernel-locks mode with a lock-file mount: where the link points. */
  readlink(_ctx: RequestContext, nodeId: number): string {
    const target = this.#lockFileTarget(this.#node(nodeId));
    if (target === undefined) throw new FuseError("EINVAL", "not a symbolic link");
    return target;
  }

  /** Databases whose `<db>-lock` exists now (the lock-file mount shows the same names). */
  lockableDatabases(): string[] {
    return this.#store
      .databases()
      .filter((db) => this.#exists(db, "lock"))
      .map((db) => db.name);
  }

  forget(nodeId: number, nlookup: number): void {
    this.#nodes.forget(nodeId, nlookup);
  }

  getattr(_ctx: RequestContext, nodeId: number): AttrReply {
    return { attr: this.#attrOf(nodeId) };
  }

  setattr(_ctx: RequestContext, nodeId: number, changes: SetattrChanges): AttrReply | Promise<AttrReply> {
    const node = this.#node(nodeId);
    const orphan = this.#orphans.get(nodeId);
    if (orphan !== undefined) {
      if (changes.size !== undefined) fs.ftruncateSync(orphan, changes.size);
      return { attr: this.#attr(node) };
    }
    if (changes.size !== undefined) {
      if (!BACKED_KINDS.has(node.kind)) throw new FuseError("EPERM", `${this.#name(node)} cannot be resized`);
      this.#refuseChange("truncate", node);
      const db = this.#mustDb(node);
      const refused = this.#gate.run(db.name, node.kind, "truncate", () =>
        this.#call(() => db.truncate(node.kind as "database", changes.size!)),
      );
      if (refused !== null) return refused;
      const answering = this.#afterChange(node.db);
      if (answering !== null) return answering.then(() => ({ attr: this.#attr(node) }));
    }
    return { attr: this.#attr(node) };
  }

  access(ctx: RequestContext, nodeId: number, mask: number): void {
    if (nodeId === ROOT_NODE_ID || nodeId === LAG_NODE_ID || nodeId === PRIMARY_NODE_ID) return;
    const node = this.#node(nodeId);
    if ((mask & fs.constants.W_OK) === 0) return;
    if (node.kind === "pos") throw new FuseError("EACCES");
    if (this.#isLockHelper(ctx.pid)) return;
    this.#refuseChange("open-for-write", node);
  }

  readdir(_ctx: RequestContext, nodeId: number, _fh: number, offset: number, out: DirectoryListing): void {
    if (nodeId !== ROOT_NODE_ID) throw new FuseError("ENOTDIR");
    const entries: { name: string; ino: number; mode: number }[] = [
      { name: ".", ino: ROOT_NODE_ID, mode: ROOT_MODE },
      { name: "..", ino: ROOT_NODE_ID, mode: ROOT_MODE },
      { name: LAG_FILE_NAME, ino: LAG_NODE_ID, mode: READ_ONLY_MODE },
    ];
    if (this.#primaryText() !== null) {
      entries.push({ name: PRIMARY_FILE_NAME, ino: PRIMARY_NODE_ID, mode: READ_ONLY_MODE });
    }
    const role = this.#role();
    for (const db of this.#store.databases()) {
      if (!db.exists("database") || (db.pageCount === 0 && db.size("database") === 0)) continue;
      for (const kind of ["database", "journal", "wal", "shm", "pos"] as const) {
        if (!this.#exists(db, kind)) continue;
        const node = this.#nodes.nodeOf(db.name, kind);
        entries.push({ name: db.name + SUFFIX_OF_KIND[kind], ino: node.nodeId, mode: modeOf(kind, role) });
      }
    }
    for (let i = offset; i < entries.length; i++) {
      if (!out.add(entries[i].name, entries[i], i + 1)) break;
    }
  }

  statfs(): StatfsReply {
    const st = fs.statfsSync(this.#store.dataDir.root);
    return {
      blocks: st.blocks,
      bfree: st.bfree,
      bavail: st.bavail,
      files: st.files,
      ffree: st.ffree,
      bsize: st.bsize,
      namelen: 255,
      frsize: st.bsize,
    };
  }

  // --- creating and removing ----------------------------------------------------------------------

  create(ctx: RequestContext, parent: number, name: string, _mode: number, flags: number): CreateReply {
    if (parent !== ROOT_NODE_ID) throw new FuseError("ENOENT");
    const parsed = parseMountName(name);
    if (parsed.type !== "file")
      throw new FuseError("EPERM", `${JSON.stringify(name)} cannot be created here`);
    this.#refuseChange("create", { kind: parsed.kind, db: parsed.db });
    let db: Database;
    if (parsed.kind === "database") {
      db = this.#call(() => this.#store.createDatabase(parsed.db));
    } else {
      const found = this.#store.db(parsed.db);
      if (found === undefined || !found.exists("database"))
        throw new FuseError("ENOENT", `no database ${parsed.db}`);
      if (!BACKED_KINDS.has(parsed.kind)) throw new FuseError("EPERM", `${name} cannot be created`);
      db = found;
      this.#call(() => db.create(parsed.kind as "journal"));
      if (parsed.kind === "journal") this.#writtenUnderJournal.delete(db.name);
    }
    const node = this.#nodes.renew(db.name, parsed.kind);
    const open = this.#openReply(node, flags, ctx.pid);
    return { ...this.#entry(node.nodeId, this.#attr(node)), ...open };
  }

  mknod(): Entry {
    throw new FuseError("EPERM", "only regular files are supported");
  }

  mkdir(): Entry {
    throw new FuseError("EPERM", "the mount is flat: no directories");
  }

  rmdir(): void {
    throw new FuseError("EPERM", "the mount is flat: no directories");
  }

  rename(): void {
    throw new FuseError("EPERM", "renaming databases or their files is not supported");
  }

  unlink(ctx: RequestContext, parent: number, name: string): void | Promise<void> {
    if (parent !== ROOT_NODE_ID) throw new FuseError("ENOENT");
    const parsed = parseMountName(name);
    if (parsed.type !== "file") throw new FuseError(parsed.type === "invalid" ? "ENOENT" : "EPERM");
    const db = this.#store.db(parsed.db);
    if (db === undefined || !this.#exists(db, parsed.kind)) throw new FuseError("ENOENT");
    if (!BACKED_KINDS.has(parsed.kind)) throw new FuseError("EPERM", `${name} cannot be removed`);
    this.#refuseChange("unlink", { kind: parsed.kind, db: parsed.db });
    const dbNodeId = this.#nodes.current(db.name, "database")?.nodeId;
    if (
      parsed.kind === "journal" &&
      !this.#writtenUnderJournal.delete(db.name) &&
      this.#journalUnlinkFence !== undefined &&
      dbNodeId !== undefined
    ) {
      const fence = this.#journalUnlinkFence.fence(db.name, dbNodeId, ctx.pid);
      if (fence instanceof Promise) return this.#fencedJournalUnlink(db, fence);
    }
    return this.#unlinkNow(db, parsed.kind);
  }

  /**
   * Kernel-locks mode, a journal unlink that ends a transaction its writer holds only RESERVED for (a
   * rollback): unlinks once the fence holds (journal-unlink-fence.ts) and drops the fence after the
   * answer — the dispatcher writes it when this promise settles, before any setImmediate callback.
   */
  async #fencedJournalUnlink(db: Database, fencing: Promise<Fence>): Promise<void> {
    const started = performance.now();
    const fence = await fencing;
    this.#log.debug("journal unlink fenced", {
      db: db.name,
      outcome: fence.outcome,
      nodeHeldPending: fence.nodeHeldPending,
      heldUp: fence.heldUp,
      waitedMs: Math.round((performance.now() - started) * 1000) / 1000,
    });
    try {
      if (!db.exists("journal")) throw new FuseError("ENOENT");
      const before = db.pos.txid;
      await this.#unlinkNow(db, "journal");
      // A writer without PENDING never wrote the database file: its journal unlink cannot commit.
      if (db.pos.txid !== before) {
        this.#log.warn("a journal unlink fenced as a rollback committed a transaction", {
          db: db.name,
          txid: db.pos.txid,
        });
      }
    } finally {
      setImmediate(() => fence.release());
    }
  }

  #unlinkNow(db: Database, kind: MountFileKind): void | Promise<void> {
    const node = this.#nodes.nodeOf(db.name, kind);
    const orphan = this.#hasHandles(node.nodeId)
      ? this.#call(() => fs.openSync(db.files.path(kind as "journal"), fs.constants.O_RDWR))
      : undefined;
    try {
      const refused = this.#gate.run(db.name, kind, "unlink", () =>
        this.#call(() => db.unlink(kind as "journal")),
      );
      if (refused !== null) {
        if (kind === "journal") return this.#removeRefusedJournal(db, node, orphan, refused);
        if (orphan !== undefined) fs.closeSync(orphan);
        return refused;
      }
    } catch (err) {
      if (orphan !== undefined) fs.closeSync(orphan);
      throw err;
    }
    if (orphan !== undefined) this.#orphans.set(node.nodeId, orphan);
    this.#nodes.renew(db.name, kind);
    if (kind === "database")
      for (const other of ["journal", "wal", "shm"] as const) this.#nodes.renew(db.name, other);
    return this.#afterChange(db.name) ?? undefined;
  }

  /**
   * When a change about to be answered may be answered: now (null), or once a replica's HALT write is
   * confirmed by the primary (halt-hooks.ts) and a primary's handoff lets the writer go on (pacer).
   */
  #afterChange(db: string): Promise<void> | null {
    const confirming = this.#halt?.afterChange(db) ?? null;
    const paced = this.#pacer?.afterChange(db) ?? null;
    if (paced === null) return confirming;
    return confirming === null ? paced : Promise.all([confirming, paced]).then(() => undefined);
  }

  /**
   * A DELETE-mode commit refused at its journal unlink: the store has restored the database from the
   * journal and emptied it. The client asked for the journal to go, so it goes now, before the refusal
   * is answered — a journal of a refused transaction left in view could be taken for a hot journal by
   * another connection (a read-only one then fails SQLITE_READONLY). The writer's open handle keeps the
   * nameless file (orphan). The refusal (EIO) is answered as before; the cached name is dropped after.
   */
  async #removeRefusedJournal(
    db: Database,
    node: DatabaseNode,
    orphan: number | undefined,
    refused: Promise<never>,
  ): Promise<never> {
    try {
      this.#call(() => db.unlink("journal"));
    } catch (err) {
      if (orphan !== undefined) fs.closeSync(orphan);
      this.#log.warn("could not remove the journal of a refused commit", {
        db: db.name,
        error: (err as Error).message,
      });
      return refused;
    }
    if (orphan !== undefined) this.#orphans.set(node.nodeId, orphan);
    try {
      // The gate drops the old journal node's cached pages and attributes before answering.
      return await refused;
    } finally {
      this.#nodes.renew(db.name, "journal");
      this.#gate.invalidateNameAfterAnswer(db.name + SUFFIX_OF_KIND.journal);
    }
  }

  // --- open files ---------------------------------------------------------------------------------

  open(ctx: RequestContext, nodeId: number, flags: number): OpenReply {
    if (nodeId === LAG_NODE_ID || nodeId === PRIMARY_NODE_ID) {
      if ((flags & 3) !== fs.constants.O_RDONLY) throw new FuseError("EACCES", "the file is read-only");
      return this.#newHandle({ node: null, flags, pid: ctx.pid }, { directIo: true });
    }
    const node = this.#node(nodeId);
    if (node.kind === "pos" && (flags & 3) !== fs.constants.O_RDONLY) {
      throw new FuseError("EACCES", `${this.#name(node)} is read-only`);
    }
    if ((flags & fs.constants.O_TRUNC) !== 0) {
      this.#refuseChange("open-for-write", node);
    } else if ((flags & 3) !== fs.constants.O_RDONLY && !this.#isLockHelper(ctx.pid)) {
      this.#refuseChange("open-for-write", node);
    }
    const db = this.#mustDb(node);
    if (!this.#exists(db, node.kind)) throw new FuseError("ENOENT");
    if ((flags & fs.constants.O_TRUNC) !== 0 && BACKED_KINDS.has(node.kind)) {
      this.#call(() => db.truncate(node.kind as "database", 0));
    }
    return this.#openReply(node, flags, ctx.pid);
  }

  read(_ctx: RequestContext, nodeId: number, _fh: number, offset: number, size: number): Uint8Array {
    if (nodeId === LAG_NODE_ID) return slice(this.#lagText(), offset, size);
    if (nodeId === PRIMARY_NODE_ID) return slice(this.#primaryText() ?? "", offset, size);
    const orphan = this.#orphans.get(nodeId);
    if (orphan !== undefined) {
      const { data, bytesRead } = readFully(orphan, size, offset);
      return data.subarray(0, bytesRead);
    }
    const node = this.#node(nodeId);
    const db = this.#mustDb(node);
    switch (node.kind) {
      case "pos":
        return slice(db.posText, offset, size);
      case "lock":
        return new Uint8Array(0);
      default:
        return this.#call(() => db.read(node.kind as "database", offset, size));
    }
  }

  write(
    _ctx: RequestContext,
    nodeId: number,
    _fh: number,
    offset: number,
    data: Buffer,
    _info: WriteInfo,
  ): number | Promise<number> {
    const node = this.#node(nodeId);
    if (!BACKED_KINDS.has(node.kind)) throw new FuseError("EACCES", `${this.#name(node)} is not writable`);
    this.#refuseChange("write", node);
    const orphan = this.#orphans.get(nodeId);
    if (orphan !== undefined) {
      writeAll(orphan, data, offset);
      return data.length;
    }
    const db = this.#mustDb(node);
    if (node.kind === "wal" && !this.kernelLocks && !walWriteLockHeld(this.lockTableOf(db.name, "shm"))) {
      this.#log.error(
        "WAL write without the WAL write lock refused: locking_mode=EXCLUSIVE cannot be replicated",
        {
          db: db.name,
        },
      );
      throw new FuseError(
        "EIO",
        "WAL write without the WAL write lock (locking_mode=EXCLUSIVE is not supported)",
      );
    }
    const refused = this.#gate.run(db.name, node.kind, "write", () =>
      this.#call(() => db.write(node.kind as "database", offset, data)),
    );
    if (refused !== null) return refused;
    if (this.#journalUnlinkFence !== undefined) {
      if (node.kind === "database") this.#writtenUnderJournal.add(db.name);
      else if (node.kind === "journal" && offset === 0) this.#writtenUnderJournal.delete(db.name);
    }
    this.#onWrite?.(db.name, node.kind);
    const answering = this.#afterChange(db.name);
    return answering === null ? data.length : answering.then(() => data.length);
  }

  fsync(_ctx: RequestContext, nodeId: number): void {
    const node = this.#node(nodeId);
    const orphan = this.#orphans.get(nodeId);
    if (orphan !== undefined) return; // nameless: nothing of it survives a crash anyway
    if (BACKED_KINDS.has(node.kind)) this.#call(() => this.#mustDb(node).sync(node.kind as "database"));
  }

  fsyncdir(): void {
    // SQLite syncs the directory after creating a journal so that the journal survives a crash: make
    // the creations in every database directory that has one durable.
    if (this.#noSync) return;
    for (const db of this.#store.databases()) if (db.exists("journal")) fsyncDirectory(db.dir.dir);
  }

  flush(_ctx: RequestContext, nodeId: number, _fh: number, lockOwner: bigint): void {
    this.#releaseOwner(nodeId, lockOwner);
  }

  release(_ctx: RequestContext, nodeId: number, fh: number, info: ReleaseInfo): void {
    this.#handles.delete(fh);
    if (info.lockOwner !== undefined) this.#releaseOwner(nodeId, info.lockOwner);
    const released = this.#nodes.byId(nodeId);
    if (released?.kind === "lock") {
      this.#halt?.handleReleased(released.db, fh, this.locks.tableOf(released.db, "lock"));
    }
    const orphan = this.#orphans.get(nodeId);
    if (orphan !== undefined && !this.#hasHandles(nodeId)) {
      this.#orphans.delete(nodeId);
      fs.closeSync(orphan);
    }
  }

  // --- locks --------------------------------------------------------------------------------------

  getlk(_ctx: RequestContext, nodeId: number, lock: LockRequest): FileLock | null {
    return this.locks.getlk(this.#lockNode(nodeId), lock);
  }

  setlk(ctx: RequestContext, nodeId: number, lock: LockRequest): void | Promise<void> {
    try {
      const node = this.#lockNode(nodeId);
      if (node.kind === "lock" && this.#halt !== undefined) {
        return this.#halt.setlk(ctx, node.db, lock, this.locks.tableOf(node.db, "lock"));
      }
      return this.locks.setlk(ctx, node, lock);
    } catch (err) {
      if (err instanceof LockRefusedError) throw new FuseError("EAGAIN");
      throw err;
    }
  }

  // --- helpers ------------------------------------------------------------------------------------

  #releaseOwner(nodeId: number, owner: bigint): void {
    const node = this.#nodes.byId(nodeId);
    if (node === undefined) return;
    this.locks.releaseOwner(node, owner);
    if (node.kind === "lock") this.#halt?.ownerReleased(node.db, this.locks.tableOf(node.db, "lock"));
  }

  #lockNode(nodeId: number): DatabaseNode {
    if (nodeId === LAG_NODE_ID || nodeId === PRIMARY_NODE_ID)
      throw new FuseError("ENOLCK", "cannot be locked");
    return this.#node(nodeId);
  }

  /**
   * The POSIX lock table of a database's file. Keyed by (database, kind), not node id: every
   * incarnation of `-shm` or of the database file shares one table, as SQLite expects.
   */
  lockTableOf(db: string, kind: MountFileKind): LockTable {
    return this.locks.tableOf(db, kind);
  }

  /** The node id the kernel currently knows (db, kind) by, or undefined when it was never looked up. */
  currentNodeId(db: string, kind: MountFileKind): number | undefined {
    return this.#nodes.current(db, kind)?.nodeId;
  }

  /**
   * The inode number (node id) the mount answers for `db`'s file of `kind` now, or undefined when it
   * has none to give: the file is missing, or no node was handed out for it yet. For the lock helper,
   * which reuses a descriptor of that very inode without asking the mount (kernel-node-locks.ts).
   */
  inodeOf(db: string, kind: "database" | "shm"): number | undefined {
    return this.#store.db(db)?.exists(kind) === true ? this.currentNodeId(db, kind) : undefined;
  }

  /** Names of a database's files, for invalidating the kernel's cached entries after a change. */
  fileNamesOf(db: string): string[] {
    return (["database", "journal", "wal", "shm", "pos"] as const).map((kind) => db + SUFFIX_OF_KIND[kind]);
  }

  /**
   * Gives (db, kind) a fresh node id after the node removed or re-created the file behind the kernel's
   * back, so that nothing cached for the old file is ever served for the new one.
   */
  renewFile(db: string, kind: MountFileKind): void {
    this.#nodes.renew(db, kind);
  }

  /**
   * After the store replaced a database behind the kernel's back (import): gives its files fresh node
   * ids, so no cached page or attribute of the old file can be served, and returns the names whose
   * cached entries the caller must invalidate.
   */
  renewDatabaseFiles(db: string): string[] {
    const names: string[] = [];
    for (const kind of ["database", "journal", "wal", "shm"] as const) {
      this.#nodes.renew(db, kind);
      names.push(db + SUFFIX_OF_KIND[kind]);
    }
    return names;
  }

  #hasHandles(nodeId: number): boolean {
    for (const file of this.#handles.values()) if (file.node?.nodeId === nodeId) return true;
    return false;
  }

  #openReply(node: DatabaseNode, flags: number, pid: number): OpenReply {
    const virtual = node.kind === "pos" || node.kind === "lock";
    return this.#newHandle({ node, flags, pid }, virtual ? { directIo: true } : { keepCache: true });
  }

  #isLockHelper(pid: number): boolean {
    const helper = this.#lockHelperPid();
    return helper !== null && helper === pid;
  }

  /**
   * True when a local connection uses the database's `-shm`: it holds a lock on it (the default mode:
   * every connection holds DMS), or — with kernel locks — has it open (the lock helper excepted).
   * The replica applier removes `-wal` and `-shm` only when this is false.
   */
  shmInUse(db: string): boolean {
    if (!this.kernelLocks) return this.locks.shmInUse(db);
    const helper = this.#lockHelperPid();
    for (const file of this.#handles.values()) {
      if (file.node?.kind === "shm" && file.node.db === db && file.pid !== helper) return true;
    }
    return false;
  }

  #newHandle(file: OpenFile, reply: Omit<OpenReply, "fh">): OpenReply {
    const fh = this.#nextFh++;
    this.#handles.set(fh, file);
    return { fh, ...reply };
  }

  /**
   * A rollback-journal database without a journal may be opened read-write on a replica: the
   * connection's writes are refused when it creates the journal (replica-access.ts), and it can write
   * once this node is promoted, without reopening.
   */
  #opensWritableOnReplica(name: string): boolean {
    const db = this.#store.db(name);
    return db !== undefined && !db.walMode && !db.exists("journal");
  }

  #exists(db: Database, kind: MountFileKind): boolean {
    switch (kind) {
      case "database":
        return db.exists("database");
      case "pos":
      case "lock":
        return db.exists("database") || db.pos.txid > 0n;
      default:
        return db.exists(kind);
    }
  }

  #node(nodeId: number): DatabaseNode {
    const node = this.#nodes.byId(nodeId);
    if (node === undefined) throw new FuseError(nodeId === ROOT_NODE_ID ? "EISDIR" : "ENOENT");
    return node;
  }

  #mustDb(node: DatabaseNode): Database {
    const db = this.#store.db(node.db);
    if (db === undefined) throw new FuseError("ENOENT");
    return db;
  }

  #name(node: DatabaseNode): string {
    return node.db + SUFFIX_OF_KIND[node.kind];
  }

  #entry(nodeId: number, attr: FileAttributes): Entry {
    if (nodeId !== LAG_NODE_ID && nodeId !== PRIMARY_NODE_ID) this.#nodes.looked(nodeId);
    return { nodeId, generation: 0, attr };
  }

  #attrOf(nodeId: number): FileAttributes {
    if (nodeId === ROOT_NODE_ID) return this.#attrs.root();
    if (nodeId === LAG_NODE_ID) return this.#attrs.lag(this.#lagText());
    if (nodeId === PRIMARY_NODE_ID) return this.#attrs.primary(this.#primaryText() ?? "");
    return this.#attr(this.#node(nodeId));
  }

  #lockFileTarget(node: DatabaseNode): string | undefined {
    if (node.kind !== "lock" || this.#lockFileDir === undefined) return undefined;
    return `${this.#lockFileDir}/${node.db}${SUFFIX_OF_KIND.lock}`;
  }

  #attr(node: DatabaseNode): FileAttributes {
    const target = this.#lockFileTarget(node);
    if (target !== undefined) return this.#attrs.symlink(node.nodeId, Buffer.byteLength(target));
    if (node.kind === "pos" || node.kind === "lock") return this.#attrs.virtualFile(node.nodeId, node.kind);
    const orphan = this.#orphans.get(node.nodeId);
    if (orphan !== undefined) {
      return this.#attrs.backed(node.nodeId, fs.fstatSync(orphan), modeOf(node.kind, this.#role()));
    }
    const st = this.#mustDb(node).files.stat(node.kind);
    return this.#attrs.backed(node.nodeId, st, modeOf(node.kind, this.#role()));
  }

  #lagText(): string {
    return formatLag(this.#lagMs());
  }

  /**
   * `.primary`'s content, or null when the file does not exist (on a primary, or primary unknown). A
   * primary handing its lease off (`writesClosing`) shows the node it goes to, when it knows it.
   */
  #primaryText(): string | null {
    if (this.#role() !== "replica" && !this.#writesClosing()) return null;
    const host = this.#primaryHostname();
    return host === null ? null : host + "\n";
  }

  /**
   * Throws the errno replica-access.ts gives `change` when this node may not make it: on a replica
   * (without its HALT lock), and on a primary whose writes close for a handoff (`writesClosing`) when the
   * change would start a write transaction — creating a database or a journal, the first write to a
   * journal or to the WAL after a commit. A transaction already writing (commit-gate.ts
   * `localWriterActive`) goes on to its commit point either way; database writes of a primary pass
   * (a transaction in flight, or a checkpoint).
   */
  #refuseChange(change: FileChange, node: { kind: MountFileKind; db: string }): void {
    let why: string;
    if (this.#role() === "replica") {
      if (this.#halt?.mayWriteOnReplica(node.db) === true) return;
      if (change !== "open-for-write" && change !== "create" && this.#gate.localWriterActive(node.db)) return;
      if (change === "open-for-write" && node.kind === "database" && this.#opensWritableOnReplica(node.db)) {
        return;
      }
      why = "this node is a read-only replica";
    } else {
      if (!this.#writesClosing()) return;
      const starts =
        change === "create"
          ? node.kind === "database" || node.kind === "journal"
          : change === "write" &&
            (node.kind === "journal" || node.kind === "wal") &&
            !this.#gate.localWriterActive(node.db);
      if (!starts) return;
      why = "this node is handing its lease off; write on the next primary";
    }
    const errno = replicaRefusal(change, node.kind);
    if (errno !== null) throw new FuseError(errno, `${node.db + SUFFIX_OF_KIND[node.kind]}: ${why}`);
  }

  /** Runs a store call, answering its errors with the errno of errno-map.ts. */
  #call<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw toFuseError(err);
    }
  }
}

function slice(text: string, offset: number, size: number): Uint8Array {
  const bytes = Buffer.from(text, "latin1");
  return bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + size, bytes.length));
}
