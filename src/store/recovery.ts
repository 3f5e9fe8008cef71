// Opening one database after a clean stop or a crash: bring its files to a committed state and prove
// that they match the last LTX file, reading as few pages as that proof needs.
//
// 1. Leftover temporary files of interrupted writes are removed (they were never renamed into place).
// 2. The newest files that may not have been durable (WAL transactions' LTX files are fsynced lazily,
//    pending-ltx-sync.ts) are verified; a torn one and every file after it count as lost to a power
//    failure (ltx-tail.ts). The position is the last remaining LTX file's (max TXID, post-apply
//    checksum); that file is verified.
// 3. A hot rollback journal is rolled back (its transaction never finished) and removed.
// 4. A WAL is scanned: commits up to the last LTX's WAL segment (same salts) are already captured;
//    later commits are captured by the caller right after opening (Database.captureWal), which is
//    safe because SQLite itself treats every frame up to a valid commit frame as committed: any
//    reader would see them, so the LTX chain must include them.
// 5. Page checksums of the committed state (database file overlaid with the captured WAL frames):
//    - clean stop, position and database file stamp unchanged: the saved array as is (no page read);
//    - otherwise, the last saved array plus a recomputation of only the pages a crash could have
//      touched: those named by LTX files written after the saved position, rolled back from the
//      journal, or found in captured WAL frames;
//    - without a usable saved array (none, damaged, other page size, LTX files it needs were removed
//      by retention) or with `verify`: every page (a full pass), and the log says why.
// 6. The rolling checksum must equal the position's. If it equals the last LTX's pre-apply checksum
//    instead (a crash after the LTX was written but before the journal was finished, whose rollback
//    just undid it), that LTX is applied again (roll forward). Anything else is ECHECKSUM: the
//    database was changed behind the node's back or is corrupt; nothing is modified — except when the
//    database and WAL hold exactly the state after an earlier file of the lazy tail (the WAL lost
//    frames to a power failure that its LTX files survived): the chain is cut back to that file.
// Files found lost (torn, or cut back) are removed only once everything else checked out, with a
// warning naming each; before that, nothing on disk changes but the journal rollback of step 3.

import fs from "node:fs";
import path from "node:path";

import { EMPTY_DATABASE_CHECKSUM, lockPgno, pageChecksum } from "../ltx/checksum.js";
import type { Header } from "../ltx/header.js";
import { formatPos, type Pos, ZERO_POS } from "../ltx/pos.js";
import { applyLtxToDatabaseFile } from "./apply-ltx.js";
import type { BackingFiles } from "./backing-files.js";
import { readChecksumsFile, stampOf, stampsEqual, type SavedChecksums } from "./checksums-file.js";
import type { DatabaseDir } from "./data-dir.js";
import type { RecoveredState } from "./database.js";
import { fsyncDirectory, removeFile } from "./durable-file.js";
import { journalLooksHot, journalRollbackPages, rolledBackFileSize } from "./journal-format.js";
import { readLtxFileSync, readLtxHeaderAndTrailer } from "./ltx-file-reader.js";
import { listLtxFiles, removeTempFiles, type LtxFileEntry } from "./ltx-directory.js";
import { cutBackIndex, inspectLtxTail, type LostLtxFile } from "./ltx-tail.js";
import { PageChecksums } from "./page-checksums.js";
import { PlannedChecksums, type PageChecksumsView } from "./planned-checksums.js";
import { committedShape, positionWal } from "./recovered-wal.js";
import { REPLICA_RUN_MAX_FILES } from "./replica-apply.js";
import { checksumAfterPages } from "./replica-apply-plan.js";
import { StoreError } from "./store-error.js";
import type { StoreLogger } from "./store-logger.js";
import { WAL_FRAME_HEADER_SIZE } from "./wal-format.js";

export interface RecoveryOptions {
  /** Recompute every page's checksum, whatever was saved. */
  readonly verify: boolean;
  readonly log: StoreLogger;
  /**
   * This node's id. An LTX file written by another node (a replica's copy of the primary's) may be
   * rolled forward whenever applying it provably yields its post-apply checksum — a replica may crash
   * in the middle of applying one. Undefined: treat every file as this node's own.
   */
  readonly nodeId?: bigint;
}

/** How the checksums were established, for the log and for tests. */
export type ChecksumSource = "none" | "clean" | "partial" | "full";

export interface RecoveryReport {
  readonly checksumSource: ChecksumSource;
  /** Why a full pass was needed (undefined when none was). */
  readonly fullPassReason: string | undefined;
  /** Pages whose checksum was recomputed. */
  readonly pagesRead: number;
  readonly journalRolledBack: boolean;
  readonly rolledForward: boolean;
  /** The database has pages but no LTX file: the caller captures it as a snapshot. */
  readonly needsSnapshot: boolean;
  /** LTX files removed as lost to a power failure (torn, or cut back to match the database), by name. */
  readonly lostLtxFiles: readonly string[];
}

export interface Recovered {
  readonly state: RecoveredState;
  readonly report: RecoveryReport;
}

export function recoverDatabase(
  name: string,
  dir: DatabaseDir,
  files: BackingFiles,
  opts: RecoveryOptions,
): Recovered {
  dir.ensure();
  const removed = [...removeTempFiles(dir.ltxDir), ...removeTempFiles(dir.dir)];
  if (removed.length > 0) opts.log.info("removed unfinished temporary files", { db: name, files: removed });

  const tail = inspectLtxTail(listLtxFiles(dir.ltxDir), opts.nodeId);
  for (const { entry, reason } of tail.torn) {
    opts.log.warn("LTX file torn by a power failure: its transaction is re-captured from the WAL or lost", {
      db: name,
      file: entry.name,
      reason,
    });
  }
  const lost: LostLtxFile[] = [...tail.torn];
  let ltxFiles = tail.kept;
  let last = ltxFiles.at(-1);
  let lastHeader: Header | undefined;
  let pos: Pos = ZERO_POS;
  if (last !== undefined) {
    const verified = ltxFiles.length > tail.lazyStart ? tail.lazySummaries.at(-1) : undefined;
    const summary = verified ?? readLtxFileSync(last.path); // throws LtxError naming a damaged file
    lastHeader = summary.header;
    pos = { txid: last.maxTxid, checksum: summary.trailer.postApplyChecksum };
    if (summary.header.maxTxid !== last.maxTxid || summary.header.minTxid !== last.minTxid) {
      throw new StoreError("EDATADIR", `LTX file name does not match its header TXIDs`, {
        db: name,
        file: last.path,
      });
    }
  }

  const journalRolledBack = rollBackHotJournal(name, dir, files, opts.log);
  const touched = new Set<number>(journalRolledBack?.pages ?? []);

  // WAL: position the capture after the commits the last LTX already holds.
  let wal = positionWal(files, lastHeader);
  for (const pgno of wal.touched) touched.add(pgno);

  // The committed state's shape: page size and count, as SQLite would see them.
  let { pageSize, pageCount } = committedShape(files, wal, lastHeader);
  const readPage = (pgno: number): Uint8Array => {
    const frame = wal.capture.capturedFrame(pgno);
    if (frame !== undefined) return files.readPadded("wal", frame + WAL_FRAME_HEADER_SIZE, pageSize);
    return files.readPadded("database", (pgno - 1) * pageSize, pageSize);
  };

  if (pageSize === 0 || (pageCount === 0 && pos.txid === 0n)) {
    return {
      state: {
        pos,
        checksums: pageSize === 0 ? null : new PageChecksums(pageSize, 0),
        wal: wal.capture,
        walMode: false,
      },
      report: report(
        "none",
        undefined,
        0,
        journalRolledBack !== null,
        false,
        false,
        removeLost(dir, lost, opts),
      ),
    };
  }

  let saved: SavedChecksums | null = null;
  try {
    saved = readChecksumsFile(dir.checksumsFile);
  } catch (err) {
    opts.log.warn("ignoring damaged checksums file", { db: name, error: (err as Error).message });
  }

  const computed = establishChecksums({
    saved,
    pos,
    pageSize,
    pageCount,
    touched,
    verify: opts.verify,
    journalRolledBack: journalRolledBack !== null,
    dbStamp: stampOf(files.path("database")),
    ltxFiles,
    readPage,
  });
  let { checksums } = computed;
  let source = computed.source;
  let fullPassReason = computed.fullPassReason;
  let pagesRead = computed.pagesRead;
  let rolledForward = false;

  if (pos.txid === 0n) {
    // Pages but no LTX file: the caller captures the database as it is as TXID 1.
    opts.log.warn("database has pages but no LTX file: capturing it as a snapshot", {
      db: name,
      pages: pageCount,
    });
    return {
      state: { pos, checksums: null, wal: wal.capture, walMode: readPage(1)[19] === 2 },
      report: report(
        source,
        fullPassReason,
        pagesRead,
        journalRolledBack !== null,
        false,
        true,
        removeLost(dir, lost, opts),
      ),
    };
  }

  for (let attempt = 0; ; attempt++) {
    const actual = checksums.pageCount === 0 ? EMPTY_DATABASE_CHECKSUM : checksums.checksum;
    if (actual === pos.checksum) break;
    const preApply = lastHeader!.minTxid === 1n ? EMPTY_DATABASE_CHECKSUM : lastHeader!.preApplyChecksum;
    // This node's id when the last file was written by another (a replica's copy of the primary's).
    const replicaOf = opts.nodeId !== undefined && lastHeader!.nodeId !== opts.nodeId ? opts.nodeId : null;
    let run: readonly LtxFileEntry[] | null = null;
    if (!rolledForward && replicaOf !== null) {
      if (wal.capture.header === null) run = replicaRunYielding(checksums, ltxFiles, replicaOf, pos.checksum);
    } else if (!rolledForward && lastHeader!.walOffset === 0 && actual === preApply) {
      run = [last!];
    }
    if (run !== null) {
      // The last transaction's LTX is durable but its journal was rolled back (or never finished), or
      // a replica crashed while writing the pages of a run of transactions whose LTX files it had made
      // durable first: redo them from their LTX files so the database and the chain agree.
      let pageSize = checksums.pageSize;
      let commit = checksums.pageCount;
      const written = new Set<number>();
      for (const entry of run) {
        const applied = applyLtxToDatabaseFile(files, entry.path);
        if (applied.header.pageSize !== pageSize) written.clear();
        pageSize = applied.header.pageSize;
        commit = applied.header.commit;
        for (const pgno of applied.pgnos) written.add(pgno);
      }
      opts.log.info(
        run.length === 1
          ? "rolled the last transaction forward from its LTX file"
          : "rolled the last transactions forward from their LTX files",
        { db: name, txid: hexTxid(pos.txid), files: run.length },
      );
      rolledForward = true;
      if (commit === 0) {
        checksums = new PageChecksums(pageSize, 0);
        continue;
      }
      if (checksums.pageSize !== pageSize) checksums = new PageChecksums(pageSize, 0);
      checksums.resize(commit);
      for (const pgno of written) {
        if (pgno > commit) continue;
        checksums.setPage(pgno, files.readPadded("database", (pgno - 1) * pageSize, pageSize));
      }
      pagesRead += written.size;
      if (checksums.unknownCount > 0) {
        // Pages the LTX files did not carry were never in doubt before: recompute the array honestly.
        checksums = PageChecksums.scanFile(files.create("database"), pageSize, commit);
        pagesRead += commit;
      }
      continue;
    }
    if (source !== "full") {
      opts.log.warn("checksum mismatch after a partial check: rechecking every page", {
        db: name,
        expected: formatPos(pos),
        actual: actual.toString(16),
      });
      checksums = fullPass(pageSize, pageCount, readPage);
      pagesRead += pageCount;
      source = "full";
      fullPassReason = "mismatch after partial check";
      continue;
    }
    const cut = rolledForward || lost.length > tail.torn.length ? -1 : cutBackIndex(tail, ltxFiles, actual);
    if (cut >= 0) {
      // The WAL lost frames (or its header) that LTX files of the lazy tail kept: the database and WAL
      // hold exactly the state after file `cut`. Those later transactions are lost with the WAL's copy.
      for (const entry of ltxFiles.slice(cut + 1)) {
        lost.push({ entry, reason: "ahead of the database and WAL after a power failure" });
        opts.log.warn("LTX file ahead of what the database and WAL hold after a power failure: dropped", {
          db: name,
          file: entry.name,
        });
      }
      ltxFiles = ltxFiles.slice(0, cut + 1);
      last = ltxFiles[cut];
      const { header, trailer } = readLtxHeaderAndTrailer(last.path);
      lastHeader = header;
      pos = { txid: last.maxTxid, checksum: trailer.postApplyChecksum };
      wal = positionWal(files, lastHeader);
      ({ pageSize, pageCount } = committedShape(files, wal, lastHeader));
      checksums = fullPass(pageSize, pageCount, readPage);
      pagesRead += pageCount;
      continue;
    }
    throw new StoreError(
      "ECHECKSUM",
      `database does not match its last LTX file ${path.basename(last!.path)}: checksum ` +
        `${actual.toString(16).padStart(16, "0")}, expected ${pos.checksum.toString(16).padStart(16, "0")}. ` +
        `It was changed outside LiteFS or is damaged; nothing was modified. Restore it from a backup or ` +
        `re-import it (litefs import), or remove the database's directory to start over`,
      { db: name, txid: pos.txid, file: files.path("database") },
    );
  }

  return {
    state: { pos, checksums, wal: wal.capture, walMode: checksums.pageCount > 0 && readPage(1)[19] === 2 },
    report: report(
      source,
      fullPassReason,
      pagesRead,
      journalRolledBack !== null,
      rolledForward,
      false,
      removeLost(dir, lost, opts),
    ),
  };
}

/** Removes the files found lost (after recovery succeeded) durably; returns their names. */
function removeLost(dir: DatabaseDir, lost: readonly LostLtxFile[], opts: RecoveryOptions): string[] {
  if (lost.length === 0) return [];
  for (const { entry } of lost) removeFile(entry.path);
  fsyncDirectory(dir.ltxDir);
  const names = lost.map(({ entry }) => entry.name);
  opts.log.warn("removed LTX files lost to a power failure", { files: names });
  return names;
}

/**
 * The newest LTX files that, written in order over the database whose page checksums are `checksums`,
 * give `post` — computed from the files' page checksums, without touching the database — or null when
 * no such run exists. Only files written by another node (a replica's copies of the primary's) are
 * considered, consecutive TXIDs, the newest REPLICA_RUN_MAX_FILES at most (replica-apply.ts: a replica
 * makes a run's LTX files durable before it writes any of its pages, and the database durable after;
 * a crash in between leaves a database that only the whole run, or its end, rolls forward). The
 * shortest run that works is taken; a longer one only rewrites pages with what they already hold.
 */
function replicaRunYielding(
  checksums: PageChecksums,
  ltxFiles: readonly LtxFileEntry[],
  nodeId: bigint,
  post: bigint,
): LtxFileEntry[] | null {
  const files: { entry: LtxFileEntry; header: Header; pgnos: number[]; sums: bigint[] }[] = [];
  const fail = (detail: string): never => {
    throw new Error(detail);
  };
  for (let i = ltxFiles.length - 1; i >= 0 && files.length < REPLICA_RUN_MAX_FILES; i--) {
    const entry = ltxFiles[i];
    if (files.length > 0 && entry.maxTxid + 1n !== files[0].entry.minTxid) break;
    const pgnos: number[] = [];
    const sums: bigint[] = [];
    let header: Header;
    try {
      header = readLtxFileSync(entry.path, (page) => {
        pgnos.push(page.pgno);
        sums.push(pageChecksum(page.pgno, page.data));
      }).header;
    } catch {
      break; // a file that cannot describe the database cannot fix it either
    }
    if (header.nodeId === nodeId) break;
    files.unshift({ entry, header, pgnos, sums });
    try {
      let view: PageChecksumsView | null = checksums;
      let result = 0n;
      for (const file of files) {
        const { pageSize, commit } = file.header;
        result = checksumAfterPages(
          view,
          pageSize,
          commit,
          { pgnos: file.pgnos, pageChecksums: file.sums },
          fail,
        );
        view =
          commit === 0
            ? null
            : PlannedChecksums.after(view, {
                pageSize,
                commit,
                pgnos: file.pgnos,
                pageChecksums: file.sums,
                checksum: result,
                lockPgno: lockPgno(pageSize),
              });
      }
      if (result === post) return files.map((file) => file.entry);
    } catch {
      // These pages cannot make a whole database of this one (a page it grows by is missing): a longer
      // run may.
    }
  }
  return null;
}

function report(
  checksumSource: ChecksumSource,
  fullPassReason: string | undefined,
  pagesRead: number,
  journalRolledBack: boolean,
  rolledForward: boolean,
  needsSnapshot: boolean,
  lostLtxFiles: readonly string[],
): RecoveryReport {
  return {
    checksumSource,
    fullPassReason,
    pagesRead,
    journalRolledBack,
    rolledForward,
    needsSnapshot,
    lostLtxFiles,
  };
}

interface EstablishInput {
  saved: SavedChecksums | null;
  pos: Pos;
  pageSize: number;
  pageCount: number;
  touched: ReadonlySet<number>;
  verify: boolean;
  journalRolledBack: boolean;
  dbStamp: ReturnType<typeof stampOf>;
  ltxFiles: readonly LtxFileEntry[];
  readPage: (pgno: number) => Uint8Array;
}

interface Established {
  checksums: PageChecksums;
  source: ChecksumSource;
  fullPassReason: string | undefined;
  pagesRead: number;
}

function establishChecksums(input: EstablishInput): Established {
  const { saved, pos, pageSize, pageCount } = input;
  const full = (reason: string): Established => ({
    checksums: fullPass(pageSize, pageCount, input.readPage),
    source: "full",
    fullPassReason: reason,
    pagesRead: pageCount,
  });
  if (input.verify) return full("--verify");
  if (saved === null) return full("no saved checksums");
  if (saved.checksums.pageSize !== pageSize)
    return full(`saved checksums are for page size ${saved.checksums.pageSize}`);
  if (saved.pos.txid > pos.txid) return full("saved checksums are ahead of the last LTX file");
  if (
    saved.clean &&
    saved.pos.txid === pos.txid &&
    saved.pos.checksum === pos.checksum &&
    !input.journalRolledBack &&
    input.dbStamp !== null &&
    stampsEqual(saved.stamp, input.dbStamp) &&
    saved.checksums.pageCount === pageCount
  ) {
    return { checksums: saved.checksums, source: "clean", fullPassReason: undefined, pagesRead: 0 };
  }
  if (saved.clean && !input.journalRolledBack && saved.pos.txid === pos.txid) {
    // Nothing ran between the clean stop and now, yet the file is not as it was left.
    return full("the database file changed after the clean shutdown");
  }
  // Partial: pages of the LTX files after the saved position, plus what the crash could have touched.
  const touched = new Set(input.touched);
  if (saved.pos.txid < pos.txid) {
    const after = input.ltxFiles.filter((f) => f.maxTxid > saved.pos.txid);
    if (after.length === 0 || after[0].minTxid > saved.pos.txid + 1n) {
      return full(`LTX files after TXID ${hexTxid(saved.pos.txid)} were removed by retention`);
    }
    for (const file of after) {
      try {
        readLtxFileSync(file.path, (page) => touched.add(page.pgno));
      } catch (err) {
        return full(`LTX file ${file.name} is unreadable: ${(err as Error).message}`);
      }
    }
  }
  const checksums = saved.checksums;
  const oldCount = checksums.pageCount;
  checksums.resize(pageCount);
  for (let pgno = oldCount + 1; pgno <= pageCount; pgno++) touched.add(pgno);
  let pagesRead = 0;
  for (const pgno of touched) {
    if (pgno > pageCount || pgno === checksums.lockPgno) continue;
    checksums.setPage(pgno, input.readPage(pgno));
    pagesRead++;
  }
  return { checksums, source: "partial", fullPassReason: undefined, pagesRead };
}

/** Every page's checksum, reading the database file in large chunks and WAL frames over it. */
function fullPass(
  pageSize: number,
  pageCount: number,
  readPage: (pgno: number) => Uint8Array,
): PageChecksums {
  const sums = new PageChecksums(pageSize, pageCount);
  for (let pgno = 1; pgno <= pageCount; pgno++) {
    if (pgno !== sums.lockPgno) sums.setPage(pgno, readPage(pgno));
  }
  return sums;
}

/**
 * Rolls back a hot journal as SQLite would (original pages written back, database cut to its size
 * before the transaction) and removes it. Returns the restored pages, or null when there was none.
 */
function rollBackHotJournal(
  name: string,
  dir: DatabaseDir,
  files: BackingFiles,
  log: StoreLogger,
): { pages: number[] } | null {
  if (!files.exists("journal")) return null;
  const journal = fs.readFileSync(files.path("journal"));
  if (!journalLooksHot(journal.subarray(0, 28), files.size("database"))) return null;
  const rollback = journalRollbackPages(journal);
  if (rollback === undefined) {
    // No valid header: nothing of this transaction reached the database file.
    files.unlink("journal");
    fsyncDirectory(dir.dir);
    log.info("removed a journal whose transaction never reached the database", { db: name });
    return { pages: [] };
  }
  if (rollback.superJournal !== undefined && !fs.existsSync(rollback.superJournal)) {
    // A multi-database commit whose super-journal is gone has committed: just drop the journal.
    files.unlink("journal");
    fsyncDirectory(dir.dir);
    return { pages: [] };
  }
  const newSize = rolledBackFileSize(files.size("database"), rollback);
  if (newSize !== files.size("database")) files.truncate("database", newSize);
  for (const [pgno, page] of rollback.pages) files.write("database", (pgno - 1) * rollback.pageSize, page);
  files.sync("database");
  files.unlink("journal");
  fsyncDirectory(dir.dir);
  log.info("rolled back a hot journal", { db: name, pages: rollback.pages.size });
  return { pages: [...rollback.pages.keys()] };
}

function hexTxid(txid: bigint): string {
  return txid.toString(16).padStart(16, "0");
}
