// The WAL as recovery finds it (recovery.ts step 4): its capture positioned after the commits the last
// LTX file already holds, and the shape (page size and count) of the committed state that database
// file + captured frames make — recomputed when recovery cuts the chain back (ltx-tail.ts).

import type { Header } from "../ltx/header.js";
import type { BackingFiles } from "./backing-files.js";
import { effectivePageCount, isValidDatabaseHeader, parseDatabaseHeader } from "./sqlite-header.js";
import { WalCapture } from "./wal-capture.js";
import { parseWalHeader, scanWal, walHeaderProblem, WAL_HEADER_SIZE } from "./wal-format.js";

export interface PositionedWal {
  readonly capture: WalCapture;
  /** Database size in pages after the last captured commit (undefined: none captured). */
  readonly pageCount: number | undefined;
  /** Pages of the captured commits. */
  readonly touched: ReadonlySet<number>;
}

/** The WAL's capture positioned after the commits the last LTX file (`lastHeader`) already holds. */
export function positionWal(files: BackingFiles, lastHeader: Header | undefined): PositionedWal {
  const capture = new WalCapture();
  const touched = new Set<number>();
  let pageCount: number | undefined;
  if (files.exists("wal") && files.size("wal") >= WAL_HEADER_SIZE) {
    const headerBytes = files.readPadded("wal", 0, WAL_HEADER_SIZE);
    if (walHeaderProblem(headerBytes) === undefined) {
      const header = parseWalHeader(headerBytes);
      capture.reset(headerBytes);
      const source = {
        size: files.size("wal"),
        read: (o: number, n: number) => files.readPadded("wal", o, n),
      };
      const { commits } = scanWal(source, header);
      const sameGeneration =
        lastHeader !== undefined &&
        lastHeader.walOffset > 0 &&
        lastHeader.walSalt1 === header.salt1 &&
        lastHeader.walSalt2 === header.salt2;
      const capturedEnd = sameGeneration ? lastHeader.walOffset + lastHeader.walSize : 0;
      for (const commit of commits) {
        if (commit.endOffset > capturedEnd) break;
        capture.advance(commit);
        pageCount = commit.dbPageCount;
        for (const pgno of commit.pages.keys()) touched.add(pgno);
      }
    }
  }
  return { capture, pageCount, touched };
}

/** The committed state's shape (page size and count) as SQLite would see it: database file + WAL. */
export function committedShape(
  files: BackingFiles,
  wal: PositionedWal,
  lastHeader: Header | undefined,
): { pageSize: number; pageCount: number } {
  const dbSize = files.size("database");
  const dbHeader = files.readPadded("database", 0, 100);
  let pageSize = wal.capture.header?.pageSize ?? lastHeader?.pageSize ?? 0;
  let pageCount = 0;
  if (dbSize >= 100 && isValidDatabaseHeader(dbHeader)) {
    const parsed = parseDatabaseHeader(dbHeader);
    pageSize = parsed.pageSize;
    pageCount = effectivePageCount(parsed, dbSize);
  } else if (dbSize > 0 && pageSize > 0) {
    pageCount = Math.ceil(dbSize / pageSize);
  }
  if (wal.pageCount !== undefined) pageCount = wal.pageCount;
  return { pageSize, pageCount };
}
