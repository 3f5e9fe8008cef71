// Keeping a replica's diverged history instead of dropping it (LiteFS loses it silently, #282). When
// the primary's snapshot is about to replace transactions the primary's history lacks (or cannot vouch
// for), the replica first moves its LTX files holding those TXIDs into
//
//   <data>/quarantine/<db>/<UTC time>-<from TXID>-<to TXID>/%016x-%016x.ltx   + quarantine.json
//
// An operator can read them with `litefs ltx` tools, or rebuild the lost writes from them. When the
// files do not cover the whole range (retention removed some), the database as it stands — the
// diverged end state — is written there as a snapshot LTX file too, so no diverged write is ever lost.
// Files move by rename (same file system); the directory is fsynced before anything else changes.

import fs from "node:fs";
import path from "node:path";

import { formatFileName } from "../ltx/file-name.js";
import type { Header } from "../ltx/header.js";
import type { Database } from "./database.js";
import { fsyncDirectory, writeFileDurably } from "./durable-file.js";
import { listLtxFiles } from "./ltx-directory.js";
import { LtxFileWriter } from "./ltx-file-writer.js";
import { SnapshotPageReader } from "./snapshot-page-reader.js";

export interface QuarantineRequest {
  /** First and last TXID of the replica's history that the primary's does not hold (or vouch for). */
  readonly fromTxid: bigint;
  readonly toTxid: bigint;
  readonly verdict: "diverged" | "unverifiable";
  /** Why, for the record: the primary's snapshot reason and detail. */
  readonly reason: string;
  /** Who the primary was (hostname or URL), for the record. */
  readonly primary: string;
  readonly nowMs: number;
  readonly noSync?: boolean;
}

export interface QuarantineResult {
  readonly dir: string;
  /** LTX files moved there (names). */
  readonly files: readonly string[];
  /** Name of the snapshot of the diverged end state, when the files did not cover the range. */
  readonly snapshotFile: string | null;
  readonly fromTxid: bigint;
  readonly toTxid: bigint;
}

/** Moves the LTX files of `db` that hold TXIDs ≥ fromTxid into the quarantine directory `root`. */
export function quarantineHistory(db: Database, root: string, req: QuarantineRequest): QuarantineResult {
  const stamp = new Date(req.nowMs)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  const dir = path.join(root, db.name, `${stamp}-${hex(req.fromTxid)}-${hex(req.toTxid)}`);
  fs.mkdirSync(dir, { recursive: true });
  const moving = listLtxFiles(db.dir.ltxDir).filter((f) => f.maxTxid >= req.fromTxid);
  // Covered: the moved files run without a gap from (at or before) fromTxid up to toTxid.
  let covered = moving.length > 0 && moving[0].minTxid <= req.fromTxid;
  for (let i = 1; covered && i < moving.length; i++) {
    covered = moving[i].minTxid === moving[i - 1].maxTxid + 1n;
  }
  covered &&= moving.at(-1)!.maxTxid >= req.toTxid;

  let snapshotFile: string | null = null;
  if (!covered && db.pageCount > 0) snapshotFile = writeSnapshot(db, dir, req);
  for (const file of moving) fs.renameSync(file.path, path.join(dir, file.name));
  db.historyRewritten(); // after the moves: a listener counts what is left
  const record = {
    db: db.name,
    verdict: req.verdict,
    fromTxid: hex(req.fromTxid),
    toTxid: hex(req.toTxid),
    position: hex(db.pos.txid) + "/" + hex(db.pos.checksum),
    reason: req.reason,
    primary: req.primary,
    time: new Date(req.nowMs).toISOString(),
    files: moving.map((f) => f.name),
    snapshotOfDivergedState: snapshotFile,
  };
  writeFileDurably(path.join(dir, "quarantine.json"), [Buffer.from(JSON.stringify(record, null, 2) + "\n")], {
    noSync: req.noSync,
  });
  if (req.noSync !== true) {
    fsyncDirectory(dir);
    fsyncDirectory(db.dir.ltxDir);
  }
  return { dir, files: moving.map((f) => f.name), snapshotFile, fromTxid: req.fromTxid, toTxid: req.toTxid };
}

/** The database as it is now, as a snapshot LTX file (TXIDs 1..position) in `dir`. */
function writeSnapshot(db: Database, dir: string, req: QuarantineRequest): string {
  const view = db.snapshotView();
  const header: Header = {
    flags: 0,
    pageSize: view.pageSize,
    commit: view.pageCount,
    minTxid: 1n,
    maxTxid: view.pos.txid,
    timestamp: req.nowMs,
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
  };
  const writer = new LtxFileWriter({ ltxFile: (a, b) => path.join(dir, formatFileName(a, b)) }, header, {
    ...db.ltxWriteOptions,
    noSync: req.noSync,
  });
  const lock = db.checksums?.lockPgno ?? 0;
  const reader = new SnapshotPageReader(view);
  try {
    for (let pgno = 1; pgno <= view.pageCount; pgno++) {
      if (pgno !== lock) writer.writePage(pgno, reader.readPage(pgno));
    }
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    reader.close();
  }
  return path.basename(writer.commit(view.pos.checksum).path);
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}
