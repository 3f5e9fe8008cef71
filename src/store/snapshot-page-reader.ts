// Reading the committed pages of a database as of one position, from a frozen description of it
// (Database.snapshotView): the database file, with the WAL frames captured up to that position over
// it. Opens its own read-only descriptors, so it works in a worker thread as well (the primary encodes
// snapshots off its main thread). Valid only while nothing rewrites a committed byte: the caller holds
// the locks that keep rollback commits, checkpoints and WAL restarts out (mountfs DatabaseLockGuard).

import fs from "node:fs";

import type { Pos } from "../ltx/pos.js";
import { readFully } from "./durable-file.js";
import { WAL_FRAME_HEADER_SIZE } from "./wal-format.js";

/** Plain data (structured-clonable): where the committed pages are. */
export interface DatabaseSnapshotView {
  readonly pos: Pos;
  readonly pageSize: number;
  readonly pageCount: number;
  readonly databasePath: string;
  readonly walPath: string;
  /** [pgno, offset of its latest captured frame's header in the WAL], for pages the WAL holds. */
  readonly frames: readonly (readonly [number, number])[];
}

export class SnapshotPageReader {
  readonly view: DatabaseSnapshotView;
  readonly #frames: Map<number, number>;
  readonly #dbFd: number | null;
  readonly #walFd: number | null;

  constructor(view: DatabaseSnapshotView) {
    this.view = view;
    this.#frames = new Map(view.frames);
    this.#dbFd = openIfExists(view.databasePath);
    this.#walFd = this.#frames.size > 0 ? fs.openSync(view.walPath, "r") : null;
  }

  /** Pages first..first+count−1 as one new buffer (bytes past the end of the file read as zeros). */
  readPages(first: number, count: number): Buffer {
    const size = this.view.pageSize;
    const run =
      this.#dbFd === null
        ? Buffer.alloc(count * size)
        : readFully(this.#dbFd, count * size, (first - 1) * size).data;
    if (this.#walFd !== null) {
      for (let pgno = first; pgno < first + count; pgno++) {
        const frame = this.#frames.get(pgno);
        if (frame === undefined) continue;
        const page = readFully(this.#walFd, size, frame + WAL_FRAME_HEADER_SIZE).data;
        run.set(page, (pgno - first) * size);
      }
    }
    return run;
  }

  readPage(pgno: number): Buffer {
    return this.readPages(pgno, 1);
  }

  close(): void {
    if (this.#dbFd !== null) fs.closeSync(this.#dbFd);
    if (this.#walFd !== null) fs.closeSync(this.#walFd);
  }
}

function openIfExists(file: string): number | null {
  try {
    return fs.openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
