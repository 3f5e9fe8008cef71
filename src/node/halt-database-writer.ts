// Changes the node makes to a database file behind SQLite's back for the HALT lock, and how it makes
// local connections see them (the same technique as replica-applier.ts):
// - `foldWal`: the captured WAL frames are copied into the database file and the WAL emptied, so that
//   the database file alone holds the committed state (a replica's applier writes only the database
//   file, and the primary's applied transaction must not sit under WAL frames that readers prefer);
// - `publish`: drop the kernel's cached pages and, when `-shm` exists, write a wal-index header with
//   mxFrame 0 and a bumped change counter into the backing `-shm` (mountfs/wal-index-publisher.ts —
//   never through the node's own mount, which would make the node unkillable): every connection then
//   reads the database file alone and drops its page cache at its next transaction; when the file's
//   size changed, the kernel fetches the new attributes before the caller lets go of its locks
//   (`refreshAttributes`, as replica-applier.ts step 4: fetched at the first stat after the unlock, the
//   lock helper's own could race a reader's fstat, which then took the old size for valid next to the
//   new page 1 — "database disk image is malformed", docs/reliability.md finding 5).
// The caller holds every lock a SQLite writer would, and READ0..4 (no connection is inside a
// transaction, none can write the wal-index header).

import type { FuseSession } from "../fuse/session.js";
import type { LitefsFileSystem } from "../mountfs/litefs-file-system.js";
import { ROOT_NODE_ID } from "../mountfs/node-table.js";
import { publishWalIndexHeader } from "../mountfs/wal-index-publisher.js";
import type { Database } from "../store/database.js";

export interface HaltDatabaseWriterOptions {
  readonly fileSystem: LitefsFileSystem;
  readonly session: FuseSession;
  /** Kernel-locks mode: has the kernel fetch `db`'s attributes now (DatabaseLockGuard.refreshAttributes). */
  readonly refreshAttributes?: (db: string) => Promise<void>;
}

export class HaltDatabaseWriter {
  readonly #opts: HaltDatabaseWriterOptions;

  constructor(opts: HaltDatabaseWriterOptions) {
    this.#opts = opts;
  }

  /**
   * Copies the captured WAL frames into the database file (fsynced) and truncates the WAL to 0.
   * Returns false when the WAL held nothing (nothing changed).
   */
  foldWal(db: Database): boolean {
    if (!db.exists("wal") || db.size("wal") === 0) return false;
    db.captureWal();
    const view = db.snapshotView();
    if (view.pageSize > 0) {
      const pgnos = view.frames.map(([pgno]) => pgno).sort((a, b) => a - b);
      for (const pgno of pgnos) {
        if (pgno <= view.pageCount)
          db.files.write("database", (pgno - 1) * view.pageSize, db.readCommittedPage(pgno));
      }
      const size = view.pageCount * view.pageSize;
      if (db.files.size("database") > size) db.files.truncate("database", size);
      db.files.sync("database");
    }
    db.truncate("wal", 0);
    return true;
  }

  /**
   * A replica keeps an empty `-wal` while the database is in WAL mode (a read-only connection cannot
   * create it, store/replica-apply.ts): after local clients wrote under a HALT lock, the last of them
   * to close may have removed it. Re-creates it, and drops the kernel's cached "no such file".
   */
  async ensureReplicaWal(db: Database): Promise<void> {
    if (!db.walMode || db.exists("wal")) return;
    db.create("wal");
    await this.#opts.session.invalidateEntry(ROOT_NODE_ID, `${db.name}-wal`).catch(() => undefined);
  }

  /**
   * Makes local connections see the database file as it is now (see the header). `sizeBefore`: the
   * database file's size when the caller took its locks. A failed attribute refresh is left to the
   * kernel's next stat (the change itself is done).
   */
  async publish(db: Database, sizeBefore: number): Promise<void> {
    const { fileSystem, session, refreshAttributes } = this.#opts;
    const nodeId = fileSystem.currentNodeId(db.name, "database");
    if (nodeId !== undefined) await session.invalidateInode(nodeId);
    if (db.pageCount > 0 && db.exists("shm")) {
      await publishWalIndexHeader({
        db,
        notifier: session,
        shmNodeId: fileSystem.currentNodeId(db.name, "shm"),
        pageCount: db.pageCount,
      });
    }
    if (refreshAttributes !== undefined && db.files.size("database") !== sizeBefore) {
      await refreshAttributes(db.name).catch(() => undefined);
    }
  }
}
