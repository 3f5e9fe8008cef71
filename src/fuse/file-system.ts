// The interface a file system implements to be served by a FuseSession: a low-level, inode-based API
// close to the kernel's requests. Every handler is optional; a missing one answers ENOSYS (except the
// few with a harmless default, noted below).
//
// Contracts common to all handlers:
// - A handler returns its result directly (the reply is written before the next request is read: the
//   fast path) or a Promise of it (the session keeps reading and answering other requests meanwhile;
//   replies go out in whatever order promises settle). Use promises for anything slow: fsync, waits
//   on the network, lock waits.
// - To fail, throw (or reject with) a FuseError("ENOENT"), a Node fs error, or any error whose
//   `code`/`errno` is an errno name. Other errors are answered EIO and reported to `onError`.
// - Node ids and file handles are JS numbers chosen by the file system: positive safe integers (node
//   id 1 is the root, FUSE_ROOT_ID). Offsets and sizes are numbers. Lock owners and lock ranges are
//   bigint, exact to the bit.
// - `ctx.signal` aborts when the kernel interrupts the request (the calling process got a signal). It
//   may already be aborted when the handler is called. Only SETLKW must honour it (answer EINTR);
//   other handlers may use it to stop early.
// - Buffers passed in (`write`'s data) belong to the session: they stay valid until the handler
//   returns or its promise settles, and must not be kept longer. Buffers returned (`read`'s data) are
//   written to the kernel at once and not kept.

import type { DirectoryListing, DirectoryPlusListing } from "./directory-listing.js";

export type MaybePromise<T> = T | Promise<T>;

export interface RequestContext {
  /** The kernel's id of this request. */
  readonly unique: number;
  /** Credentials and process of the caller (thread group id). */
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  /** Aborted when the kernel interrupts this request (INTERRUPT). Created on first access. */
  readonly signal: AbortSignal;
}

/** Attributes of a file, shaped like fs.Stats so that a Stats object can be returned as is. */
export interface FileAttributes {
  /** st_ino as seen by stat() through the mount (need not equal the node id). */
  ino: number;
  size: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** File type and permission bits (S_IFREG | 0o644, …). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

/** The answer to LOOKUP, MKNOD, MKDIR and CREATE: a name now refers to `nodeId`. */
export interface Entry {
  /** The node id the kernel will use in requests on this file. Each Entry returned counts one lookup. */
  nodeId: number;
  /** nodeId + generation must be unique over the file system's life; 0 when node ids are never reused. */
  generation?: number;
  attr: FileAttributes;
  /** How long the kernel may cache the name → node mapping; default: the session's entryTimeoutMs. */
  entryTimeoutMs?: number;
  /** How long the kernel may cache `attr`; default: the session's attrTimeoutMs. */
  attrTimeoutMs?: number;
}

export interface AttrReply {
  attr: FileAttributes;
  /** Default: the session's attrTimeoutMs. */
  attrTimeoutMs?: number;
}

/** The answer to OPEN and OPENDIR: a file handle and how the kernel should cache this open file. */
export interface OpenReply {
  /** A number the kernel passes back in every request on this open file. */
  fh: number;
  /** Bypass the page cache: every read and write reaches the file system. */
  directIo?: boolean;
  /** Keep the page cache of this file across opens (the data did not change behind the kernel). */
  keepCache?: boolean;
  nonSeekable?: boolean;
  /** OPENDIR: let the kernel cache the directory listing. */
  cacheDir?: boolean;
  /** Do not send FLUSH on close. Do not use with POSIX locks: FLUSH is what drops them on close(). */
  noFlush?: boolean;
  /** With directIo: allow several writes on this file to be in flight at once. */
  parallelDirectWrites?: boolean;
}

export type CreateReply = Entry & OpenReply;

export interface StatfsReply {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** Changes requested by SETATTR; a field is present only when the kernel asked to change it. */
export interface SetattrChanges {
  /** The open file the change came through (ftruncate, futimens), when the kernel said. */
  fh?: number;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Milliseconds since the epoch, or "now". */
  atimeMs?: number | "now";
  mtimeMs?: number | "now";
  ctimeMs?: number;
  lockOwner?: bigint;
  /** The kernel asks the file system to clear set-user/group-id bits (HANDLE_KILLPRIV only). */
  killSuidgid: boolean;
}

export interface ReadInfo {
  /** Open flags of the file (O_RDONLY, O_DIRECT, …). */
  flags: number;
  lockOwner: bigint | undefined;
}

export interface WriteInfo {
  /** Open flags of the file. */
  flags: number;
  lockOwner: bigint | undefined;
  /** Delayed write-back of the page cache (e.g. a shared mmap): `fh` is one of the file's handles. */
  fromCache: boolean;
}

export interface ReleaseInfo {
  /** Open flags of the file. */
  flags: number;
  /** Set when the kernel asks to drop the flock() locks of this owner (FUSE_RELEASE_FLOCK_UNLOCK). */
  lockOwner: bigint | undefined;
  /** The release also stands for a flush (FUSE_RELEASE_FLUSH). */
  flush: boolean;
}

/** A POSIX record lock range, inclusive, as the kernel sends it: 0 ≤ start ≤ end ≤ OFFSET_MAX. */
export interface FileLock {
  start: bigint;
  /** Inclusive; OFFSET_MAX (2^63 − 1) means "to end of file". Never larger. */
  end: bigint;
  type: "read" | "write" | "unlock";
  /** Process id (thread group) of the requester or, in a GETLK answer, of the holder. */
  pid: number;
}

/** GETLK, SETLK and SETLKW. */
export interface LockRequest extends FileLock {
  fh: number;
  /**
   * The kernel's 64-bit lock owner: one per process (files_struct) for fcntl(F_SETLK) locks, one per
   * open file description for OFD locks (F_OFD_SETLK) — which therefore arrive as ordinary SETLKs.
   * FLUSH carries the process owner on every close(); OFD owners are dropped on RELEASE of the handle.
   */
  owner: bigint;
  /** SETLKW: wait for the lock (until granted or `ctx.signal` aborts: answer EINTR). */
  wait: boolean;
}

/** What INIT negotiated; handed to `init` and available as `session.connection`. */
export interface ConnectionInfo {
  protocolMajor: number;
  protocolMinor: number;
  /** Flags the kernel offered and flags the session accepted (bits of fuse_init flags | flags2 << 32). */
  kernelFlags: bigint;
  acceptedFlags: bigint;
  maxWrite: number;
  maxReadahead: number;
  maxPages: number;
  posixLocks: boolean;
  readdirplus: boolean;
  directIoAllowMmap: boolean;
  writebackCache: boolean;
}

export interface FuseFileSystem {
  /** After INIT was negotiated, before the reply: the mount waits for this. */
  init?(connection: ConnectionInfo): MaybePromise<void>;
  /** Once, when the session ends (DESTROY, unmount or a lost connection). */
  destroy?(): MaybePromise<void>;

  /** `name` in directory `parent`: an Entry, or null for "does not exist" (cached as a negative entry
   *  for the session's negativeTimeoutMs; 0 answers ENOENT). */
  lookup?(ctx: RequestContext, parent: number, name: string): MaybePromise<Entry | null>;
  /** The kernel dropped `nlookup` references to `nodeId` (FORGET and BATCH_FORGET). Never answered. */
  forget?(nodeId: number, nlookup: number): void;
  getattr?(ctx: RequestContext, nodeId: number, fh: number | undefined): MaybePromise<AttrReply>;
  setattr?(ctx: RequestContext, nodeId: number, changes: SetattrChanges): MaybePromise<AttrReply>;
  access?(ctx: RequestContext, nodeId: number, mask: number): MaybePromise<void>;
  /** The target of the symbolic link `nodeId` (its attributes' mode must say S_IFLNK). */
  readlink?(ctx: RequestContext, nodeId: number): MaybePromise<string>;

  mknod?(
    ctx: RequestContext,
    parent: number,
    name: string,
    mode: number,
    rdev: number,
    umask: number,
  ): MaybePromise<Entry>;
  mkdir?(ctx: RequestContext, parent: number, name: string, mode: number, umask: number): MaybePromise<Entry>;
  unlink?(ctx: RequestContext, parent: number, name: string): MaybePromise<void>;
  rmdir?(ctx: RequestContext, parent: number, name: string): MaybePromise<void>;
  /** RENAME (flags 0) and RENAME2 (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2, RENAME_WHITEOUT 4). */
  rename?(
    ctx: RequestContext,
    parent: number,
    name: string,
    newParent: number,
    newName: string,
    flags: number,
  ): MaybePromise<void>;

  /** `flags` are the open(2) flags; with ATOMIC_O_TRUNC negotiated O_TRUNC arrives here, not as SETATTR. */
  open?(ctx: RequestContext, nodeId: number, flags: number): MaybePromise<OpenReply>;
  create?(
    ctx: RequestContext,
    parent: number,
    name: string,
    mode: number,
    flags: number,
    umask: number,
  ): MaybePromise<CreateReply>;
  /** Up to `size` bytes at `offset`; fewer means end of file. */
  read?(
    ctx: RequestContext,
    nodeId: number,
    fh: number,
    offset: number,
    size: number,
    info: ReadInfo,
  ): MaybePromise<Uint8Array>;
  /** Returns the number of bytes written. */
  write?(
    ctx: RequestContext,
    nodeId: number,
    fh: number,
    offset: number,
    data: Buffer,
    info: WriteInfo,
  ): MaybePromise<number>;
  /** On every close() of a descriptor: drop the POSIX locks of `lockOwner` on this file. Default: ENOSYS. */
  flush?(ctx: RequestContext, nodeId: number, fh: number, lockOwner: bigint): MaybePromise<void>;
  /** Last close of an open file description. Default: success. */
  release?(ctx: RequestContext, nodeId: number, fh: number, info: ReleaseInfo): MaybePromise<void>;
  fsync?(ctx: RequestContext, nodeId: number, fh: number, datasync: boolean): MaybePromise<void>;
  fallocate?(
    ctx: RequestContext,
    nodeId: number,
    fh: number,
    offset: number,
    length: number,
    mode: number,
  ): MaybePromise<void>;
  /** SEEK_DATA (3) / SEEK_HOLE (4) (the kernel handles SEEK_SET/CUR/END itself); returns the offset. */
  lseek?(
    ctx: RequestContext,
    nodeId: number,
    fh: number,
    offset: number,
    whence: number,
  ): MaybePromise<number>;

  /** Default: success with fh 0. */
  opendir?(ctx: RequestContext, nodeId: number, flags: number): MaybePromise<OpenReply>;
  /** Adds entries from cookie `offset` on (0 = start) until `out.add` returns false or the end. */
  readdir?(
    ctx: RequestContext,
    nodeId: number,
    fh: number,
    offset: number,
    out: DirectoryListing,
  ): MaybePromise<void>;
  /** Like readdir with an Entry per name; each accepted entry with a node id counts one lookup. */
  readdirplus?(
    ctx: RequestContext,
    nodeId: number,
    fh: number,
    offset: number,
    out: DirectoryPlusListing,
  ): MaybePromise<void>;
  /** Default: success. */
  releasedir?(ctx: RequestContext, nodeId: number, fh: number, flags: number): MaybePromise<void>;
  fsyncdir?(ctx: RequestContext, nodeId: number, fh: number, datasync: boolean): MaybePromise<void>;
  /** Default: a file system of zero blocks with 255-byte names. */
  statfs?(ctx: RequestContext, nodeId: number): MaybePromise<StatfsReply>;

  /** F_GETLK: the first conflicting lock of another owner, or null when the request could be granted. */
  getlk?(ctx: RequestContext, nodeId: number, lock: LockRequest): MaybePromise<FileLock | null>;
  /** F_SETLK / F_SETLKW (lock.wait). POSIX locks are negotiated only when `setlk` is implemented;
   *  without it the kernel keeps locks itself. Conflicts answer EAGAIN. */
  setlk?(ctx: RequestContext, nodeId: number, lock: LockRequest): MaybePromise<void>;
}
