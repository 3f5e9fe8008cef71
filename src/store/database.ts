// One database of the store: its backing files, its position, its page checksums, and the capture of
// every committed transaction into exactly one LTX file.
//
// Everything here is synchronous and runs on the thread that serves FUSE requests: a request that
// completes a commit (journal unlink/truncate/zeroing, the write completing a WAL commit frame) is
// answered only after the LTX file is written and the position has advanced.
//
// Commit capture (see commit-plan.ts for what goes into the LTX, journal-commit-detector.ts for when):
// - Rollback journal: database writes are recorded as dirty pages; at the commit point the order is
//   fsync database → LTX (temp, fsync, rename, fsync dir) → the journal operation itself → position.
//   A crash before the journal operation leaves a hot journal: recovery rolls it back and then rolls
//   the last LTX forward again, so the database and the LTX chain agree either way.
// - WAL: the write request that completes a commit frame calls captureWal() before it is answered,
//   which scans the frames written since the last capture and writes one LTX per commit frame found
//   (a capture that fails voids the frame: the client is told the commit failed). The release of the
//   WAL write lock (when the mount sees locks) and a restart of the WAL call it again, finding nothing
//   new unless frames reached the file some other way.
//
// Refused commits: every commit point a local connection reaches first asks `ctx.mayCommit()` (false
// once the node lost its lease, or is no longer primary, while the transaction was in flight). A
// refusal captures nothing (no LTX, position unchanged), leaves the files at the last committed state
// and throws ECOMMITREFUSED, which the mount answers with EIO ("disk I/O error" for the client):
// - rollback journal: the database file is restored from the journal (journal-undo.ts) and the journal
//   left not hot (empty, or its header zeroed in PERSIST) — a transaction without changes (a ROLLBACK)
//   is not refused: it commits nothing;
// - WAL: the write that completes the commit frame is refused before SQLite publishes the frame in the
//   wal-index (it does so only after writing every frame), and the frame's header is zeroed in the file
//   so that no later scan — ours, or a SQLite wal-index recovery — can ever take the frames as committed.

import fs from "node:fs";

import type { Header } from "../ltx/header.js";
import { formatPos, type Pos } from "../ltx/pos.js";
import type { BackingFiles } from "./backing-files.js";
import { stampOf, writeChecksumsFile } from "./checksums-file.js";
import { planJournalCommit, planWalCommit } from "./commit-plan.js";
import type { DatabaseSnapshotView } from "./snapshot-page-reader.js";
import {
  applyStagedPages,
  persistStagedLtx,
  persistStagedLtxBatch,
  syncAppliedDatabase,
  syncAppliedDatabaseAsync,
  type AppliedReplica,
  type ReplicaApplyTarget,
} from "./replica-apply.js";
import type { ReplicaApplyPlan, ReplicaState } from "./replica-apply-plan.js";
import type { CommitEvent } from "./commit-event.js";
import type { DatabaseDir, DatabaseFileKind } from "./data-dir.js";
import type { ChainLink } from "./divergence.js";
import { fsyncDirectory, removeFile } from "./durable-file.js";
import {
  journalCommitMode,
  type JournalCommitMode,
  type JournalOperation,
} from "./journal-commit-detector.js";
import { recentHistoryLinks } from "./history-links.js";
import { finishRefusedJournal, undoJournalTransaction } from "./journal-undo.js";
import type { LtxWriteOptions, WrittenLtx } from "./ltx-file-writer.js";
import type { PageChecksums } from "./page-checksums.js";
import {
  decodeHeaderPageSize,
  effectivePageCount,
  isValidDatabaseHeader,
  parseDatabaseHeader,
} from "./sqlite-header.js";
import { StoreError } from "./store-error.js";
import { RECENT_LINKS_KEPT, TransactionLog, type TransactionLogContext } from "./transaction-log.js";
import { WalCapture } from "./wal-capture.js";
import { WalReadAhead } from "./wal-read-ahead.js";
import { WAL_FRAME_HEADER_SIZE, type WalCommit } from "./wal-format.js";

/** What every database of a store shares: node id, fsync policy, LTX format, clock, log, subscribers. */
export interface DatabaseContext extends TransactionLogContext {
  /** Asked synchronously at every commit point a local connection reaches (see "refused commits"). */
  readonly mayCommit: (db: string) => boolean;
  /** The store rewrote `kinds` of `db` behind the kernel outside a FUSE request (the mount drops caches). */
  readonly changedBehindKernel: (db: string, kinds: readonly DatabaseFileKind[]) => void;
  /** LTX files of `db` were moved or removed other than by retention (quarantine, a snapshot). */
  readonly ltxFilesRewritten: (db: string) => void;
}

/** The state recovery hands to a Database (see recovery.ts). */
export interface RecoveredState {
  readonly pos: Pos;
  readonly checksums: PageChecksums | null;
  readonly wal: WalCapture;
  readonly walMode: boolean;
}

export class Database {
  readonly name: string;
  readonly dir: DatabaseDir;
  readonly files: BackingFiles;
  readonly #ctx: DatabaseContext;
  readonly #log: TransactionLog;
  readonly #wal: WalCapture;
  /**
   * True while the WAL holds bytes written past the last captured commit: a local write transaction in
   * flight (or one that rolled back, until the next commit or restart). Kernel-locks mode's stand-in
   * for "somebody holds the WAL write lock".
   */
  get walWritesPastCapture(): boolean {
    return this.#wal.hasUncapturedWrites;
  }

  /** The committed page 1 says WAL (read/write version 2). */
  #walMode: boolean;
  /** Pages written to the database file since the last commit point, or "all" when unknown. */
  #dirty: Set<number> | "all" = new Set();
  /**
   * The WAL frame whose commit was refused, until the next transaction writes from before it. The kernel
   * may split SQLite's page write into several requests and, when a later one fails, report the earlier
   * ones as a short write; SQLite then writes the rest again — which must be refused too.
   */
  #voidedWalFrame: { readonly start: number; readonly end: number } | null = null;
  /** Block reads of the WAL file during one captureWal (null outside it: see #readWal). */
  #walReadAhead: WalReadAhead | null = null;
  #closed = false;

  constructor(
    name: string,
    dir: DatabaseDir,
    files: BackingFiles,
    state: RecoveredState,
    ctx: DatabaseContext,
  ) {
    this.name = name;
    this.dir = dir;
    this.files = files;
    this.#ctx = ctx;
    this.#log = new TransactionLog(name, dir, state.pos, state.checksums, ctx);
    this.#wal = state.wal;
    this.#walMode = state.walMode;
  }

  get pos(): Pos {
    return this.#log.pos;
  }

  /**
   * The newest `max` (≤ RECENT_LINKS_KEPT) links of the chain ending at the position, ascending, as
   * the files in `ltx/` hold them: from memory (transaction-log.ts `recentLinks`), read from the files
   * only when the log does not know them (after opening, or after the files were rewritten).
   */
  recentHistory(max: number): ChainLink[] {
    const known = this.#log.recentLinks(max);
    if (known !== null) return known;
    const links = recentHistoryLinks(this.dir.ltxDir, this.#log.pos.txid, RECENT_LINKS_KEPT);
    this.#log.seedRecentLinks(links);
    return links.slice(Math.max(0, links.length - max));
  }

  /** LTX files of this database were moved or removed other than by retention (quarantine). */
  historyRewritten(): void {
    this.#log.forgetRecentLinks();
    this.#ctx.ltxFilesRewritten(this.name);
  }

  /** Retention removed this database's LTX files up to TXID `maxTxid`. */
  ltxFilesRetired(maxTxid: bigint): void {
    this.#log.retireRecentLinks(maxTxid);
  }

  /** `<db>-pos` content: `%016x/%016x\n` (34 bytes). */
  get posText(): string {
    return formatPos(this.#log.pos) + "\n";
  }

  /** Page size of the committed database, 0 before the first transaction. */
  get pageSize(): number {
    return this.#log.checksums?.pageSize ?? 0;
  }

  /** Pages of the committed database (0: empty, never written, or deleted). */
  get pageCount(): number {
    return this.#log.checksums?.pageCount ?? 0;
  }

  get walMode(): boolean {
    return this.#walMode;
  }

  /** WAL transactions' LTX files written but not yet made durable (transaction-log.ts "Durability"). */
  get unsyncedLtxFiles(): number {
    return this.#log.unsyncedFiles;
  }

  /** The checksum array, for saving at shutdown (never mutate it). */
  get checksums(): PageChecksums | null {
    return this.#log.checksums;
  }

  exists(kind: DatabaseFileKind): boolean {
    return this.files.exists(kind);
  }

  size(kind: DatabaseFileKind): number {
    return this.files.size(kind);
  }

  create(kind: DatabaseFileKind): void {
    this.#assertOpen();
    this.files.create(kind);
  }

  read(kind: DatabaseFileKind, offset: number, length: number): Buffer {
    this.#assertOpen();
    return this.files.read(kind, offset, length);
  }

  write(kind: DatabaseFileKind, offset: number, data: Uint8Array): void {
    this.#assertOpen();
    switch (kind) {
      case "database":
        this.#writeDatabase(offset, data);
        return;
      case "journal":
        this.#journalOperation({ type: "write", offset, data }, () =>
          this.files.write("journal", offset, data),
        );
        return;
      case "wal":
        this.#writeWal(offset, data);
        return;
      case "shm":
        this.files.write("shm", offset, data);
        return;
    }
  }

  truncate(kind: DatabaseFileKind, size: number): void {
    this.#assertOpen();
    switch (kind) {
      case "database":
        this.files.truncate("database", size);
        this.#markDirtyRange(size, 0);
        return;
      case "journal":
        this.#journalOperation({ type: "truncate", size }, () => this.files.truncate("journal", size));
        return;
      case "wal":
        if (size < this.#wal.capturedOffset) this.#captureBeforeLosingWal("truncate");
        this.files.truncate("wal", size);
        this.#wal.truncated(size);
        return;
      case "shm":
        this.files.truncate("shm", size);
        return;
    }
  }

  /** Removes a file. Unlinking the database itself deletes the database (an LTX with commit 0). */
  unlink(kind: DatabaseFileKind): void {
    this.#assertOpen();
    switch (kind) {
      case "database":
        this.#deleteDatabase();
        return;
      case "journal":
        this.#journalOperation({ type: "unlink" }, () => this.files.unlink("journal"));
        return;
      case "wal":
        this.#captureBeforeLosingWal("unlink");
        this.files.unlink("wal");
        this.#wal.reset(null);
        return;
      case "shm":
        this.files.unlink("shm");
        return;
    }
  }

  sync(kind: DatabaseFileKind): void {
    this.#assertOpen();
    this.files.sync(kind);
    // SQLite syncs the WAL for a synchronous=FULL commit and before a checkpoint, and the database
    // file after one: the LTX files of the transactions it makes durable become durable too.
    if (kind === "wal" || kind === "database") this.#log.makeDurable();
  }

  /**
   * Captures every WAL transaction committed since the last capture (one LTX each); called when a
   * write completes a commit frame (which voids the frame if this fails), before the WAL restarts, and
   * when the owner of the WAL write lock releases it. Returns how many transactions were captured.
   * Throws ECAPTURE when an LTX cannot be written.
   */
  captureWal(): number {
    this.#assertOpen();
    if (!this.files.exists("wal")) return 0;
    this.#walReadAhead = new WalReadAhead((o, n) => this.files.readPadded("wal", o, n));
    try {
      return this.#captureNewWalCommits();
    } finally {
      this.#walReadAhead = null;
    }
  }

  #captureNewWalCommits(): number {
    const source = { size: this.files.size("wal"), read: (o: number, n: number) => this.#readWal(o, n) };
    const result = this.#wal.scan(source);
    if (result === null || result.commits.length === 0) return 0;
    if (!this.#ctx.mayCommit(this.name)) {
      // Committed in the WAL (SQLite may have published them) but not captured before the node lost
      // the right to commit: never captured now. They stay in the WAL; a replica apply folds or drops them.
      throw new StoreError(
        "ECOMMITREFUSED",
        `${result.commits.length} WAL transaction(s) not captured: this node may not commit`,
        { db: this.name },
      );
    }
    // No fsync of the WAL nor of the LTX files here: WAL transactions' LTX files are made durable
    // lazily (transaction-log.ts "Durability"); recovery copes with either copy lost to a power failure.
    for (const commit of result.commits) this.#captureWalCommit(commit);
    // Database-file writes so far were checkpoints of captured content: nothing to compare later.
    this.#dirty = new Set();
    return result.commits.length;
  }

  /**
   * Captures the database file as it is now as the next transaction (recovery found pages but no LTX
   * file: the result is a snapshot at TXID 1).
   */
  captureExisting(): void {
    this.#assertOpen();
    this.#dirty = "all";
    this.#commitJournal("existing file", "recovery");
  }

  /**
   * Saves the page checksums and position (checksums-file.ts), after making the database file durable.
   * `clean` only at a shutdown after which nothing can touch the files; otherwise the file is a base
   * for a faster recovery after a crash.
   */
  saveChecksums(clean: boolean): void {
    const checksums = this.#log.checksums;
    const pos = this.#log.pos;
    if (checksums === null || pos.txid === 0n) {
      removeFile(this.dir.checksumsFile);
      return;
    }
    // Saved for `pos`, the file must hold `pos` durably: recovery trusts the saved checksums of every
    // page no later LTX file names. A replica's applier fsyncs the database only after its locks are
    // released, and this runs on a timer that can fall in between (a no-op when nothing is unsynced).
    this.files.sync("database");
    const stamp = stampOf(this.files.path("database")) ?? { size: 0n, mtimeNs: 0n, ino: 0n };
    writeChecksumsFile(
      this.dir.checksumsFile,
      { pos, clean, stamp, checksums },
      { noSync: this.#ctx.noSync },
    );
  }

  /**
   * Page `pgno` of the committed database as SQLite sees it: the latest captured WAL frame of it, or
   * the database file (zeros past its end). Requires a known page size.
   */
  readCommittedPage(pgno: number): Uint8Array {
    const pageSize = this.pageSize;
    if (pageSize === 0) throw new StoreError("EDBFILE", "the database has no pages", { db: this.name });
    const frame = this.#wal.capturedFrame(pgno);
    if (frame !== undefined) return this.files.readPadded("wal", frame + WAL_FRAME_HEADER_SIZE, pageSize);
    return this.files.readPadded("database", (pgno - 1) * pageSize, pageSize);
  }

  /**
   * Copies the captured WAL frames into the database file and removes the WAL and `-shm` (a checkpoint
   * done by the store; the committed content does not change, so no LTX). The caller must hold every
   * lock of the database: no SQLite connection may have it open.
   */
  checkpointWal(): void {
    this.#assertOpen();
    if (!this.files.exists("wal")) {
      if (this.files.exists("shm")) this.files.unlink("shm");
      return;
    }
    this.captureWal();
    this.#log.makeDurable();
    const pageSize = this.pageSize;
    if (pageSize > 0) {
      for (const pgno of [...this.#wal.capturedPages()].sort((a, b) => a - b)) {
        if (pgno <= this.pageCount)
          this.files.write("database", (pgno - 1) * pageSize, this.readCommittedPage(pgno));
      }
      const size = this.pageCount * pageSize;
      if (this.files.size("database") > size) this.files.truncate("database", size);
      this.files.sync("database");
    }
    this.files.unlink("wal");
    this.files.unlink("shm");
    this.#wal.reset(null);
    if (!this.#ctx.noSync) fsyncDirectory(this.dir.dir);
  }

  /** The header of the next transaction's LTX file (TXID pos+1, pre-apply = the position's checksum). */
  nextLtxHeader(pageSize: number, commit: number, timestamp: number): Header {
    return this.#log.nextHeader(pageSize, commit, timestamp);
  }

  get ltxWriteOptions(): LtxWriteOptions {
    return this.#log.ltxWriteOptions;
  }

  get now(): number {
    return this.#ctx.now();
  }

  /**
   * Makes an imported file the database: `ltx` (the next TXID, every page of `source`, already
   * durable) is the transaction; `source` (in the same file system) replaces the database file, the
   * journal, WAL and `-shm` go, and the position advances. The caller holds every lock.
   */
  adoptImportedFile(source: string, checksums: PageChecksums, ltx: WrittenLtx, timestamp: number): void {
    this.#assertOpen();
    if (!this.#ctx.noSync) {
      const fd = fs.openSync(source, "r");
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    this.#log.makeDurable();
    for (const kind of ["journal", "wal", "shm"] as const) this.files.unlink(kind);
    this.files.replaceWith("database", source);
    if (!this.#ctx.noSync) fsyncDirectory(this.dir.dir);
    this.#wal.reset(null);
    this.#dirty = new Set();
    this.#walMode = checksums.pageCount > 0 && this.files.readPadded("database", 0, 100)[19] === 2;
    this.#log.adopt(checksums, ltx, timestamp, "import");
  }

  /** What a replica checks an incoming LTX file against (replica-apply-plan.ts). Do not mutate. */
  get replicaState(): ReplicaState {
    return { pos: this.#log.pos, checksums: this.#log.checksums };
  }

  /**
   * Applying a planned LTX file received from the primary (replica-apply.ts), in three steps: make the
   * LTX file durable (before the locks), write it into the database and advance the position (while
   * the caller holds every lock of the database and before it invalidates the kernel's caches), fsync
   * the database (after the locks; before the next transaction's `applyStaged`).
   */
  persistStaged(plan: ReplicaApplyPlan): { supersededFiles: number } {
    this.#assertOpen();
    this.#log.makeDurable(); // a durable file must not follow lazy ones (pending-ltx-sync.ts)
    // A snapshot removes the files before it: the chain on disk is the snapshot's from now on.
    if (!plan.snapshot) return persistStagedLtx(this.#replicaTarget(), plan);
    this.#log.forgetRecentLinks();
    try {
      return persistStagedLtx(this.#replicaTarget(), plan);
    } finally {
      this.#ctx.ltxFilesRewritten(this.name);
    }
  }

  /**
   * Step 1 for a run of incremental plans at once (replica-apply.ts `persistStagedLtxBatch`): their LTX
   * files durable together, off the event loop. Each is then applied with `applyStaged(plan, NONE)`.
   */
  async persistStagedBatch(plans: readonly ReplicaApplyPlan[]): Promise<void> {
    this.#assertOpen();
    this.#log.makeDurable(); // durable files must not follow lazy ones (pending-ltx-sync.ts)
    await persistStagedLtxBatch(this.#replicaTarget(), plans);
  }

  applyStaged(plan: ReplicaApplyPlan, persisted: { supersededFiles: number }): AppliedReplica {
    this.#assertOpen();
    this.#foldWalForReplica();
    const applied = applyStagedPages(this.#replicaTarget(), plan, persisted.supersededFiles);
    // Told again once the snapshot's own commit event is out, so that a count taken now includes it once.
    if (plan.snapshot) this.#ctx.ltxFilesRewritten(this.name);
    this.#wal.reset(null);
    this.#walMode = applied.walMode;
    this.#dirty = new Set();
    return applied;
  }

  syncApplied(applied: AppliedReplica): void {
    this.#assertOpen();
    syncAppliedDatabase(this.#replicaTarget(), applied);
  }

  /** `syncApplied` with the database file's fsync off the event loop (replica-apply.ts). */
  syncAppliedAsync(applied: AppliedReplica): Promise<void> {
    this.#assertOpen();
    return syncAppliedDatabaseAsync(this.#replicaTarget(), applied);
  }

  /**
   * A database written locally (as primary, before a demotion) may keep committed pages in its WAL.
   * A replica writes pages into the database file and then tells readers to ignore the WAL (a wal-index
   * with mxFrame 0, node/replica-applier.ts), so the captured frames go into the database file first,
   * and the WAL is emptied, so that no SQLite wal-index recovery can bring them back over newer pages.
   * Frames past the captured point belong to refused or unfinished transactions and are dropped. The
   * caller holds every WAL lock (a replica apply does). Nothing happens for an empty or missing WAL.
   */
  #foldWalForReplica(): void {
    if (!this.files.exists("wal") || this.files.size("wal") === 0) return;
    // The frames are about to go: their LTX files become the only copy of those transactions.
    this.#log.makeDurable();
    const pageSize = this.pageSize;
    const folded = [...this.#wal.capturedPages()].filter((pgno) => pgno <= this.pageCount);
    if (pageSize > 0) {
      for (const pgno of folded.sort((a, b) => a - b)) {
        this.files.write("database", (pgno - 1) * pageSize, this.readCommittedPage(pgno));
      }
      const size = this.pageCount * pageSize;
      if (this.files.size("database") > size) this.files.truncate("database", size);
      this.files.sync("database");
    }
    this.files.truncate("wal", 0);
    this.files.sync("wal");
    this.#wal.reset(null);
    this.#ctx.log.info("folded the WAL into the database file before a replica apply", {
      db: this.name,
      pages: folded.length,
    });
    this.#ctx.changedBehindKernel(this.name, ["database", "wal"]);
  }

  #replicaTarget(): ReplicaApplyTarget {
    return { name: this.name, dir: this.dir, files: this.files, log: this.#log, noSync: this.#ctx.noSync };
  }

  /**
   * A frozen description of the committed database for a snapshot: its position and shape, its files,
   * and a copy of the captured WAL frame map (read it with SnapshotPageReader). Valid only while the
   * caller keeps out everything that rewrites committed bytes: rollback commits (a SHARED lock),
   * checkpoints (CKPT) and WAL restarts (a READ lock on a read mark).
   */
  snapshotView(): DatabaseSnapshotView {
    this.#assertOpen();
    return {
      pos: this.#log.pos,
      pageSize: this.pageSize,
      pageCount: this.pageCount,
      databasePath: this.files.path("database"),
      walPath: this.files.path("wal"),
      frames: [...this.#wal.capturedFramesEntries()],
    };
  }

  /** Closes the backing files; the database can no longer be used. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#log.close(); // makes pending LTX files durable; a failure is logged (the WAL holds them)
    this.files.close();
  }

  // --- rollback journal -------------------------------------------------------------------------

  #writeDatabase(offset: number, data: Uint8Array): void {
    if (!this.#walMode && !this.files.exists("journal") && !this.files.exists("wal")) {
      const err = new StoreError(
        "EJOURNALMODE",
        "write to the database file without a rollback journal or WAL: journal_mode=MEMORY or OFF cannot be " +
          "replicated; use DELETE, TRUNCATE, PERSIST or WAL",
        { db: this.name },
      );
      this.#ctx.log.error("write refused", { db: this.name, code: err.code, error: err.message });
      throw err;
    }
    // In WAL mode a database write is a checkpoint: once the database holds a transaction's pages, its
    // LTX file must not be lost to a power failure (recovery could no longer match the chain).
    this.#log.makeDurable();
    this.files.write("database", offset, data);
    this.#markDirtyRange(offset, data.length);
  }

  /** Records pages [offset, offset+length) as dirty; length 0 with a truncation only counts for size. */
  #markDirtyRange(offset: number, length: number): void {
    if (this.#dirty === "all" || length === 0) return;
    const pageSize = this.pageSize;
    if (pageSize === 0 || offset % pageSize !== 0 || length % pageSize !== 0) {
      this.#dirty = "all"; // page size unknown or changing (VACUUM): compare every page at the commit
      return;
    }
    for (let pgno = offset / pageSize + 1, end = (offset + length) / pageSize; pgno <= end; pgno++) {
      this.#dirty.add(pgno);
    }
  }

  /** Runs a journal operation; if it ends a transaction, the transaction is captured first. */
  #journalOperation(op: JournalOperation, perform: () => void): void {
    const mode = journalCommitMode(op);
    if (mode !== null) this.#commitJournal(mode); // throws ECOMMITREFUSED, the journal finished, when refused
    perform();
  }

  #commitJournal(mode: JournalCommitMode | "existing file", source: CommitEvent["source"] = "journal"): void {
    const header = this.files.readPadded("database", 0, 100);
    const fileSize = this.files.size("database");
    let pageSize = 0;
    let pageCount = 0;
    if (fileSize >= 100 && isValidDatabaseHeader(header)) {
      const parsed = parseDatabaseHeader(header);
      pageSize = parsed.pageSize;
      pageCount = effectivePageCount(parsed, fileSize);
    } else if (fileSize > 0) {
      pageSize = decodeHeaderPageSize((header[16] << 8) | header[17]);
      if (pageSize === 0) {
        throw new StoreError(
          "ECAPTURE",
          `journal commit (${mode}): database file has no valid SQLite header`,
          {
            db: this.name,
          },
        );
      }
      pageCount = Math.ceil(fileSize / pageSize);
    }
    const readPage = (pgno: number): Uint8Array =>
      this.files.readPadded("database", (pgno - 1) * pageSize, pageSize);
    const plan =
      pageSize === 0
        ? null
        : planJournalCommit({
            pageSize,
            pageCount,
            dirty: this.#dirty,
            checksums: this.#log.checksums,
            readPage,
          });
    if (plan === null) {
      this.#dirty = new Set();
      this.#ctx.log.debug("transaction ended without changes", { db: this.name, mode });
      return;
    }
    if (mode !== "existing file" && !this.#ctx.mayCommit(this.name)) this.#refuseJournalCommit(mode);
    this.files.sync("database");
    this.#log.commit(plan, readPage, source, null);
    this.#walMode = (readPage(1)[19] ?? 0) === 2;
    this.#dirty = new Set();
  }

  /**
   * Undoes the transaction whose commit point was refused (see the header) and throws ECOMMITREFUSED.
   * Afterwards the pages the transaction wrote must checksum as committed again; if they do not (the
   * journal did not hold them all), the database no longer matches its position: ECAPTURE.
   */
  #refuseJournalCommit(mode: JournalCommitMode): never {
    const written = this.#dirty;
    const undone = undoJournalTransaction(this.name, this.files);
    finishRefusedJournal(this.files, mode);
    this.#dirty = new Set();
    const header = this.files.readPadded("database", 0, 100);
    const fileSize = this.files.size("database");
    const checksums = this.#log.checksums;
    if (fileSize > 0 && checksums !== null) {
      const parsed = isValidDatabaseHeader(header) ? parseDatabaseHeader(header) : null;
      const pageSize = parsed?.pageSize ?? checksums.pageSize;
      const left = planJournalCommit({
        pageSize,
        pageCount: parsed === null ? Math.ceil(fileSize / pageSize) : effectivePageCount(parsed, fileSize),
        dirty: written,
        checksums,
        readPage: (pgno) => this.files.readPadded("database", (pgno - 1) * pageSize, pageSize),
      });
      if (left !== null) {
        throw new StoreError(
          "ECAPTURE",
          `refused commit (${mode}): ${left.pages.length} page(s) still differ from the committed ` +
            "state after restoring them from the journal",
          { db: this.name },
        );
      }
    } else if (fileSize > 0) {
      throw new StoreError("ECAPTURE", `refused commit (${mode}): the first transaction left pages behind`, {
        db: this.name,
      });
    }
    this.#ctx.log.warn("commit refused: this node may not commit; transaction undone from its journal", {
      db: this.name,
      mode,
      pagesRestored: undone.pagesRestored,
    });
    throw new StoreError("ECOMMITREFUSED", `commit refused (${mode}): this node may not commit`, {
      db: this.name,
    });
  }

  // --- WAL ----------------------------------------------------------------------------------------

  #writeWal(offset: number, data: Uint8Array): void {
    const voided = this.#voidedWalFrame;
    if (voided !== null) {
      if (offset <= voided.start) {
        this.#voidedWalFrame = null; // a new transaction (or a restart) writes from an earlier frame
      } else if (offset < voided.end) {
        throw new StoreError("ECOMMITREFUSED", "write into a refused WAL commit frame", { db: this.name });
      }
    }
    const restart = WalCapture.isHeaderWrite(offset, data.length);
    if (restart) this.#captureBeforeLosingWal("restart");
    try {
      this.files.write("wal", offset, data);
    } catch (err) {
      this.#wal.writeFailed(offset); // part of it may have reached the file: unknown bytes from there on
      throw err;
    }
    if (restart) this.#wal.reset(data.subarray(0, 32));
    this.#wal.noteWrite(offset, data);
    // A completed commit frame is the transaction's last byte: capture it now, before SQLite even
    // publishes it in the wal-index (the release of the write lock, when the mount sees locks, then
    // finds nothing new). This does not depend on seeing locks, and no reader or checkpointer can see
    // the frames before their LTX. It is the only WAL trigger in kernel-locks mode.
    const commitEnd = this.#wal.commitFrameCompletedBy(offset, data.length, (o) =>
      this.#readWal(o, WAL_FRAME_HEADER_SIZE),
    );
    if (commitEnd === null) return;
    if (!this.#ctx.mayCommit(this.name)) this.#refuseWalCommit(commitEnd);
    try {
      this.captureWal();
    } catch (err) {
      // The client hears of the failure (EIO): SQLite rolls the transaction back and a later writer
      // overwrites its frames. A frame left valid could be captured later (a restart, a lock release)
      // as a transaction the client was told failed: void it, as a refused commit is voided.
      if (this.#wal.capturedOffset < commitEnd) {
        const walOffset = this.#voidWalCommitFrame(commitEnd);
        this.#ctx.log.error("WAL commit capture failed; commit frame voided", {
          db: this.name,
          walOffset,
          error: (err as Error).message,
        });
      }
      throw err;
    }
  }

  /**
   * Refuses the commit frame ending at `end` (see the header): its header is zeroed in the file — the
   * frame, and with it the transaction, is no longer valid for any scan — and ECOMMITREFUSED thrown.
   * SQLite has not published the frame in the wal-index yet: readers keep seeing the last commit, and
   * the next writer overwrites the frames from there.
   */
  #refuseWalCommit(end: number): never {
    const frameOffset = this.#voidWalCommitFrame(end);
    this.#ctx.log.warn("commit refused: this node may not commit; WAL commit frame voided", {
      db: this.name,
      walOffset: frameOffset,
    });
    throw new StoreError("ECOMMITREFUSED", "WAL commit refused: this node may not commit", {
      db: this.name,
    });
  }

  /** Zeroes the header of the commit frame ending at `end`; returns the frame's offset. */
  #voidWalCommitFrame(end: number): number {
    const pageSize = this.#wal.header?.pageSize ?? 0;
    const frameOffset = end - WAL_FRAME_HEADER_SIZE - pageSize;
    const zeros = new Uint8Array(WAL_FRAME_HEADER_SIZE);
    this.files.write("wal", frameOffset, zeros);
    this.#wal.noteWrite(frameOffset, zeros);
    this.#voidedWalFrame = { start: frameOffset, end };
    return frameOffset;
  }

  /**
   * Before the WAL's frames can be lost (restart, truncation, unlink), capture any committed frames
   * not captured yet: a write-lock release that failed to capture must not lose transactions.
   */
  #captureBeforeLosingWal(why: string): void {
    if (this.#wal.header !== null) {
      const captured = this.captureWal();
      if (captured > 0)
        this.#ctx.log.warn("captured WAL transactions late", { db: this.name, why, count: captured });
    }
    // Once the frames are gone, the LTX files are the only copy of their transactions: make their
    // renames durable first (the deferred directory fsync, transaction-log.ts).
    this.#log.makeDurable();
  }

  /**
   * WAL bytes for the capture: from the requests that wrote them when still held (WalCapture
   * `mirrored`), else from the file (zeros past its end; in blocks during a capture, wal-read-ahead.ts).
   * A view, valid until the next read or change of the WAL.
   */
  #readWal(offset: number, length: number): Uint8Array {
    return (
      this.#wal.mirrored(offset, length) ??
      this.#walReadAhead?.read(offset, length) ??
      this.files.readPadded("wal", offset, length)
    );
  }

  #captureWalCommit(commit: WalCommit): void {
    const header = this.#wal.header;
    if (header === null) throw new Error("WAL capture without a header");
    const pageSize = header.pageSize;
    const readFrame = (frameOffset: number): Uint8Array =>
      this.#readWal(frameOffset + WAL_FRAME_HEADER_SIZE, pageSize);
    const readPage = (pgno: number): Uint8Array => {
      const frame = this.#wal.capturedFrame(pgno);
      if (frame !== undefined) return readFrame(frame);
      return this.files.readPadded("database", (pgno - 1) * pageSize, pageSize);
    };
    const plan = planWalCommit({
      pageSize,
      pageCount: commit.dbPageCount,
      framePages: commit.pages,
      checksums: this.#log.checksums,
      readFrame,
      readPage,
    });
    const readPlanned = (pgno: number): Uint8Array => {
      const frame = commit.pages.get(pgno);
      return frame === undefined ? readPage(pgno) : readFrame(frame);
    };
    this.#log.commit(plan, readPlanned, "wal", {
      walOffset: commit.startOffset,
      walSize: commit.endOffset - commit.startOffset,
      walSalt1: header.salt1,
      walSalt2: header.salt2,
    });
    // Page 1 says whether the database is in WAL mode; a transaction that did not write it left it as
    // it was (read before `advance`, while its frame may still be in memory).
    if (commit.pages.has(1) || !this.#walMode) this.#walMode = (readPlanned(1)[19] ?? 0) === 2;
    this.#wal.advance(commit);
  }

  // --- deletion -----------------------------------------------------------------------------------

  #deleteDatabase(): void {
    if (this.#log.pos.txid !== 0n && this.pageCount > 0) {
      if (!this.#ctx.mayCommit(this.name)) {
        throw new StoreError("ECOMMITREFUSED", "deleting the database refused: this node may not commit", {
          db: this.name,
        });
      }
      const pageSize = this.pageSize;
      this.#log.commit(
        { pageSize, pageCount: 0, pages: [], fullImage: false },
        () => new Uint8Array(0),
        "delete",
        null,
      );
    }
    this.#log.makeDurable();
    for (const kind of ["journal", "wal", "shm", "database"] as const) this.files.unlink(kind);
    this.#wal.reset(null);
    this.#walMode = false;
    this.#dirty = new Set();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError("ECLOSED", "database is closed", { db: this.name });
  }
}
