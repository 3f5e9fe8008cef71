// Carrying out a replica's apply plans (replica-apply-plan.ts) on the database's files, in three steps
// so that the locks readers wait for are held as briefly as possible:
//
//   1. persist — before the locks: the LTX files become durable under their final names. A run of
//      incremental files (persistStagedLtxBatch): every file fsynced at once on the thread pool (one
//      the stager held in memory written first: behind while its run arrived, or here, the run's
//      last), all renamed in TXID order on the thread pool, the directory fsynced once — two fsyncs'
//      wait for the run instead of two per file. A snapshot (persistStagedLtx): after removing the
//      older LTX files it supersedes (the caller has already quarantined those the primary's history
//      lacks), with its temporary database file fsynced;
//   2. applyStagedPages — under every lock a SQLite writer would take (the caller's), once per file in
//      TXID order: the pages go into the database file (a snapshot's file is renamed over it), the file
//      is cut to the commit size, the position moves and subscribers hear of it;
//   3. syncAppliedDatabase — after the locks: the database file (and directory) fsynced; the replica
//      applier uses syncAppliedDatabaseAsync and lets it finish before its next lock round.
//
// The database file is durable at the run's first position before the run's first page is written
// (the previous run's step 3), and no page of the run is written before all of its LTX files are
// durable. So a crash at any
// point leaves the database at that position, or partly written over by pages of the run, with every
// LTX file of the run on disk: recovery rolls the run forward from its files when that provably yields
// the last file's post-apply checksum (recovery.ts), trying the newest REPLICA_RUN_MAX_FILES files.
import assert from "node:assert/strict";
import fs from "node:fs";

import { posEqual, type Pos } from "../ltx/pos.js";
import type { BackingFiles } from "./backing-files.js";
import type { DatabaseDir } from "./data-dir.js";
import { fsyncDirectory, fsyncPathAsync, removeFile, writeTemp } from "./durable-file.js";
import { listLtxFiles } from "./ltx-directory.js";
import { readLtxFileSync } from "./ltx-file-reader.js";
import type { StagedLtx } from "./ltx-stager.js";
import type { ReplicaApplyPlan } from "./replica-apply-plan.js";
import type { TransactionLog } from "./transaction-log.js";

/**
 * Most incremental LTX files applied as one run (persisted together, then written): recovery rolls
 * forward over up to this many of the newest files.
 */
export const REPLICA_RUN_MAX_FILES = 64;

export interface ReplicaApplyTarget {
  readonly name: string;
  readonly dir: DatabaseDir;
  readonly files: BackingFiles;
  readonly log: TransactionLog;
  readonly noSync: boolean;
}

export interface AppliedReplica {
  readonly pos: Pos;
  readonly snapshot: boolean;
  /** Pages written to the database file (all of them for a snapshot). */
  readonly pages: number;
  /** The database's size in pages afterwards; 0 when the transaction deleted it. */
  readonly pageCount: number;
  /** Page 1 says WAL (read/write version 2). */
  readonly walMode: boolean;
  /** The database file did not exist before (a first snapshot). */
  readonly created: boolean;
  /** LTX files removed because the snapshot supersedes them. */
  readonly supersededFiles: number;
  /** When the transaction was committed on the primary (its LTX header), ms since the epoch. */
  readonly timestamp: number;
}

/**
 * Step 1 for a run of incremental files (plans in TXID order, each continuing the one before): every
 * file durable under its final name (see the header). Throws without renaming anything when an fsync
 * fails; a rename that fails leaves the files before it in place, which is harmless — the database did
 * not move, and the stream sends those transactions again (their files are overwritten by name).
 */
export async function persistStagedLtxBatch(
  target: ReplicaApplyTarget,
  plans: readonly ReplicaApplyPlan[],
): Promise<void> {
  if (plans.length === 0) return;
  assertUnmoved(target, plans[0]);
  for (const plan of plans)
    assert.ok(!plan.snapshot, "replica apply: a snapshot in a run of incremental files");
  if (plans.some((plan) => plan.staged.bytes !== null && plan.staged.written === null)) target.dir.ensure();
  await Promise.all(plans.map((plan) => persistTempAsync(plan.staged, !target.noSync)));
  assertUnmoved(target, plans[0]);
  // One after the other in TXID order, as the synchronous loop before did, but on the thread pool: a
  // rename blocks in the kernel as a creation does (6 % of a busy replica's main thread in session
  // 21's profile).
  for (const { staged } of plans) await fs.promises.rename(staged.tempPath, staged.finalPath);
  if (!target.noSync) await fsyncPathAsync(target.dir.ltxDir);
}

/** Step 1 for one file, a snapshot's included: the LTX file durable under its final name. */
export function persistStagedLtx(
  target: ReplicaApplyTarget,
  plan: ReplicaApplyPlan,
): { supersededFiles: number } {
  const { staged } = plan;
  const { dir, noSync } = target;
  assertUnmoved(target, plan);
  persistTempSync(target, staged, !noSync);
  let supersededFiles = 0;
  if (plan.snapshot) {
    for (const file of listLtxFiles(dir.ltxDir)) {
      if (file.path === staged.finalPath) continue;
      removeFile(file.path);
      supersededFiles++;
    }
    if (!noSync && staged.snapshot !== null) syncFile(staged.snapshot.databasePath);
  }
  fs.renameSync(staged.tempPath, staged.finalPath);
  if (!noSync) fsyncDirectory(dir.ltxDir);
  return { supersededFiles };
}

/** Step 2, under the locks: the database file takes the transaction and the position moves. */
export function applyStagedPages(
  target: ReplicaApplyTarget,
  plan: ReplicaApplyPlan,
  supersededFiles: number,
): AppliedReplica {
  const { staged } = plan;
  const { header } = staged;
  const { files } = target;
  assertUnmoved(target, plan);
  const created = !files.exists("database");
  let pages = staged.pgnos.length;
  if (header.commit === 0) {
    for (const kind of ["journal", "wal", "shm", "database"] as const) files.unlink(kind);
    pages = 0;
  } else if (staged.snapshot !== null) {
    files.replaceWith("database", staged.snapshot.databasePath);
    pages = staged.snapshot.checksums.pageCount;
  } else {
    const write = (pgno: number, data: Uint8Array): void =>
      files.write("database", (pgno - 1) * header.pageSize, data);
    if (staged.pages !== null) {
      staged.pages.forEach((data, i) => write(staged.pgnos[i], data));
    } else {
      readLtxFileSync(staged.finalPath, (page) => write(page.pgno, page.data));
    }
    const size = header.commit * header.pageSize;
    if (files.size("database") !== size) files.truncate("database", size);
  }
  const walMode = header.commit > 0 && files.readPadded("database", 0, 100)[19] === 2;
  // A WAL-mode database needs its -wal to exist for SQLite to open it read-only: an empty one says
  // "nothing beyond the database file" (the mount refuses to let readers create it).
  if (walMode && !files.exists("wal")) files.create("wal");
  target.log.adoptReplicated(
    {
      pageSize: header.pageSize,
      commit: header.commit,
      pgnos: staged.pgnos,
      checksums: staged.pageChecksums,
      snapshot: staged.snapshot?.checksums ?? null,
    },
    plan.pos,
    { path: staged.finalPath, bytes: staged.size },
    header.timestamp,
  );
  return {
    pos: plan.pos,
    snapshot: plan.snapshot,
    pages,
    pageCount: header.commit,
    walMode,
    created,
    supersededFiles,
    timestamp: header.timestamp,
  };
}

/** Step 3, after the locks: the database file durable (and its directory, when names changed). */
export function syncAppliedDatabase(target: ReplicaApplyTarget, applied: AppliedReplica): void {
  if (target.noSync) return;
  if (applied.pageCount > 0) target.files.sync("database");
  if (applied.created || applied.pageCount === 0 || applied.snapshot) fsyncDirectory(target.dir.dir);
}

/**
 * Step 3 with the database file's fsync on the thread pool (the directory's, rare, on the caller's
 * thread first). The caller must let it finish before any page of the next transaction is written.
 */
export async function syncAppliedDatabaseAsync(
  target: ReplicaApplyTarget,
  applied: AppliedReplica,
): Promise<void> {
  if (target.noSync) return;
  if (applied.created || applied.pageCount === 0 || applied.snapshot) fsyncDirectory(target.dir.dir);
  if (applied.pageCount > 0) await target.files.syncAsync("database");
}

function assertUnmoved(target: ReplicaApplyTarget, plan: ReplicaApplyPlan): void {
  assert.ok(
    posEqual(target.log.pos, plan.from),
    `replica apply: the database moved from ${plan.from.txid} to ${target.log.pos.txid} since the plan`,
  );
}

/**
 * A staged file durable under its temporary name, the fsync on the thread pool: a file the stager
 * held in memory is written first — awaited when its write started at staging, else here on the
 * event loop (the last file of a stream's run, applied at once: a write on the thread pool would only
 * put more hops before its fsync). The caller made the directory exist.
 */
async function persistTempAsync(staged: StagedLtx, sync: boolean): Promise<void> {
  if (staged.written !== null) await staged.written;
  else if (staged.bytes !== null) writeTemp(staged.tempPath, [staged.bytes], null);
  if (sync) await fsyncPathAsync(staged.tempPath);
}

/** `persistTempAsync` on the event loop (a snapshot, a HALT transaction: one file). */
function persistTempSync(target: ReplicaApplyTarget, staged: StagedLtx, sync: boolean): void {
  assert.equal(staged.written, null, "replica apply: a file written behind, persisted synchronously");
  if (staged.bytes === null) {
    if (sync) syncFile(staged.tempPath);
    return;
  }
  target.dir.ensure();
  writeTemp(staged.tempPath, [staged.bytes], sync ? fs.fsyncSync : null);
}

function syncFile(file: string): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
