// The one table from store errors to the errno a FUSE request is answered with. Errors that already
// carry an errno (Node fs errors such as ENOSPC, FuseError) pass through; anything else is EIO.

import { FuseError, type ErrnoName } from "../fuse/errors.js";
import { StoreError, type StoreErrorCode } from "../store/store-error.js";

const ERRNO_OF_STORE_CODE: Readonly<Record<StoreErrorCode, ErrnoName>> = {
  EDBNOTFOUND: "ENOENT",
  EDBEXISTS: "EEXIST",
  EDBNAME: "EINVAL",
  EDBFILE: "EPERM",
  // SQLite reports a failed write as SQLITE_IOERR ("disk I/O error"); the log line says why.
  EJOURNALMODE: "EIO",
  ECAPTURE: "EIO",
  EDATADIR: "EIO",
  ECHECKSUM: "EIO",
  EAPPLY: "EIO",
  EIMPORT: "EINVAL",
  // The transaction was undone (store/database.ts, "refused commits"): SQLite reports a disk I/O error.
  ECOMMITREFUSED: "EIO",
  ECLOSED: "EIO",
};

/** A FuseError for `err` when it is a store error; otherwise `err` itself (the session maps it). */
export function toFuseError(err: unknown): unknown {
  if (err instanceof StoreError) {
    return new FuseError(ERRNO_OF_STORE_CODE[err.code], err.message, { cause: err });
  }
  return err;
}
