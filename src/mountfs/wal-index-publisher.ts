// Publishing a new wal-index header to the SQLite connections of a mount after the node changed the
// database file behind their backs (a replica's apply, a HALT transaction), WITHOUT opening anything
// in the node's own mount.
//
// Why not through the mount: a process that holds a file open in the mount it serves cannot die. On
// kill -9 the kernel closes that file on the way out, sends FLUSH to the mount's server — the dying
// process — and waits uninterruptibly; the /dev/fuse descriptor that would abort the connection is
// never closed, and the process stays in state D forever. A request in flight from the node's own
// thread pool to its mount hangs the same way. So the node touches its mount only by FUSE
// notifications, and its files only through the store's backing files.
//
// How readers see a header written into the backing `-shm`: connections map `-shm` MAP_SHARED, and
// those mappings are the kernel's page-cache pages of the mount's file. FUSE_NOTIFY_INVAL_INODE on a
// range unmaps the range's pages from every process and drops them (`invalidate_inode_pages2_range`);
// the next access faults and READs the page from the mount, i.e. from the backing file. A dirty page
// (a connection wrote its read mark into the mapping, not yet written back) is first written back to
// the mount (`launder_folio` → WRITE, answered by the main thread while the notification waits in its
// worker). Hence the order:
//   1. drop page 0 — any dirty copy is written back first, so the backing file is current;
//   2. read the backing header, build the replica header over it (read marks and locks kept), write it;
//   3. drop page 0 again — a connection may have faulted the old page in between (readers look at the
//      header before they lock); it cannot have dirtied it, see below.
// Contract: the caller holds every `-shm` lock a SQLite writer, checkpointer and recovery would take,
// and READ0..READ4 exclusively (DatabaseLockGuard.replicaApply, the HALT apply locks): SQLite writes
// the header region only under those locks (a commit: WRITE; a checkpoint: CKPT; a read mark: that
// READ lock; recovery: all), so between steps 1 and 3 no connection dirties page 0, and step 3 drops
// a clean page (no write-back that could overwrite the new header).

import type { Database } from "../store/database.js";
import { buildReplicaShmHeader, SHM_HEADER_SIZE } from "../store/shm-format.js";
import type { KernelCacheNotifier } from "./commit-gate.js";

export interface WalIndexPublishTarget {
  /** The database whose `-shm` gets the new header (its backing file must exist). */
  readonly db: Database;
  /** The mount's session (notifications only). */
  readonly notifier: KernelCacheNotifier;
  /** The node id the kernel knows `<db>-shm` by, or undefined when it never looked it up. */
  readonly shmNodeId: number | undefined;
  /** The database size in pages after the change. */
  readonly pageCount: number;
}

const HEADER_RANGE = { offset: 0, length: SHM_HEADER_SIZE } as const;

/**
 * Writes a wal-index header with mxFrame 0, `pageCount` pages and a bumped change counter into the
 * backing `-shm`, so that every connection reads the database file alone and drops its page cache at
 * its next transaction (store/shm-format.ts `buildReplicaShmHeader`). See the file header for the
 * ordering and the locks the caller must hold.
 */
export async function publishWalIndexHeader(target: WalIndexPublishTarget): Promise<void> {
  const { db, notifier, shmNodeId, pageCount } = target;
  if (shmNodeId !== undefined) await notifier.invalidateInode(shmNodeId, HEADER_RANGE);
  const current = db.read("shm", 0, SHM_HEADER_SIZE);
  const header = buildReplicaShmHeader(current, { pageSize: db.pageSize, pageCount });
  db.write("shm", 0, header);
  if (shmNodeId !== undefined) await notifier.invalidateInode(shmNodeId, HEADER_RANGE);
}
