// The second, tiny mount that keeps `<db>-lock` files answering fcntl locks in kernel-locks mode.
//
// Why a second mount: FUSE_POSIX_LOCKS is negotiated once per connection. In kernel-locks mode the main
// mount leaves every fcntl lock to the kernel (that is what makes SQLite fast through it), so a client's
// HALT lock — a write lock on byte 72 of `<db>-lock`, LiteFS's way (halt-hooks.ts) — would be granted by
// the kernel without the node ever hearing of it. So in that mode `<db>-lock` in the main mount is a
// symbolic link to `<lock dir>/<db>-lock`, a file of this mount, which is mounted WITH FUSE_POSIX_LOCKS:
// open() follows the link, and every fcntl on the descriptor comes here. The locks go to the main mount's
// lock table of `<db>-lock` and its HALT hooks — the same ones `POST /halt` and the node's own locks use
// (node-locks.ts routes lock-file spans to that table) — so both ways of taking the HALT lock see each other.
//
// The mount holds nothing else: a flat directory with one empty `<db>-lock` file per database the store
// knows, readable and lockable by anyone, on a replica too (a write lock needs a writable descriptor).
// Writes and resizes are refused. Node ids and handles are never reused while the mount is up.

import fs from "node:fs";
import path from "node:path";

import { FuseError } from "../fuse/errors.js";
import type {
  AttrReply,
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
} from "../fuse/file-system.js";
import type { DirectoryListing } from "../fuse/directory-listing.js";
import { FuseSession } from "../fuse/session.js";
import type { StoreLogger } from "../store/store-logger.js";
import type { MountHaltHooks } from "./halt-hooks.js";
import { FILE_MODE, MountAttributes, ROOT_MODE } from "./mount-attributes.js";
import { LockRefusedError, type MountLocks } from "./mount-locks.js";
import { type DatabaseNode, ROOT_NODE_ID, SUFFIX_OF_KIND } from "./node-table.js";

const LOCK_SUFFIX = SUFFIX_OF_KIND.lock;
/**
 * Handles of this mount start here, far above the main mount's: the HALT hooks keep the owners that
 * locked through a handle by handle number (halt-hooks.ts `handleReleased`).
 */
const FIRST_HANDLE = 2 ** 40;

export interface LockFileSystemOptions {
  /** The main mount's lock tables: the table of `<db>-lock` is shared with the node's own HALT locks. */
  readonly locks: MountLocks;
  /** HALT hooks; without them the files are plain lock files. */
  readonly halt?: MountHaltHooks;
  /** Names of the databases the store knows now. */
  readonly databases: () => readonly string[];
}

export class LockFileSystem implements FuseFileSystem {
  readonly #locks: MountLocks;
  readonly #halt: MountHaltHooks | undefined;
  readonly #databases: () => readonly string[];
  readonly #attrs = new MountAttributes();
  readonly #idOf = new Map<string, number>();
  readonly #dbOf = new Map<number, string>();
  /** Open handle → database. */
  readonly #handles = new Map<number, string>();
  #nextNodeId = ROOT_NODE_ID + 1;
  #nextFh = FIRST_HANDLE;

  constructor(opts: LockFileSystemOptions) {
    this.#locks = opts.locks;
    this.#halt = opts.halt;
    this.#databases = opts.databases;
  }

  /** The path, relative to this mount's root, of `db`'s lock file. */
  static fileName(db: string): string {
    return db + LOCK_SUFFIX;
  }

  lookup(_ctx: RequestContext, parent: number, name: string): Entry | null {
    if (parent !== ROOT_NODE_ID) throw new FuseError("ENOENT");
    if (!name.endsWith(LOCK_SUFFIX)) return null;
    const db = name.slice(0, -LOCK_SUFFIX.length);
    if (!this.#databases().includes(db)) return null;
    const nodeId = this.#nodeIdOf(db);
    return { nodeId, generation: 0, attr: this.#fileAttr(nodeId) };
  }

  getattr(_ctx: RequestContext, nodeId: number): AttrReply {
    if (nodeId === ROOT_NODE_ID) return { attr: this.#attrs.root() };
    this.#db(nodeId);
    return { attr: this.#fileAttr(nodeId) };
  }

  setattr(_ctx: RequestContext, nodeId: number, changes: SetattrChanges): AttrReply {
    const db = this.#db(nodeId);
    // open(O_TRUNC) of the empty file asks for size 0: nothing changes. Anything else is refused.
    if (changes.size !== undefined && changes.size !== 0) {
      throw new FuseError("EPERM", `${LockFileSystem.fileName(db)} cannot be resized`);
    }
    return { attr: this.#fileAttr(nodeId) };
  }

  access(): void {
    // Anyone may open a lock file for reading and writing: the HALT lock needs a writable descriptor.
  }

  readdir(_ctx: RequestContext, nodeId: number, _fh: number, offset: number, out: DirectoryListing): void {
    if (nodeId !== ROOT_NODE_ID) throw new FuseError("ENOTDIR");
    const entries = [
      { name: ".", ino: ROOT_NODE_ID, mode: ROOT_MODE },
      { name: "..", ino: ROOT_NODE_ID, mode: ROOT_MODE },
      ...this.#databases().map((db) => ({
        name: LockFileSystem.fileName(db),
        ino: this.#nodeIdOf(db),
        mode: FILE_MODE,
      })),
    ];
    for (let i = offset; i < entries.length; i++) {
      if (!out.add(entries[i].name, entries[i], i + 1)) break;
    }
  }

  statfs(): StatfsReply {
    return { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 };
  }

  open(_ctx: RequestContext, nodeId: number): OpenReply {
    const db = this.#db(nodeId);
    const fh = this.#nextFh++;
    this.#handles.set(fh, db);
    return { fh, directIo: true };
  }

  read(): Uint8Array {
    return new Uint8Array(0);
  }

  write(_ctx: RequestContext, nodeId: number): number {
    throw new FuseError("EACCES", `${LockFileSystem.fileName(this.#db(nodeId))} is not writable`);
  }

  flush(_ctx: RequestContext, nodeId: number, _fh: number, lockOwner: bigint): void {
    this.#releaseOwner(nodeId, lockOwner);
  }

  release(_ctx: RequestContext, nodeId: number, fh: number, info: ReleaseInfo): void {
    const db = this.#handles.get(fh);
    this.#handles.delete(fh);
    if (info.lockOwner !== undefined) this.#releaseOwner(nodeId, info.lockOwner);
    if (db !== undefined) this.#halt?.handleReleased(db, fh, this.#locks.tableOf(db, "lock"));
  }

  getlk(_ctx: RequestContext, nodeId: number, lock: LockRequest): FileLock | null {
    return this.#locks.getlk(this.#lockNode(nodeId), lock);
  }

  setlk(ctx: RequestContext, nodeId: number, lock: LockRequest): void | Promise<void> {
    const node = this.#lockNode(nodeId);
    try {
      if (this.#halt !== undefined) {
        return this.#halt.setlk(ctx, node.db, lock, this.#locks.tableOf(node.db, "lock"));
      }
      return this.#locks.setlk(ctx, node, lock);
    } catch (err) {
      if (err instanceof LockRefusedError) throw new FuseError("EAGAIN");
      throw err;
    }
  }

  #releaseOwner(nodeId: number, owner: bigint): void {
    const db = this.#dbOf.get(nodeId);
    if (db === undefined) return;
    this.#locks.releaseOwner({ nodeId, db, kind: "lock" }, owner);
    this.#halt?.ownerReleased(db, this.#locks.tableOf(db, "lock"));
  }

  #lockNode(nodeId: number): DatabaseNode {
    return { nodeId, db: this.#db(nodeId), kind: "lock" };
  }

  #nodeIdOf(db: string): number {
    let nodeId = this.#idOf.get(db);
    if (nodeId === undefined) {
      nodeId = this.#nextNodeId++;
      this.#idOf.set(db, nodeId);
      this.#dbOf.set(nodeId, db);
    }
    return nodeId;
  }

  #db(nodeId: number): string {
    const db = this.#dbOf.get(nodeId);
    if (db === undefined) throw new FuseError(nodeId === ROOT_NODE_ID ? "EISDIR" : "ENOENT");
    return db;
  }

  #fileAttr(nodeId: number): FileAttributes {
    return this.#attrs.virtualFile(nodeId, "lock");
  }
}

/** Where a node's lock-file mount goes: `<data dir>/locks` (absolute: the links in the main mount name it). */
export function lockFileDirOf(dataDir: string): string {
  return path.resolve(dataDir, "locks");
}

/**
 * Mounts a LockFileSystem at `dir` (created if missing; a stale mount left there by a killed node is
 * cleared first), with FUSE_POSIX_LOCKS so that every fcntl lock reaches it.
 */
export async function mountLockFiles(
  opts: LockFileSystemOptions & {
    readonly dir: string;
    readonly allowOther: boolean;
    readonly log: StoreLogger;
  },
): Promise<FuseSession> {
  try {
    fs.mkdirSync(opts.dir, { recursive: true });
  } catch {
    // A dead mount there answers ENOTCONN: FuseSession.mount clears it, then checks the directory.
  }
  return FuseSession.mount(new LockFileSystem(opts), {
    mountpoint: opts.dir,
    fsName: "litefs-locks",
    allowOther: opts.allowOther,
    posixLocks: true,
    onError: (err, where) =>
      opts.log.error("FUSE request on the lock-file mount failed", {
        op: where.opcode,
        error: err instanceof Error ? err.message : String(err),
      }),
  });
}
