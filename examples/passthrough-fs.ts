// A passthrough file system: every request is carried out on a real directory (`root`). The example
// of the FUSE library, and the file system its tests and benchmarks mount.
//
// - Local-disk work uses synchronous fs calls: they are the fastest for a page-cache hit and the
//   session replies before reading the next request. Only fsync and fsyncdir go to the thread pool
//   (they can take milliseconds) and return promises.
// - File handles are the underlying file descriptors. Directory handles index a listing snapshot
//   taken at OPENDIR (with ".", ".." and each entry's stat), so READDIR cookies are stable.
// - POSIX locks are answered here from one LockTable per node: FLUSH drops the closing process's
//   locks (close() semantics), RELEASE drops every owner that locked through that handle (the open
//   file description is gone, so only its OFD locks can remain), SETLKW waits until granted or
//   interrupted (EINTR).
// - Node has no mknod, fallocate or lseek(SEEK_DATA/SEEK_HOLE): MKNOD makes regular files only;
//   FALLOCATE sets sizes, zeroes ranges reaching EOF by truncating and writes zeros only inside a
//   file (at most 64 MiB, else EOPNOTSUPP; no blocks are reserved); LSEEK treats the whole file as
//   data, as file systems without hole support do.
// - Create modes are applied minus this process's umask; the CLI runs with umask 0 so that the mode
//   the kernel sends (already masked by the caller's umask) is the mode the file gets.

import * as fs from "node:fs";
import * as path from "node:path";
import {
  type AttrReply,
  type CreateReply,
  type DirectoryListing,
  type DirectoryPlusListing,
  type Entry,
  type FileLock,
  type FuseFileSystem,
  type LockRequest,
  type OpenReply,
  type ReleaseInfo,
  type RequestContext,
  type SetattrChanges,
  type StatfsReply,
  type WriteInfo,
  FuseError,
} from "../src/fuse/index.js";
import { LockTable } from "../src/fuse/lock-table.js";
import { InodeTable } from "./passthrough-inodes.js";

export interface PassthroughOptions {
  /** Bypass the page cache (FOPEN_DIRECT_IO) on every open file. Default false. */
  directIo?: boolean;
  /** Keep the page cache across opens (FOPEN_KEEP_CACHE); right when only the mount changes files. Default true. */
  keepCache?: boolean;
}

const O_DIRECT = 0o40000;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;
const RENAME_NOREPLACE = 1;
/** Most zeros FALLOCATE writes into the middle of a file (Node.js cannot punch holes). */
const MAX_ZERO_WRITE = 64 << 20;

interface DirEntrySnapshot {
  name: string;
  st: fs.Stats;
}

export class PassthroughFileSystem implements FuseFileSystem {
  readonly root: string;
  readonly #nodes: InodeTable;
  readonly #directIo: boolean;
  readonly #keepCache: boolean;
  readonly #dirs = new Map<number, DirEntrySnapshot[]>();
  #nextDirHandle = 1;
  readonly #locks = new Map<number, LockTable>();
  /** Lock owners that set locks through each file handle (released with the handle). */
  readonly #ownersByHandle = new Map<number, Set<bigint>>();
  /** Reused for synchronous READ replies: the session writes the reply before the next request. */
  #readBuffer = Buffer.allocUnsafe(128 * 1024);

  constructor(root: string, options: PassthroughOptions = {}) {
    this.root = path.resolve(root);
    const st = fs.statSync(this.root);
    if (!st.isDirectory()) throw new Error(`passthrough root ${this.root} is not a directory`);
    this.#nodes = new InodeTable(this.root, st);
    this.#directIo = options.directIo === true;
    this.#keepCache = options.keepCache !== false;
  }

  /** Nodes the kernel holds references to (plus the root): for tests of FORGET accounting. */
  get nodeCount(): number {
    return this.#nodes.size;
  }

  lookup(_ctx: RequestContext, parent: number, name: string): Entry | null {
    const p = path.join(this.#nodes.pathOf(parent), name);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) return null;
    return this.#entry(p, st);
  }

  forget(nodeId: number, nlookup: number): void {
    this.#nodes.forget(nodeId, nlookup);
    const table = this.#locks.get(nodeId);
    if (table !== undefined && table.isEmpty) this.#locks.delete(nodeId);
  }

  getattr(_ctx: RequestContext, nodeId: number, fh: number | undefined): AttrReply {
    if (fh !== undefined) return { attr: fs.fstatSync(fh) };
    const at = this.#nodes.locate(nodeId);
    return { attr: "fd" in at ? fs.fstatSync(at.fd) : fs.lstatSync(at.path) };
  }

  setattr(_ctx: RequestContext, nodeId: number, c: SetattrChanges): AttrReply {
    const at = c.fh !== undefined ? { fd: c.fh } : this.#nodes.locate(nodeId);
    const fh = "fd" in at ? at.fd : undefined;
    const p = "path" in at ? at.path : undefined;
    if (c.mode !== undefined) {
      if (fh === undefined) fs.chmodSync(p!, c.mode & 0o7777);
      else fs.fchmodSync(fh, c.mode & 0o7777);
    }
    if (c.uid !== undefined || c.gid !== undefined) {
      const uid = c.uid ?? -1;
      const gid = c.gid ?? -1;
      if (fh === undefined) fs.lchownSync(p!, uid, gid);
      else fs.fchownSync(fh, uid, gid);
    }
    if (c.size !== undefined) {
      if (fh === undefined) fs.truncateSync(p!, c.size);
      else fs.ftruncateSync(fh, c.size);
    }
    if (c.atimeMs !== undefined || c.mtimeMs !== undefined) {
      const now = Date.now();
      const cur = fh === undefined ? fs.lstatSync(p!) : fs.fstatSync(fh);
      const atime = c.atimeMs === "now" ? now : (c.atimeMs ?? cur.atimeMs);
      const mtime = c.mtimeMs === "now" ? now : (c.mtimeMs ?? cur.mtimeMs);
      if (fh === undefined) fs.lutimesSync(p!, atime / 1000, mtime / 1000);
      else fs.futimesSync(fh, atime / 1000, mtime / 1000);
    }
    return { attr: fh === undefined ? fs.lstatSync(p!) : fs.fstatSync(fh) };
  }

  access(_ctx: RequestContext, nodeId: number, mask: number): void {
    fs.accessSync(this.#nodes.pathOf(nodeId), mask);
  }

  mknod(
    _ctx: RequestContext,
    parent: number,
    name: string,
    mode: number,
    _rdev: number,
    _umask: number,
  ): Entry {
    if ((mode & fs.constants.S_IFMT) !== fs.constants.S_IFREG) {
      throw new FuseError("EPERM", "this passthrough makes regular files only (Node.js has no mknod)");
    }
    const p = path.join(this.#nodes.pathOf(parent), name);
    fs.closeSync(
      fs.openSync(p, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, mode & 0o7777),
    );
    return this.#entry(p, fs.lstatSync(p));
  }

  mkdir(_ctx: RequestContext, parent: number, name: string, mode: number, _umask: number): Entry {
    const p = path.join(this.#nodes.pathOf(parent), name);
    fs.mkdirSync(p, mode & 0o7777);
    return this.#entry(p, fs.lstatSync(p));
  }

  unlink(_ctx: RequestContext, parent: number, name: string): void {
    const p = path.join(this.#nodes.pathOf(parent), name);
    const st = fs.lstatSync(p);
    fs.unlinkSync(p);
    this.#nodes.unlinked(st);
  }

  rmdir(_ctx: RequestContext, parent: number, name: string): void {
    const p = path.join(this.#nodes.pathOf(parent), name);
    const st = fs.lstatSync(p);
    fs.rmdirSync(p);
    this.#nodes.unlinked(st);
  }

  rename(
    _ctx: RequestContext,
    parent: number,
    name: string,
    newParent: number,
    newName: string,
    flags: number,
  ): void {
    const from = path.join(this.#nodes.pathOf(parent), name);
    const to = path.join(this.#nodes.pathOf(newParent), newName);
    if ((flags & ~RENAME_NOREPLACE) !== 0)
      throw new FuseError("EINVAL", `rename flags ${flags} (only NOREPLACE)`);
    const replaced = fs.lstatSync(to, { throwIfNoEntry: false });
    if (replaced !== undefined && flags & RENAME_NOREPLACE) throw new FuseError("EEXIST");
    fs.renameSync(from, to);
    if (replaced !== undefined) this.#nodes.unlinked(replaced);
    this.#nodes.renamed(from, to);
  }

  open(_ctx: RequestContext, nodeId: number, flags: number): OpenReply {
    // An unlinked file can still be opened again (open of /proc/PID/fd/N): reopen it the same way.
    const at = this.#nodes.locate(nodeId);
    const fd = fs.openSync("path" in at ? at.path : `/proc/self/fd/${at.fd}`, flags & ~O_DIRECT);
    return this.#openReply(nodeId, fd);
  }

  create(
    _ctx: RequestContext,
    parent: number,
    name: string,
    mode: number,
    flags: number,
    _umask: number,
  ): CreateReply {
    const p = path.join(this.#nodes.pathOf(parent), name);
    const fd = fs.openSync(p, (flags & ~O_DIRECT) | fs.constants.O_CREAT, mode & 0o7777);
    try {
      const entry = this.#entry(p, fs.fstatSync(fd));
      return { ...entry, ...this.#openReply(entry.nodeId, fd) };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  read(_ctx: RequestContext, _nodeId: number, fh: number, offset: number, size: number): Uint8Array {
    if (this.#readBuffer.length < size) this.#readBuffer = Buffer.allocUnsafe(size);
    const n = fs.readSync(fh, this.#readBuffer, 0, size, offset);
    return this.#readBuffer.subarray(0, n);
  }

  write(
    _ctx: RequestContext,
    _nodeId: number,
    fh: number,
    offset: number,
    data: Buffer,
    _info: WriteInfo,
  ): number {
    return fs.writeSync(fh, data, 0, data.length, offset);
  }

  flush(_ctx: RequestContext, nodeId: number, _fh: number, lockOwner: bigint): void {
    this.#locks.get(nodeId)?.releaseOwner(lockOwner);
  }

  release(_ctx: RequestContext, nodeId: number, fh: number, info: ReleaseInfo): void {
    const table = this.#locks.get(nodeId);
    const owners = this.#ownersByHandle.get(fh);
    this.#ownersByHandle.delete(fh);
    if (table !== undefined) {
      for (const owner of owners ?? []) table.releaseOwner(owner);
      if (info.lockOwner !== undefined) table.releaseOwner(info.lockOwner);
    }
    // The kernel holds its node while a file is open, so the node is still there.
    this.#nodes.get(nodeId).handles.delete(fh);
    fs.closeSync(fh);
  }

  fsync(_ctx: RequestContext, _nodeId: number, fh: number, datasync: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      (datasync ? fs.fdatasync : fs.fsync)(fh, (err) => (err ? reject(err) : resolve()));
    });
  }

  fallocate(
    _ctx: RequestContext,
    _nodeId: number,
    fh: number,
    offset: number,
    length: number,
    mode: number,
  ): void {
    const size = fs.fstatSync(fh).size;
    const end = offset + length;
    const keepSize = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
    if (mode === 0 || mode === FALLOC_FL_KEEP_SIZE) {
      if (!keepSize && end > size) fs.ftruncateSync(fh, end);
      return;
    }
    if (
      mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) ||
      (mode & ~FALLOC_FL_KEEP_SIZE) === FALLOC_FL_ZERO_RANGE
    ) {
      // Past EOF there is nothing to zero: a range reaching EOF is cut off and the size restored (or
      // extended), which leaves a hole instead of writing zeros — the caller picks the range, and
      // writing gibibytes of zeros on this thread would stall the mount and fill the disk.
      if (end >= size) {
        if (offset < size) fs.ftruncateSync(fh, offset);
        fs.ftruncateSync(fh, keepSize ? size : Math.max(size, end));
        return;
      }
      if (end - offset > MAX_ZERO_WRITE) {
        throw new FuseError(
          "EOPNOTSUPP",
          `zeroing ${end - offset} bytes inside a file (at most ${MAX_ZERO_WRITE})`,
        );
      }
      writeZeros(fh, offset, end);
      return;
    }
    throw new FuseError("EOPNOTSUPP", `fallocate mode ${mode}`);
  }

  lseek(_ctx: RequestContext, _nodeId: number, fh: number, offset: number, whence: number): number {
    const size = fs.fstatSync(fh).size;
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FuseError("EINVAL", `lseek whence ${whence}`);
    if (offset >= size) throw new FuseError("ENXIO");
    return whence === SEEK_DATA ? offset : size;
  }

  opendir(_ctx: RequestContext, nodeId: number, _flags: number): OpenReply {
    const dir = this.#nodes.pathOf(nodeId);
    const entries: DirEntrySnapshot[] = [
      { name: ".", st: fs.lstatSync(dir) },
      { name: "..", st: fs.lstatSync(nodeId === 1 ? dir : path.dirname(dir)) },
    ];
    for (const name of fs.readdirSync(dir)) {
      const st = fs.lstatSync(path.join(dir, name), { throwIfNoEntry: false });
      if (st !== undefined) entries.push({ name, st }); // gone meanwhile: skip it
    }
    const fh = this.#nextDirHandle++;
    this.#dirs.set(fh, entries);
    return { fh };
  }

  readdir(_ctx: RequestContext, _nodeId: number, fh: number, offset: number, out: DirectoryListing): void {
    const entries = this.#dirHandle(fh);
    for (let i = offset; i < entries.length; i++) {
      if (!out.add(entries[i].name, entries[i].st, i + 1)) break;
    }
  }

  readdirplus(
    _ctx: RequestContext,
    nodeId: number,
    fh: number,
    offset: number,
    out: DirectoryPlusListing,
  ): void {
    const entries = this.#dirHandle(fh);
    const dir = this.#nodes.pathOf(nodeId);
    for (let i = offset; i < entries.length; i++) {
      const { name, st } = entries[i];
      if (name === "." || name === "..") {
        if (!out.add(name, { nodeId: 0, attr: st }, i + 1)) break;
        continue;
      }
      // Each accepted entry is one lookup reference; a refused one gives its reference back.
      const n = this.#nodes.reference(path.join(dir, name), st);
      if (!out.add(name, { nodeId: n.nodeId, attr: st }, i + 1)) {
        this.#nodes.forget(n.nodeId, 1);
        break;
      }
    }
  }

  releasedir(_ctx: RequestContext, _nodeId: number, fh: number): void {
    this.#dirs.delete(fh);
  }

  fsyncdir(_ctx: RequestContext, nodeId: number, _fh: number, datasync: boolean): Promise<void> {
    const fd = fs.openSync(this.#nodes.pathOf(nodeId), "r");
    return new Promise<void>((resolve, reject) => {
      (datasync ? fs.fdatasync : fs.fsync)(fd, (err) => (err ? reject(err) : resolve()));
    }).finally(() => fs.closeSync(fd));
  }

  statfs(): StatfsReply {
    const s = fs.statfsSync(this.root);
    return {
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
      bsize: s.bsize,
      namelen: 255,
      frsize: s.bsize,
    };
  }

  getlk(_ctx: RequestContext, nodeId: number, lock: LockRequest): FileLock | null {
    const holder = this.#locks.get(nodeId)?.test(lock.owner, lock.start, lock.end, lock.type);
    if (holder === undefined || holder === null) return null;
    return { start: holder.start, end: holder.end, type: holder.type, pid: holder.pid };
  }

  setlk(ctx: RequestContext, nodeId: number, lock: LockRequest): void | Promise<void> {
    let table = this.#locks.get(nodeId);
    if (table === undefined) {
      if (lock.type === "unlock") return;
      table = new LockTable();
      this.#locks.set(nodeId, table);
    }
    if (lock.type !== "unlock") {
      let owners = this.#ownersByHandle.get(lock.fh);
      if (owners === undefined) this.#ownersByHandle.set(lock.fh, (owners = new Set()));
      owners.add(lock.owner);
    }
    if (table.set(lock.owner, lock.pid, lock.start, lock.end, lock.type)) return;
    if (!lock.wait) throw new FuseError("EAGAIN");
    return table.waitFor(lock.owner, lock.pid, lock.start, lock.end, lock.type, ctx.signal);
  }

  #entry(p: string, st: fs.Stats): Entry {
    return { nodeId: this.#nodes.reference(p, st).nodeId, attr: st };
  }

  #openReply(nodeId: number, fd: number): OpenReply {
    this.#nodes.get(nodeId).handles.add(fd);
    return { fh: fd, directIo: this.#directIo, keepCache: this.#keepCache && !this.#directIo };
  }

  #dirHandle(fh: number): DirEntrySnapshot[] {
    const entries = this.#dirs.get(fh);
    if (entries === undefined) throw new FuseError("EBADF", `unknown directory handle ${fh}`);
    return entries;
  }
}

/** Writes zeros over [from, to) of `fd`, 1 MiB at a time. */
function writeZeros(fd: number, from: number, to: number): void {
  const zeros = Buffer.alloc(Math.min(1 << 20, Math.max(0, to - from)));
  for (let at = from; at < to;) {
    const n = fs.writeSync(fd, zeros, 0, Math.min(zeros.length, to - at), at);
    at += n;
  }
}
