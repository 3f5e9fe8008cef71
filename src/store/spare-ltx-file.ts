// Empty temporary files kept ready in a database's `ltx/` directory for the next LTX file.
//
// Creating a file is the costliest step of writing a small LTX file on a busy ext4: a WAL commit
// profile put ~30 % of the node's time in that open(O_CREAT). On this project's machine (ext4 without a
// journal) the inode allocator skips inodes freed in the last minute or more, checking each one's
// inode-table block, so after other work deleted files nearby a create cost 0.3–1 ms of kernel CPU
// (perf: recently_deleted, find_inode_bit) against ~20 µs in a quiet directory. The spare is created on the thread pool, off the
// thread that serves FUSE requests; the writer fills it and renames it to the LTX file's name. When no
// spare is ready (the first commit, or commits faster than the thread pool), the writer creates its
// temporary file itself, as before. A spare never holds data until it is taken, and its name ends in
// TEMP_SUFFIX, so a crash leaves only an empty temporary file, removed by recovery.

import fs from "node:fs";
import path from "node:path";

import { removeFile, TEMP_SUFFIX } from "./durable-file.js";

/** Spares kept ready (counting those being created): enough to cover a burst of commits. */
const SPARES = 8;
/**
 * Creations in flight at once. One: creates in one directory serialise on the directory's lock in the
 * kernel anyway, and a second thread waiting for it spins (a node profile under WAL writes had 16 % of
 * its CPU in rwsem_spin_on_owner with two) — on a 2-core machine, CPU the request thread needs.
 */
const CONCURRENT_CREATES = 1;

export interface TempFile {
  readonly fd: number;
  readonly path: string;
}

export class SpareLtxFile {
  readonly #dir: string;
  readonly #spares: TempFile[] = [];
  #creating = 0;
  #closed = false;
  #counter = 0;

  constructor(ltxDir: string) {
    this.#dir = ltxDir;
  }

  /** A spare if one is ready (the caller owns it from now on); more are prepared either way. */
  take(): TempFile | undefined {
    const spare = this.#spares.pop();
    this.#prepare();
    return spare;
  }

  /** Removes the spares; none is prepared afterwards. */
  close(): void {
    this.#closed = true;
    for (const spare of this.#spares.splice(0)) discard(spare);
  }

  /** Creates spares (CONCURRENT_CREATES at a time on the thread pool) until SPARES are ready. */
  #prepare(): void {
    while (
      !this.#closed &&
      this.#creating < CONCURRENT_CREATES &&
      this.#spares.length + this.#creating < SPARES
    ) {
      this.#create();
    }
  }

  #create(): void {
    this.#creating++;
    const file = path.join(this.#dir, `spare-${process.pid}-${++this.#counter}${TEMP_SUFFIX}`);
    fs.open(file, "wx", 0o644, (err, fd) => {
      this.#creating--;
      if (err !== null) return; // e.g. the directory is gone: the writer creates its own file
      if (this.#closed) {
        discard({ fd, path: file });
        return;
      }
      this.#spares.push({ fd, path: file });
      this.#prepare();
    });
  }
}

function discard(file: TempFile): void {
  fs.closeSync(file.fd);
  removeFile(file.path);
}
