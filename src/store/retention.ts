// Retention of LTX files by age (config `data.retention`): files older than the retention period are
// removed, except the newest file of each database, which is always kept (it holds the position that
// a restart and a replica's catch-up start from). `filesToRetire` decides; `LtxRetention` removes.

import fs from "node:fs";

import type { Pos } from "../ltx/pos.js";
import type { DatabaseDir } from "./data-dir.js";
import { listLtxFiles } from "./ltx-directory.js";
import { removeFile } from "./durable-file.js";

export interface RetentionCandidate {
  readonly maxTxid: bigint;
}

/**
 * The files to remove: those whose age at `nowMs` exceeds `retentionMs`, never the one with the
 * highest TXID. The result is in ascending TXID order, so removal leaves a contiguous tail.
 *
 * `mtimeOf` gives a file's last modification time (ms since the epoch), or undefined when the file is
 * gone (skipped). It is asked in TXID order and only up to the first file still young — a store keeps
 * hundreds of thousands of files within the retention period at a high write rate, and a pass must
 * not stat them all.
 */
export function filesToRetire<T extends RetentionCandidate>(
  files: readonly T[],
  nowMs: number,
  retentionMs: number,
  mtimeOf: (file: T) => number | undefined,
): T[] {
  if (files.length <= 1) return [];
  let sorted = files;
  for (let i = 1; i < files.length; i++) {
    if (files[i - 1].maxTxid > files[i].maxTxid) {
      sorted = [...files].sort((a, b) => (a.maxTxid < b.maxTxid ? -1 : a.maxTxid > b.maxTxid ? 1 : 0));
      break;
    }
  }
  const out: T[] = [];
  // Stop at the first file still young enough: removing only a prefix keeps the chain unbroken.
  for (let i = 0; i < sorted.length - 1; i++) {
    const mtimeMs = mtimeOf(sorted[i]);
    if (mtimeMs === undefined) continue;
    if (nowMs - mtimeMs <= retentionMs) break;
    out.push(sorted[i]);
  }
  return out;
}

/** What a retention pass removed from one database. */
export interface RetiredFiles {
  readonly files: number;
  readonly bytes: number;
  /** The highest TXID removed (0 when none). */
  readonly upToTxid: bigint;
}

/** A database as retention needs it. */
export interface RetentionTarget {
  readonly dir: Pick<DatabaseDir, "ltxDir" | "ltxFile">;
  readonly pos: Pos;
}

/**
 * Applies `filesToRetire` to databases, pass after pass. A pass starts where the previous one left the
 * oldest file and walks the names from there (`%016x-%016x.ltx`, one TXID per file as a primary
 * writes them) — a stat and an unlink per file removed, no listing of the directory, which holds every
 * file of the retention period (a listing of 100,000 took ~0.3 s of the thread that serves the mount).
 * It lists the directory instead when it knows no oldest file yet (the first pass) or the walk meets a
 * name that is not there (a snapshot's or a replicated range file, files moved by a quarantine).
 */
export class LtxRetention {
  readonly #oldest = new WeakMap<RetentionTarget, { minTxid: bigint; maxTxid: bigint }>();

  retire(db: RetentionTarget, nowMs: number, retentionMs: number): RetiredFiles {
    return this.#walk(db, nowMs, retentionMs) ?? this.#pass(db, nowMs, retentionMs);
  }

  /** The walk from the oldest file known; null when it cannot start (then list). */
  #walk(db: RetentionTarget, nowMs: number, retentionMs: number): RetiredFiles | null {
    let file = this.#oldest.get(db);
    if (file === undefined) return null;
    let files = 0;
    let bytes = 0;
    let upToTxid = 0n;
    // Never the file that ends at the position (the newest), nor one past it.
    while (file.maxTxid < db.pos.txid) {
      const filePath = db.dir.ltxFile(file.minTxid, file.maxTxid);
      const st = fs.statSync(filePath, { throwIfNoEntry: false });
      if (st === undefined) {
        this.#oldest.delete(db);
        return files === 0 ? null : { files, bytes, upToTxid };
      }
      if (nowMs - st.mtimeMs <= retentionMs) break;
      removeFile(filePath);
      files++;
      bytes += st.size;
      upToTxid = file.maxTxid;
      file = { minTxid: file.maxTxid + 1n, maxTxid: file.maxTxid + 1n };
    }
    this.#oldest.set(db, file);
    return { files, bytes, upToTxid };
  }

  /** A pass over a listing of the directory; remembers the oldest file left. */
  #pass(db: RetentionTarget, nowMs: number, retentionMs: number): RetiredFiles {
    const listed = listLtxFiles(db.dir.ltxDir);
    const sizes = new Map<string, number>();
    const retire = filesToRetire(listed, nowMs, retentionMs, (file) => {
      const st = fs.statSync(file.path, { throwIfNoEntry: false });
      if (st !== undefined) sizes.set(file.path, st.size);
      return st?.mtimeMs;
    });
    let bytes = 0;
    for (const file of retire) {
      removeFile(file.path);
      bytes += sizes.get(file.path) ?? 0;
    }
    const oldest = listed.find((f) => f.maxTxid > (retire.at(-1)?.maxTxid ?? 0n));
    if (oldest === undefined) this.#oldest.delete(db);
    else this.#oldest.set(db, { minTxid: oldest.minTxid, maxTxid: oldest.maxTxid });
    return { files: retire.length, bytes, upToTxid: retire.at(-1)?.maxTxid ?? 0n };
  }
}
