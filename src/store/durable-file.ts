// Crash-safe file replacement: a file that must survive a crash is written to a temporary name in
// the same directory, fsynced, renamed over its final name, and then the directory is fsynced so the
// rename itself is durable. After a crash a reader sees either the old file or the whole new one,
// never a torn one; a leftover temporary (name ending in TEMP_SUFFIX) is garbage to remove.
//
// Synchronous on purpose: the store runs these inside a FUSE request that must not be answered
// before the file is durable, and a synchronous call avoids a thread-pool hop per step.

import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

import { HelperUnavailable, SyncFsHelper } from "./syncfs-helper.js";

/** Suffix of temporary files; a name with it is never a finished file. */
export const TEMP_SUFFIX = ".tmp";

/** fsync of a directory: makes creations, renames and unlinks inside it durable. */
export function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync of an open descriptor on the thread pool (one hop; the caller opens and closes it). */
function fsyncFdAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err === null ? resolve() : reject(err))));
}

/**
 * fsync of a file or directory by path, the fsync on the thread pool: one hop (the open and close are
 * quick system calls, made here). Throws ENOENT for a missing path.
 */
export async function fsyncPathAsync(file: string): Promise<void> {
  const fd = fs.openSync(file, fs.constants.O_RDONLY);
  try {
    await fsyncFdAsync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** `fsyncPathAsync` of a file that may have been removed meanwhile: false when it was (nothing synced). */
export async function fsyncPathIfExists(file: string): Promise<boolean> {
  try {
    await fsyncPathAsync(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

export interface DurableWriteOptions {
  /** Skip every fsync (config `skip-sync`-like test speedups): atomic against process crash only. */
  noSync?: boolean;
}

/** Writes `chunks` (in order) as the new content of `file`: temp → fsync → rename → fsync dir. */
export function writeFileDurably(
  file: string,
  chunks: readonly Uint8Array[],
  opts: DurableWriteOptions = {},
): void {
  const temp = file + TEMP_SUFFIX;
  writeTemp(temp, chunks, opts.noSync === true ? null : fs.fsyncSync);
  fs.renameSync(temp, file);
  if (opts.noSync !== true) fsyncDirectory(path.dirname(file));
}

/**
 * `writeFileDurably` with its fsyncs on the thread pool: the temporary file's data and the directory
 * entry of the rename reach the disk while the event loop goes on (a replica raising its epoch file
 * at a handoff held its FUSE requests for 1–22 ms with the synchronous version). The writes and the
 * rename are quick system calls, made here. The caller serializes writes of one file.
 */
export async function writeFileDurablyAsync(
  file: string,
  chunks: readonly Uint8Array[],
  opts: DurableWriteOptions = {},
): Promise<void> {
  const temp = file + TEMP_SUFFIX;
  writeTemp(temp, chunks, null);
  if (opts.noSync !== true) {
    try {
      await fsyncPathAsync(temp); // the data, through a new descriptor: fsync is per file, not per descriptor
    } catch (err) {
      removeFile(temp);
      throw err;
    }
  }
  fs.renameSync(temp, file);
  if (opts.noSync !== true) await fsyncPathAsync(path.dirname(file));
}

/** Creates `temp` holding `chunks`, fsynced by `sync` when given; on a failure removes it and throws. */
export function writeTemp(
  temp: string,
  chunks: readonly Uint8Array[],
  sync: ((fd: number) => void) | null,
): void {
  const fd = fs.openSync(temp, "w", 0o644);
  try {
    for (const chunk of chunks) writeAll(fd, chunk, -1);
    sync?.(fd);
  } catch (err) {
    fs.closeSync(fd);
    removeFile(temp);
    throw err;
  }
  fs.closeSync(fd);
}

/**
 * Removes `file`; absent is fine. One unlink: not `fs.rmSync`, a JavaScript rimraf in Node (an lstat,
 * then the unlink) — a journal's removal at every DELETE-mode commit comes this way.
 */
export function removeFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Removes `file` (absent is fine) and makes the removal durable. */
export function removeFileDurably(file: string, opts: DurableWriteOptions = {}): void {
  removeFile(file);
  if (opts.noSync !== true) fsyncDirectory(path.dirname(file));
}

/**
 * Writes all of `data` at `position` (or at the current offset when position is -1), looping over
 * short writes. Throws on an error; never returns having written less.
 */
export function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    const n = fs.writeSync(fd, data, done, data.length - done, position < 0 ? null : position + done);
    if (n <= 0) throw new Error(`write returned ${n} after ${done} of ${data.length} bytes`);
    done += n;
  }
}

/**
 * Reads exactly `length` bytes at `position` into a new buffer; bytes past end of file read as zero
 * (SQLite's view of a short database file). Returns the buffer and how many bytes the file had.
 */
export function readFully(fd: number, length: number, position: number): { data: Buffer; bytesRead: number } {
  const data = Buffer.allocUnsafeSlow(length); // never pooled; every byte is read or zeroed below
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, data, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  if (done < length) data.fill(0, done);
  return { data, bytesRead: done };
}

/**
 * syncfs(2) of the file system holding `dir`, through coreutils' `sync --file-system` (Node has no
 * binding for it): every dirty file and directory of that file system becomes durable in one journal
 * commit. Making a batch of N small new files durable this way measured 15–25 ms for 200 files on
 * this project's machine, against 440–580 ms for 200 fsyncs. It also flushes other files of the same
 * file system, which costs I/O but never correctness. Throws ESYNCFS when the tool is missing or
 * reports an error (Linux ≥ 5.8 reports write-back errors through syncfs).
 */
export function syncFileSystem(dir: string): void {
  const result = spawnSync(SYNC_TOOL, ["--file-system", dir], { stdio: ["ignore", "ignore", "pipe"] });
  if (result.error !== undefined || result.status !== 0) throw syncFsError(dir, result.error, result.stderr);
}

/**
 * syncFileSystem without blocking the calling thread: through the process's long-lived helper
 * (syncfs-helper.ts: no fork of this process per call), or a `sync` child when the helper is not
 * available.
 */
export async function syncFileSystemAsync(dir: string): Promise<void> {
  try {
    await syncFsHelper.request(dir);
    return;
  } catch (err) {
    if (!(err instanceof HelperUnavailable)) throw syncFsError(dir, err as Error, null);
  }
  return syncFileSystemInChild(dir);
}

/** The helper of this process (one for every database: requests are short and answered in order). */
const syncFsHelper = new SyncFsHelper();

function syncFileSystemInChild(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(SYNC_TOOL, ["--file-system", dir], (err, _stdout, stderr) => {
      if (err === null) resolve();
      else reject(syncFsError(dir, err, stderr));
    });
  });
}

const SYNC_TOOL = "sync";

export class SyncFsError extends Error {
  override readonly name = "SyncFsError";
  readonly code = "ESYNCFS";
}

function syncFsError(
  dir: string,
  cause: Error | undefined | null,
  stderr: string | Buffer | null,
): SyncFsError {
  const detail = String(stderr ?? "").trim() || cause?.message || "failed";
  return new SyncFsError(`sync --file-system ${dir}: ${detail}`, { cause });
}
