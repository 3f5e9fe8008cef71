// Reading and writing the pages of a SQLite database file, for the tools that turn a database into
// an LTX snapshot and apply LTX files to one. The page size comes from the SQLite header (offset 16,
// big-endian u16, 1 meaning 65536); the page count from the file size, which must be whole pages.

import { stat, type FileHandle } from "node:fs/promises";
import { isValidPageSize, lockPgno, pageSizeFromHeader } from "./checksum.js";
import { LtxError } from "./errors.js";

export interface DatabaseShape {
  pageSize: number;
  pageCount: number;
  size: number;
}

/** Bytes read at a time when streaming pages. */
const READ_CHUNK_BYTES = 1 << 20;

function databaseError(path: string, offset: number, rule: string, detail: string): LtxError {
  return new LtxError("ELTXDATABASE", detail, { file: path, offset, rule });
}

/**
 * The page size and count of the open database. An empty file has no pages; its page size is
 * `expectedPageSize` (or 4096). When `expectedPageSize` is given, a non-empty database must have it.
 * Throws LtxError ELTXDATABASE for a file without a valid header or with a partial last page.
 */
export async function readDatabaseShape(
  handle: FileHandle,
  path: string,
  expectedPageSize?: number,
): Promise<DatabaseShape> {
  const size = (await handle.stat()).size;
  if (size === 0) return { pageSize: expectedPageSize ?? 4096, pageCount: 0, size };
  if (size < 100)
    throw databaseError(path, size, "sqlite header", `database file of ${size} bytes has no SQLite header`);
  const header = await readFully(handle, path, 0, 100);
  const pageSize = pageSizeFromHeader(header);
  if (!isValidPageSize(pageSize)) {
    throw databaseError(
      path,
      16,
      "page size",
      `SQLite header gives page size ${pageSize}, not a power of two in 512..65536`,
    );
  }
  if (expectedPageSize !== undefined && pageSize !== expectedPageSize) {
    throw databaseError(
      path,
      16,
      "page sizes match",
      `database page size ${pageSize}, the LTX files' is ${expectedPageSize}`,
    );
  }
  if (size % pageSize !== 0) {
    throw databaseError(
      path,
      size - (size % pageSize),
      "whole pages",
      `database size ${size} is not whole ${pageSize}-byte pages`,
    );
  }
  return { pageSize, pageCount: size / pageSize, size };
}

/**
 * Reads exactly `length` bytes at `position`. When the file ends first, calls `ended(offset)` with the
 * offset of the first missing byte; it throws the caller's error.
 */
export async function readExactly(
  handle: FileHandle,
  position: number,
  length: number,
  ended: (offset: number) => never,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(bytes, got, length - got, position + got);
    if (bytesRead === 0) ended(position + got);
    got += bytesRead;
  }
  return bytes;
}

/** Reads exactly `length` bytes at `position`; throws ELTXDATABASE if the file is shorter. */
export function readFully(
  handle: FileHandle,
  path: string,
  position: number,
  length: number,
): Promise<Uint8Array> {
  return readExactly(handle, position, length, (offset) => {
    throw databaseError(path, offset, "stable size", "database file ended early (changed while read?)");
  });
}

/** Writes all of `bytes` at `position`. */
export async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** One page of the database, read from disk. */
export async function readDatabasePage(
  handle: FileHandle,
  path: string,
  pgno: number,
  pageSize: number,
): Promise<Uint8Array> {
  return readFully(handle, path, (pgno - 1) * pageSize, pageSize);
}

/**
 * Pages `first..last` of the database in order, skipping the lock page, read 1 MiB at a time. Each
 * yielded `data` is a view of a buffer that is not reused, so callers may keep it.
 */
export async function* readDatabasePages(
  handle: FileHandle,
  path: string,
  shape: DatabaseShape,
  first = 1,
  last = shape.pageCount,
): AsyncGenerator<{ pgno: number; data: Uint8Array }> {
  const { pageSize } = shape;
  const lock = lockPgno(pageSize);
  const pagesPerRead = Math.max(1, Math.floor(READ_CHUNK_BYTES / pageSize));
  for (let pgno = first; pgno <= last;) {
    const count = Math.min(pagesPerRead, last - pgno + 1);
    const chunk = await readFully(handle, path, (pgno - 1) * pageSize, count * pageSize);
    for (let i = 0; i < count; i++, pgno++) {
      if (pgno !== lock) yield { pgno, data: chunk.subarray(i * pageSize, (i + 1) * pageSize) };
    }
  }
}

/**
 * Refuses a database with a non-empty `-wal` or `-journal` beside it: its file alone is not the
 * database (committed pages may sit in the WAL; a hot journal means a rollback is due), so reading a
 * snapshot from it, or writing pages into it, would be wrong. Checkpoint or open it with SQLite first.
 */
export async function assertNoPendingJournal(path: string): Promise<void> {
  for (const suffix of ["-wal", "-journal"]) {
    let size = 0;
    try {
      size = (await stat(path + suffix)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (size > 0) {
      throw databaseError(
        path,
        0,
        "no pending journal",
        `${path}${suffix} holds ${size} bytes: checkpoint or recover the database with SQLite first`,
      );
    }
  }
}
