// Undoing a rollback-journal transaction at its commit point, when the node may not commit it (it lost
// the lease while the transaction was in flight: database.ts, "refused commits").
//
// At the commit point SQLite has already written every changed page into the database file; the
// journal still holds the original of each page and the database's size before the transaction. This
// is exactly what SQLite's own hot-journal rollback uses (and what recovery.ts does at startup with
// the same journal-format helpers): cut or extend the file to its old size, write the originals back,
// fsync. Afterwards the journal is finished the way its journal mode finishes a transaction, so that
// it is no longer hot: a read-only connection (a replica's) cannot roll a hot journal back and would
// fail with SQLITE_READONLY_ROLLBACK.

import type { BackingFiles } from "./backing-files.js";
import { JOURNAL_ZEROED_HEADER_BYTES, type JournalCommitMode } from "./journal-commit-detector.js";
import { journalRollbackPages, rolledBackFileSize } from "./journal-format.js";
import { StoreError } from "./store-error.js";

export interface UndoneJournal {
  /** Pages written back from the journal. */
  readonly pagesRestored: number;
  /** The database file's size after the undo. */
  readonly fileSize: number;
}

/**
 * Restores the database file from the journal and syncs it. Throws ECAPTURE (nothing restored) when
 * the journal holds no valid header: SQLite never writes the database before its journal header, so
 * the database file cannot be brought back.
 */
export function undoJournalTransaction(db: string, files: BackingFiles): UndoneJournal {
  const journal = files.read("journal", 0, files.size("journal"));
  const rollback = journalRollbackPages(journal);
  if (rollback === undefined) {
    throw new StoreError("ECAPTURE", "refused commit: the journal holds no valid header to undo from", {
      db,
      file: files.path("journal"),
    });
  }
  const fileSize = rolledBackFileSize(files.size("database"), rollback);
  if (fileSize !== files.size("database")) files.truncate("database", fileSize);
  for (const [pgno, page] of rollback.pages) files.write("database", (pgno - 1) * rollback.pageSize, page);
  files.sync("database");
  return { pagesRestored: rollback.pages.size, fileSize };
}

/**
 * Leaves the journal not hot, without removing it: empty for DELETE and TRUNCATE, header zeroed for
 * PERSIST (what SQLite itself would have done for TRUNCATE and PERSIST). DELETE's journal is kept
 * (empty) rather than unlinked because the request that asked for the unlink is answered with an
 * error: the kernel keeps its entry for the name, which must still name a file.
 */
export function finishRefusedJournal(files: BackingFiles, mode: JournalCommitMode): void {
  if (mode === "PERSIST") {
    files.write("journal", 0, new Uint8Array(JOURNAL_ZEROED_HEADER_BYTES));
  } else {
    files.truncate("journal", 0);
  }
}
