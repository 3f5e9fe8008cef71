// Decides whether an operation on a rollback journal is the moment SQLite commits (or rolls back) a
// transaction. Pure: takes the operation, returns the decision; the caller does the I/O.
//
// SQLite finishes a rollback-journal transaction (pager_end_transaction) in one of three ways,
// depending on journal_mode:
// - DELETE:   unlink of the journal;
// - TRUNCATE: truncation of the journal to 0 bytes (also PERSIST with journal_size_limit=0);
// - PERSIST:  a write of 28 zero bytes over the journal header at offset 0 (zeroJournalHdr).
// A truncation to a non-zero size is journal_size_limit trimming AFTER the zeroing: not a commit.
//
// A transaction that is rolled back ends exactly the same way (after writing the original pages back),
// so "commit point" here means "the transaction is over"; the caller tells a commit from a rollback by
// whether any page's checksum changed. The header SQLite writes at the START of a transaction never
// looks like the PERSIST commit: even when it zeroes the magic and record count (synchronous mode),
// bytes 20..23 hold the sector size, which is never 0.

/** Size of the part of the journal header that SQLite zeroes to finish a PERSIST transaction. */
export const JOURNAL_ZEROED_HEADER_BYTES = 28;

export type JournalOperation =
  | { readonly type: "write"; readonly offset: number; readonly data: Uint8Array }
  | { readonly type: "truncate"; readonly size: number }
  | { readonly type: "unlink" };

export type JournalCommitMode = "DELETE" | "TRUNCATE" | "PERSIST";

/** The journal mode whose commit `op` is, or null when `op` does not end a transaction. */
export function journalCommitMode(op: JournalOperation): JournalCommitMode | null {
  switch (op.type) {
    case "unlink":
      return "DELETE";
    case "truncate":
      return op.size === 0 ? "TRUNCATE" : null;
    case "write":
      return op.offset === 0 && isZeroedHeader(op.data) ? "PERSIST" : null;
  }
}

function isZeroedHeader(data: Uint8Array): boolean {
  if (data.length < JOURNAL_ZEROED_HEADER_BYTES) return false;
  for (let i = 0; i < JOURNAL_ZEROED_HEADER_BYTES; i++) if (data[i] !== 0) return false;
  return true;
}
