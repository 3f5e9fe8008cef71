// Import: a SQLite database file becomes the next transaction of a database, as ONE LTX file holding
// every page (a snapshot when the database is new, TXID 1). Works for multi-GB files: pages stream
// from the file through the checksum and the LTX encoder a batch at a time, yielding to the event
// loop between batches, and the file itself is renamed into place rather than copied.
//
// Validation before anything changes (EIMPORT): a SQLite header SQLite would accept, a file of whole
// pages, and an in-header page count (when valid) equal to the file's size — a truncated or padded
// upload is refused. The caller holds every lock of the database for the whole import.

import fs from "node:fs";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";

import type { Database } from "./database.js";
import { LtxFileWriter } from "./ltx-file-writer.js";
import { PageChecksums } from "./page-checksums.js";
import { databaseHeaderProblem, parseDatabaseHeader } from "./sqlite-header.js";
import { StoreError } from "./store-error.js";

/** Bytes read between two yields to the event loop. */
const BATCH_BYTES = 8 << 20;

export interface ImportShape {
  readonly pageSize: number;
  readonly pageCount: number;
}

/** Checks that `file` is a whole SQLite database; returns its page size and count. Throws EIMPORT. */
export function validateImportFile(file: string, db: string): ImportShape {
  const size = fs.statSync(file).size;
  const fail = (why: string): never => {
    throw new StoreError("EIMPORT", `not an importable SQLite database: ${why}`, { db, file });
  };
  if (size < 100) fail(`${size} bytes is shorter than a SQLite header`);
  const head = Buffer.alloc(100);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, head, 0, 100, 0);
  } finally {
    fs.closeSync(fd);
  }
  const problem = databaseHeaderProblem(head);
  if (problem !== undefined) fail(problem);
  const header = parseDatabaseHeader(head);
  if (size % header.pageSize !== 0)
    fail(`size ${size} is not a multiple of the page size ${header.pageSize}`);
  const pageCount = size / header.pageSize;
  if (header.pageCountValid && header.pageCount !== pageCount) {
    fail(`the header says ${header.pageCount} pages but the file holds ${pageCount} (truncated or padded?)`);
  }
  return { pageSize: header.pageSize, pageCount };
}

/**
 * Imports `source` (a file on the data directory's file system, which this call moves into place)
 * as the next transaction of `db`. Resolves once the LTX file is durable and the position advanced.
 */
export async function importDatabaseFile(
  db: Database,
  source: string,
  onProgress?: (pagesDone: number, pageCount: number) => void,
): Promise<void> {
  const { pageSize, pageCount } = validateImportFile(source, db.name);
  db.checkpointWal();
  const timestamp = db.now;
  const writer = new LtxFileWriter(
    db.dir,
    db.nextLtxHeader(pageSize, pageCount, timestamp),
    db.ltxWriteOptions,
  );
  const checksums = new PageChecksums(pageSize, pageCount);
  const fd = fs.openSync(source, "r");
  try {
    const pagesPerBatch = Math.max(1, Math.floor(BATCH_BYTES / pageSize));
    const buf = Buffer.alloc(pagesPerBatch * pageSize);
    for (let first = 1; first <= pageCount; first += pagesPerBatch) {
      const n = Math.min(pagesPerBatch, pageCount - first + 1);
      let got = 0;
      while (got < n * pageSize) {
        const r = fs.readSync(fd, buf, got, n * pageSize - got, (first - 1) * pageSize + got);
        if (r === 0)
          throw new StoreError("EIMPORT", "the file shrank while being imported", {
            db: db.name,
            file: source,
          });
        got += r;
      }
      for (let i = 0; i < n; i++) {
        const pgno = first + i;
        if (pgno === checksums.lockPgno) continue;
        const page = buf.subarray(i * pageSize, (i + 1) * pageSize);
        checksums.setPage(pgno, page);
        writer.writePage(pgno, page);
      }
      onProgress?.(first + n - 1, pageCount);
      await yieldToEventLoop();
    }
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  const ltx = writer.commit(checksums.checksum);
  db.adoptImportedFile(source, checksums, ltx, timestamp);
}
