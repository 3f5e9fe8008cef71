// The newest LTX files of a database after a possible power failure (recovery.ts step 2).
//
// WAL transactions' LTX files are written without fsync and made durable later (pending-ltx-sync.ts),
// so after a power failure the newest of them — never more than MAX_UNSYNCED_LTX_FILES, and only this
// node's own WAL transactions (header walOffset > 0, this node's id) — may be missing, empty, cut short
// or zero-filled, in any combination (the kernel writes dirty pages back in no particular order).
// Every file before the newest file that is not of that kind is durable: a journal transaction's file,
// a replicated or imported one, is written only after every pending file was made durable.
//
// `inspectLtxTail` finds that "lazy tail", verifies each of its files completely (CRC-64 and every
// format rule), and splits the list at the first torn file: it and every file after it are lost (the
// chain may not have a gap). A damaged file that does not look torn — full length with a non-zero
// trailer, e.g. a flipped bit — is not something a power failure does: that stays an error naming
// the file. Nothing is removed here; recovery removes the lost files once the rest checks out.
//
// `cutBackIndex` covers the other way a power failure splits the two copies: the WAL lost frames (or
// its header) that lazy LTX files kept. Recovery then looks in the lazy tail for the newest file whose
// post-apply checksum is what the database and WAL hold, and drops the files after it.

import fs from "node:fs";

import { LtxError } from "../ltx/errors.js";
import type { Header } from "../ltx/header.js";
import type { LtxSummary } from "../ltx/parser.js";
import { readLtxFileSync, readLtxHeaderAndTrailer } from "./ltx-file-reader.js";
import type { LtxFileEntry } from "./ltx-directory.js";
import { MAX_UNSYNCED_LTX_FILES } from "./pending-ltx-sync.js";

export interface LostLtxFile {
  readonly entry: LtxFileEntry;
  readonly reason: string;
}

export interface LtxTail {
  /** The files that stay, ascending. */
  readonly kept: LtxFileEntry[];
  /** The first torn file and every file after it, ascending (empty when nothing was torn). */
  readonly torn: LostLtxFile[];
  /** Index in `kept` of the first file of the lazy tail (kept.length when there is none). */
  readonly lazyStart: number;
  /** Verified summaries of kept[lazyStart..], in the same order. */
  readonly lazySummaries: LtxSummary[];
}

/**
 * Splits `files` (ascending, as listed) into what stays and what a power failure tore; see the file
 * comment. `nodeId` undefined: every file counts as this node's own.
 */
export function inspectLtxTail(files: readonly LtxFileEntry[], nodeId: bigint | undefined): LtxTail {
  const windowStart = Math.max(0, files.length - MAX_UNSYNCED_LTX_FILES);
  let lazyStart = files.length;
  while (lazyStart > windowStart && mayBeUnsynced(files[lazyStart - 1], nodeId)) lazyStart--;

  const summaries: LtxSummary[] = [];
  for (let i = lazyStart; i < files.length; i++) {
    const entry = files[i];
    try {
      summaries.push(readLtxFileSync(entry.path));
    } catch (err) {
      const reason = tornReason(entry, err);
      if (reason === undefined) throw err;
      const torn: LostLtxFile[] = [{ entry, reason }];
      for (const later of files.slice(i + 1))
        torn.push({ entry: later, reason: `follows torn ${entry.name}` });
      return { kept: files.slice(0, i), torn, lazyStart, lazySummaries: summaries };
    }
  }
  return { kept: files.slice(), torn: [], lazyStart, lazySummaries: summaries };
}

/** This node's own WAL transaction (written lazily), or a file whose header cannot be read. */
function mayBeUnsynced(entry: LtxFileEntry, nodeId: bigint | undefined): boolean {
  let header: Header;
  try {
    header = readLtxHeaderAndTrailer(entry.path).header;
  } catch {
    return true; // unreadable: judged by the full verification
  }
  return header.walOffset > 0 && (nodeId === undefined || header.nodeId === nodeId);
}

/** Why `err` (from verifying `entry`) looks like a write the power failure did not let finish, or undefined. */
function tornReason(entry: LtxFileEntry, err: unknown): string | undefined {
  let size: number;
  let tail: Buffer;
  try {
    size = fs.statSync(entry.path).size;
    tail = Buffer.alloc(Math.min(8, size));
    const fd = fs.openSync(entry.path, "r");
    try {
      fs.readSync(fd, tail, 0, tail.length, size - tail.length);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (size === 0) return "empty";
  if (err instanceof LtxError && err.code === "ELTXTRUNCATED") return "cut short";
  if (tail.every((b) => b === 0)) return `zero-filled end (${(err as Error).message})`;
  return undefined;
}

/**
 * The index in `kept` of the newest file whose post-apply checksum is `actual`, such that every file
 * after it belongs to the lazy tail (so may have outlived a WAL that lost its copy); -1 if none.
 */
export function cutBackIndex(tail: LtxTail, kept: readonly LtxFileEntry[], actual: bigint): number {
  for (let i = kept.length - 2; i >= tail.lazyStart - 1 && i >= 0; i--) {
    const post =
      i >= tail.lazyStart
        ? tail.lazySummaries[i - tail.lazyStart].trailer.postApplyChecksum
        : readLtxHeaderAndTrailer(kept[i].path).trailer.postApplyChecksum;
    if (post === actual) return i;
  }
  return -1;
}
