// What a replica's mount lets local processes do, decided from the request alone. A replica's databases
// change only by replication, so every change through the mount is refused — and refused so that
// SQLite reports SQLITE_READONLY ("attempt to write a readonly database") in every journal mode:
//
// - Opening the database, its journal or its WAL for writing fails with EACCES. SQLite's unix VFS then
//   reopens the file read-only, and a connection whose database file is read-only refuses every write
//   transaction with SQLITE_READONLY before it touches a file — in WAL mode too (LiteFS lets SQLite
//   open read-write and fails the WAL write itself with EACCES, which SQLite reports as "disk I/O
//   error").
// - Except a database in a rollback-journal mode that has no journal (litefs-file-system.ts): it opens
//   read-write, so the connection can write once the node is promoted. Its writes on the replica stop
//   at the journal's creation, refused with EACCES; SQLite, finding no journal, reports that as
//   SQLITE_READONLY_DIRECTORY ("attempt to write a readonly database"). With a journal present
//   (TRUNCATE or PERSIST mode on a node that was primary) SQLite would reopen the journal read-only and
//   fail at its first write with "disk I/O error": then the database opens read-only, as above.
//   Such a connection can take SQLite's write locks: BEGIN IMMEDIATE succeeds and its first write is
//   refused (held open, it delays replication like any open transaction); with journal_mode OFF or
//   MEMORY it writes the database with no journal to create, and the commit gate refuses those
//   writes ("disk I/O error"; test/mountfs/role-change.test.ts).
// - A read-only connection to a WAL database needs the `-wal` file to exist (it cannot create it) and
//   a writable `-shm` (read marks, recovery of the wal-index): the replica keeps an empty `-wal` while
//   the database is in WAL mode (store/replica-apply.ts; litefs-file-system.ts at a turn to replica)
//   and lets readers create, map and write `-shm`.
// - Anything else that would change a file or a name — write, truncate, unlink, creating a new
//   database or journal — fails with EROFS (EACCES for creation, so SQLite's fallback applies).
// Files show mode 0444 on a replica (0666 on a primary); `-shm` too, though readers may write it.

import type { ErrnoName } from "../fuse/errors.js";
import type { MountFileKind } from "./node-table.js";

export type NodeRole = "primary" | "replica";

export type FileChange = "open-for-write" | "create" | "write" | "truncate" | "unlink";

/** The errno a replica answers `change` of a `kind` file with, or null when it is allowed. */
export function replicaRefusal(change: FileChange, kind: MountFileKind): ErrnoName | null {
  if (kind === "shm") return change === "unlink" ? "EROFS" : null;
  if (kind === "lock") return change === "open-for-write" ? null : "EROFS"; // HALT locks take write opens
  switch (change) {
    case "open-for-write":
    case "create":
      return "EACCES";
    default:
      return "EROFS";
  }
}
