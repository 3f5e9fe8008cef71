// The backing files of one database under `<data>/dbs/<name>/`: `database`, `journal`, `wal`, `shm`.
// One descriptor per file, opened when the file is created or first used and kept open until it is
// unlinked or the database closes; every FUSE handle on the file shares it. Synchronous I/O: a FUSE
// request is answered once its I/O is done, and a synchronous call avoids a thread-pool hop.
//
// Knows nothing of SQLite or commits: the Database decides, this does the I/O.

import fs from "node:fs";

import { type DatabaseDir, type DatabaseFileKind, DATABASE_FILE_KINDS } from "./data-dir.js";
import { fsyncPathIfExists, readFully, removeFile, writeAll } from "./durable-file.js";

export class BackingFiles {
  readonly #dir: DatabaseDir;
  readonly #fds = new Map<DatabaseFileKind, number>();
  readonly #noSync: boolean;
  /** Files written or truncated since their last fsync: an fsync of a clean file is skipped. */
  readonly #unsynced = new Set<DatabaseFileKind>();
  /** Writes and truncations so far, per file: tells `syncAsync` whether one came in during its fsync. */
  readonly #changes = new Map<DatabaseFileKind, number>();

  constructor(dir: DatabaseDir, opts: { noSync: boolean }) {
    this.#dir = dir;
    this.#noSync = opts.noSync;
  }

  path(kind: DatabaseFileKind): string {
    return this.#dir.file(kind);
  }

  /** True when the backing file exists. */
  exists(kind: DatabaseFileKind): boolean {
    if (this.#fds.has(kind)) return true;
    return fs.statSync(this.path(kind), { throwIfNoEntry: false }) !== undefined;
  }

  /** Creates the file if missing (empty) and returns its descriptor. */
  create(kind: DatabaseFileKind): number {
    return this.#fd(kind, true);
  }

  /** Size in bytes, 0 when the file does not exist. */
  size(kind: DatabaseFileKind): number {
    const fd = this.#fds.get(kind);
    if (fd !== undefined) return fs.fstatSync(fd).size;
    return fs.statSync(this.path(kind), { throwIfNoEntry: false })?.size ?? 0;
  }

  stat(kind: DatabaseFileKind): fs.Stats | undefined {
    const fd = this.#fds.get(kind);
    if (fd !== undefined) return fs.fstatSync(fd);
    return fs.statSync(this.path(kind), { throwIfNoEntry: false });
  }

  /** Reads up to `length` bytes at `offset`: shorter at end of file, empty when the file is missing. */
  read(kind: DatabaseFileKind, offset: number, length: number): Buffer {
    const fd = this.#fdIfExists(kind);
    if (fd === undefined) return Buffer.alloc(0);
    const { data, bytesRead } = readFully(fd, length, offset);
    return bytesRead === length ? data : data.subarray(0, bytesRead);
  }

  /** Reads exactly `length` bytes at `offset`; bytes past end of file (or of a missing file) are zero. */
  readPadded(kind: DatabaseFileKind, offset: number, length: number): Buffer {
    const fd = this.#fdIfExists(kind);
    if (fd === undefined) return Buffer.alloc(length);
    return readFully(fd, length, offset).data;
  }

  /** Writes all of `data` at `offset`, creating the file if needed. */
  write(kind: DatabaseFileKind, offset: number, data: Uint8Array): void {
    writeAll(this.#fd(kind, true), data, offset);
    this.#changed(kind);
  }

  truncate(kind: DatabaseFileKind, size: number): void {
    fs.ftruncateSync(this.#fd(kind, true), size);
    this.#changed(kind);
  }

  /**
   * fsync — skipped with noSync, when the file does not exist, or when nothing was written to it
   * since its last fsync (SQLite usually synced it itself just before the commit point). `dataOnly`:
   * fdatasync (the data and the size, not the times).
   */
  sync(kind: DatabaseFileKind, opts: { dataOnly?: boolean } = {}): void {
    if (this.#noSync || !this.#unsynced.has(kind)) return;
    const fd = this.#fdIfExists(kind);
    if (fd !== undefined) {
      if (opts.dataOnly === true) fs.fdatasyncSync(fd);
      else fs.fsyncSync(fd);
    }
    this.#unsynced.delete(kind);
  }

  /**
   * `sync` on the thread pool, through a descriptor of its own (the cached one may be closed while the
   * fsync runs: a snapshot replacing the file). The file counts as synced afterwards only if nothing
   * was written to it meanwhile; until then `sync` still fsyncs it.
   */
  async syncAsync(kind: DatabaseFileKind): Promise<void> {
    if (this.#noSync || !this.#unsynced.has(kind)) return;
    const changes = this.#changes.get(kind) ?? 0;
    if (!(await fsyncPathIfExists(this.path(kind)))) return; // removed: nothing to mark synced
    if ((this.#changes.get(kind) ?? 0) === changes) this.#unsynced.delete(kind);
  }

  /** Closes and removes the file; a missing file is fine. Does not fsync the directory. */
  unlink(kind: DatabaseFileKind): void {
    this.#unsynced.delete(kind);
    const fd = this.#fds.get(kind);
    if (fd !== undefined) {
      this.#fds.delete(kind);
      fs.closeSync(fd);
    }
    removeFile(this.path(kind));
  }

  /** Replaces the file with `source` (a finished file in the same directory) by rename. */
  replaceWith(kind: DatabaseFileKind, source: string): void {
    this.#unsynced.delete(kind);
    const fd = this.#fds.get(kind);
    if (fd !== undefined) {
      this.#fds.delete(kind);
      fs.closeSync(fd);
    }
    fs.renameSync(source, this.path(kind));
  }

  close(): void {
    for (const kind of DATABASE_FILE_KINDS) {
      const fd = this.#fds.get(kind);
      if (fd !== undefined) fs.closeSync(fd);
    }
    this.#fds.clear();
  }

  #changed(kind: DatabaseFileKind): void {
    this.#unsynced.add(kind);
    this.#changes.set(kind, (this.#changes.get(kind) ?? 0) + 1);
  }

  #fdIfExists(kind: DatabaseFileKind): number | undefined {
    const fd = this.#fds.get(kind);
    if (fd !== undefined) return fd;
    try {
      return this.#fd(kind, false);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  #fd(kind: DatabaseFileKind, create: boolean): number {
    let fd = this.#fds.get(kind);
    if (fd === undefined) {
      fd = fs.openSync(
        this.path(kind),
        create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR,
        0o644,
      );
      this.#fds.set(kind, fd);
    }
    return fd;
  }
}
