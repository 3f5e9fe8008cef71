// Applies an LTX file to a database's backing file: the file is verified completely first (a bad file
// changes nothing), then its pages are written, the file is cut to the header's page count, and the
// database file is fsynced. Commit 0 (a deletion) removes the database's files instead.
//
// Used by recovery to roll a transaction forward (its LTX is durable but the journal said otherwise)
// and by import; the caller updates positions and checksums.

import type { Header } from "../ltx/header.js";
import type { BackingFiles } from "./backing-files.js";
import { readLtxFileSync } from "./ltx-file-reader.js";

export interface AppliedLtx {
  readonly header: Header;
  readonly postApplyChecksum: bigint;
  /** Pages written, ascending. */
  readonly pgnos: readonly number[];
}

export function applyLtxToDatabaseFile(files: BackingFiles, ltxPath: string): AppliedLtx {
  const summary = readLtxFileSync(ltxPath); // verify everything before touching the database
  const { header } = summary;
  if (header.commit === 0) {
    for (const kind of ["journal", "wal", "shm", "database"] as const) files.unlink(kind);
    return { header, postApplyChecksum: summary.trailer.postApplyChecksum, pgnos: [] };
  }
  const pgnos: number[] = [];
  readLtxFileSync(ltxPath, (page) => {
    files.write("database", (page.pgno - 1) * header.pageSize, page.data);
    pgnos.push(page.pgno);
  });
  const size = header.commit * header.pageSize;
  if (files.size("database") !== size) files.truncate("database", size);
  files.sync("database");
  return { header, postApplyChecksum: summary.trailer.postApplyChecksum, pgnos };
}
