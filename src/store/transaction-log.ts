// The chain of committed transactions of one database: its position (TXID + rolling checksum), the
// page checksums behind that checksum, and the writing of the next LTX file. Every commit — journal,
// WAL, deletion, import — goes through `commit` (or `adopt` for an LTX written elsewhere), which keeps
// the invariants:
// - TXIDs advance by exactly one per LTX file; pre-apply = the previous post-apply checksum (0 for
//   the snapshot at TXID 1); post-apply = FLAG | XOR of the page checksums after the transaction.
// - The LTX file is in place (renamed; durable as "Durability" below says) before the position
//   advances or anyone is told (subscribers).
// - If the LTX cannot be written, nothing changes (the checksum array is restored).
//
// Durability (docs/store.md "Durability"): a journal transaction's LTX file is durable (file fsync,
// rename, directory fsync) before the commit is acknowledged — the journal is deleted right after, so
// the LTX is the only copy. A WAL transaction's LTX file is written and renamed WITHOUT fsync: the WAL
// holds a second copy, SQLite's own contract for a WAL commit without a sync (synchronous=NORMAL) is
// "survives a process crash, may be lost on power loss", and the page cache survives a process crash.
// PendingLtxSync makes those files durable in the background on a short timer, and at once (`makeDurable`)
// when SQLite syncs the WAL or the database (synchronous=FULL commits, checkpoints), before the WAL can
// lose frames (restart, truncation, unlink, store checkpoint, deletion, import), before a journal
// commit, and at close. After a power failure, recovery (ltx-tail.ts) drops a torn or missing tail and
// re-captures from the WAL whatever the WAL still holds, or cuts the chain back to what the database
// and WAL hold when the WAL lost frames its LTX files kept.

import { EMPTY_DATABASE_CHECKSUM } from "../ltx/checksum.js";
import type { Header } from "../ltx/header.js";
import { formatPos, type Pos } from "../ltx/pos.js";
import type { CommitEvent } from "./commit-event.js";
import type { CommitPlan } from "./commit-plan.js";
import type { DatabaseDir } from "./data-dir.js";
import type { ChainLink } from "./divergence.js";
import { writeLtxFile, type LtxWriteOptions, type WrittenLtx } from "./ltx-file-writer.js";
import { PageChecksums } from "./page-checksums.js";
import { PendingLtxSync } from "./pending-ltx-sync.js";
import { SpareLtxFile } from "./spare-ltx-file.js";
import { StoreError } from "./store-error.js";
import type { StoreLogger } from "./store-logger.js";

/**
 * Links of the chain kept in memory (recentLinks): more than a replica reports when it connects
 * (RECENT_LINKS_SENT, 256), so that a primary finds every file from a replica's oldest reported link
 * on in it without listing its directory.
 */
export const RECENT_LINKS_KEPT = 320;

export interface TransactionLogContext {
  readonly nodeId: bigint;
  readonly noSync: boolean;
  readonly ltx: LtxWriteOptions;
  readonly now: () => number;
  readonly log: StoreLogger;
  readonly emit: (event: CommitEvent) => void;
}

/** A transaction received from the primary, as the checksum array needs it. */
export interface ReplicatedChange {
  readonly pageSize: number;
  /** Database size in pages afterwards (0: deleted). */
  readonly commit: number;
  /** Pages written (ascending) and their checksums; ignored for a snapshot. */
  readonly pgnos: readonly number[];
  readonly checksums: readonly bigint[];
  /** A snapshot's complete checksum array, or null for an incremental file. */
  readonly snapshot: PageChecksums | null;
}

/** Where a transaction's frames sit in the WAL (LTX header fields); null for journal transactions. */
export interface WalSegment {
  readonly walOffset: number;
  readonly walSize: number;
  readonly walSalt1: number;
  readonly walSalt2: number;
}

export class TransactionLog {
  readonly #db: string;
  readonly #dir: DatabaseDir;
  readonly #ctx: TransactionLogContext;
  #pos: Pos;
  #checksums: PageChecksums | null;
  /** WAL transactions' LTX files not yet durable (null with noSync: nothing is ever fsynced). */
  readonly #pending: PendingLtxSync | null;
  /** An empty temporary file created ahead of the next WAL transaction's LTX file. */
  readonly #spare: SpareLtxFile;
  /** The context's LTX options with its fsync policy (built once: a commit is a hot path). */
  readonly #ltxWriteOptions: LtxWriteOptions;
  /**
   * The newest links of the chain that ends at the position (≤ RECENT_LINKS_KEPT, ascending), as the
   * files in `ltx/` tell them — kept here so that a replica's stream request and a primary's catch-up
   * need not read hundreds of file headers and list the directory each time (they did: tens of ms at
   * every reconnect, more with every file retention keeps). Null while unknown (at open, after the
   * files were rewritten behind the log): `seedRecentLinks` sets it from the files, a file from TXID 1
   * sets it whole.
   */
  #recent: ChainLink[] | null = null;

  constructor(
    db: string,
    dir: DatabaseDir,
    pos: Pos,
    checksums: PageChecksums | null,
    ctx: TransactionLogContext,
  ) {
    this.#db = db;
    this.#dir = dir;
    this.#pos = pos;
    this.#checksums = checksums;
    this.#ctx = ctx;
    this.#pending = ctx.noSync ? null : new PendingLtxSync(db, dir.ltxDir, ctx.log);
    this.#spare = new SpareLtxFile(dir.ltxDir);
    this.#ltxWriteOptions = Object.freeze({ ...ctx.ltx, noSync: ctx.noSync });
  }

  get pos(): Pos {
    return this.#pos;
  }

  /** The checksum array of the committed state (null before the first transaction). Never mutate it. */
  get checksums(): PageChecksums | null {
    return this.#checksums;
  }

  get context(): TransactionLogContext {
    return this.#ctx;
  }

  /** The header of the next transaction's LTX file. */
  nextHeader(pageSize: number, commit: number, timestamp: number, wal: WalSegment | null = null): Header {
    const txid = this.#pos.txid + 1n;
    return {
      flags: 0,
      pageSize,
      commit,
      minTxid: txid,
      maxTxid: txid,
      timestamp,
      preApplyChecksum: txid === 1n ? 0n : this.#pos.checksum,
      walOffset: wal?.walOffset ?? 0,
      walSize: wal?.walSize ?? 0,
      walSalt1: wal?.walSalt1 ?? 0,
      walSalt2: wal?.walSalt2 ?? 0,
      nodeId: this.#ctx.nodeId,
    };
  }

  /**
   * Makes every LTX file written so far durable (file and directory fsyncs; a no-op when none is
   * pending). Throws if an fsync fails.
   */
  makeDurable(): void {
    this.#pending?.syncNow();
  }

  /** LTX files written without fsync and not yet made durable. */
  get unsyncedFiles(): number {
    return this.#pending?.count ?? 0;
  }

  /** Makes pending files durable (errors logged) and stops the background timer. */
  close(): void {
    this.#pending?.close();
    this.#spare.close();
  }

  get ltxWriteOptions(): LtxWriteOptions {
    return this.#ltxWriteOptions;
  }

  /**
   * The newest `max` links of the chain ending at the position, ascending, or null when the log does
   * not know them (then read them from the files: history-links.ts, and `seedRecentLinks`).
   */
  recentLinks(max: number): ChainLink[] | null {
    if (this.#recent === null) return null;
    return this.#recent.slice(Math.max(0, this.#recent.length - max));
  }

  /**
   * Takes `links` (read from the files, ascending) as the recent chain if they end exactly at the
   * position; otherwise the chain stays unknown. Returns whether they were taken.
   */
  seedRecentLinks(links: readonly ChainLink[]): boolean {
    const last = links.at(-1);
    const pos = this.#pos;
    const fits =
      last === undefined
        ? pos.txid === 0n
        : last.maxTxid === pos.txid && last.postApplyChecksum === pos.checksum;
    this.#recent = fits ? links.slice(Math.max(0, links.length - RECENT_LINKS_KEPT)) : null;
    return fits;
  }

  /** The LTX files were moved or replaced behind the log (quarantine, a snapshot's superseding): forget the chain. */
  forgetRecentLinks(): void {
    this.#recent = null;
  }

  /** Retention removed the files up to TXID `maxTxid`: they are no part of the chain on disk any more. */
  retireRecentLinks(maxTxid: bigint): void {
    if (this.#recent === null) return;
    const keep = this.#recent.findIndex((l) => l.maxTxid > maxTxid);
    this.#recent = keep < 0 ? [] : this.#recent.slice(keep);
  }

  /**
   * Writes `plan` as the next transaction (pages read through `readPage`), then advances the position
   * and notifies subscribers. Throws ECAPTURE (nothing changed) when the LTX cannot be written.
   */
  commit(
    plan: CommitPlan,
    readPage: (pgno: number) => Uint8Array,
    source: CommitEvent["source"],
    wal: WalSegment | null,
  ): void {
    const txid = this.#pos.txid + 1n;
    const next = this.#stageChecksums(plan);
    const postApplyChecksum = next.sums.pageCount === 0 ? EMPTY_DATABASE_CHECKSUM : next.sums.checksum;
    const timestamp = this.#ctx.now();
    // Lazy only for WAL transactions (the WAL keeps a second copy); a journal transaction's file must
    // be durable, and so must every file before it (recovery checks only a tail of lazy files).
    const lazy = wal !== null && this.#pending !== null;
    let written: WrittenLtx;
    try {
      if (!lazy || this.#pending.full) this.makeDurable();
      written = writeLtxFile(
        this.#dir,
        {
          header: this.nextHeader(plan.pageSize, plan.pageCount, timestamp, wal),
          pgnos: plan.pages.map((p) => p.pgno),
          readPage,
          postApplyChecksum,
        },
        {
          format: this.#ltxWriteOptions.format,
          noSync: this.#ltxWriteOptions.noSync,
          deferSync: lazy,
          temp: wal !== null ? this.#spare.take() : undefined,
        },
      );
    } catch (err) {
      next.undo();
      throw new StoreError("ECAPTURE", "could not write the transaction's LTX file", {
        db: this.#db,
        txid,
        cause: err,
      });
    }
    if (lazy) this.#pending.added(written.path);
    this.#advance(next.sums, written, timestamp, plan.pages.length, source);
  }

  /** Adopts an LTX file already written for the next TXID (import) whose pages give `checksums`. */
  adopt(
    checksums: PageChecksums,
    written: WrittenLtx,
    timestamp: number,
    source: CommitEvent["source"],
  ): void {
    const pages = checksums.pageCount - (checksums.lockPgno <= checksums.pageCount ? 1 : 0);
    this.#advance(checksums, written, timestamp, pages, source);
  }

  /**
   * Adopts a transaction received from the primary whose LTX file is already durable at `written` and
   * whose pages are already in the database file (database.ts `applyStaged`): the checksum array
   * takes the new pages (or is replaced by a snapshot's), the position moves to the file's max TXID,
   * subscribers hear of it. Throws EAPPLY, changing nothing, when the result is not `pos` — the plan
   * (replica-apply-plan.ts) checked that already, so that would be a bug.
   */
  adoptReplicated(change: ReplicatedChange, pos: Pos, written: WrittenLtx, timestamp: number): void {
    let next: PageChecksums;
    let undo = (): void => undefined;
    if (change.snapshot !== null) {
      next = change.snapshot;
    } else if (change.commit === 0) {
      next = new PageChecksums(change.pageSize, 0);
    } else {
      const staged = this.#stageChecksums({
        pageSize: change.pageSize,
        pageCount: change.commit,
        pages: change.pgnos.map((pgno, i) => ({ pgno, checksum: change.checksums[i] })),
        fullImage: false,
      });
      next = staged.sums;
      undo = staged.undo;
    }
    const actual = next.pageCount === 0 ? EMPTY_DATABASE_CHECKSUM : next.checksum;
    if (actual !== pos.checksum) {
      undo();
      throw new StoreError(
        "EAPPLY",
        `replicated transaction leaves checksum ${actual.toString(16)}, expected ${pos.checksum.toString(16)}`,
        { db: this.#db, txid: pos.txid, file: written.path },
      );
    }
    const pages =
      change.snapshot === null
        ? change.pgnos.length
        : next.pageCount - (next.lockPgno <= next.pageCount ? 1 : 0);
    // An incremental file continues the position (replica-apply-plan.ts); a snapshot starts at TXID 1.
    const minTxid = change.snapshot !== null ? 1n : this.#pos.txid + 1n;
    this.#advance(next, written, timestamp, pages, "replication", pos.txid, minTxid);
  }

  #advance(
    checksums: PageChecksums,
    written: WrittenLtx,
    timestamp: number,
    pages: number,
    source: CommitEvent["source"],
    txid: bigint = this.#pos.txid + 1n,
    minTxid: bigint = txid,
  ): void {
    const prevPos = this.#pos;
    this.#checksums = checksums;
    this.#pos = {
      txid,
      checksum: checksums.pageCount === 0 ? EMPTY_DATABASE_CHECKSUM : checksums.checksum,
    };
    this.#addRecentLink(prevPos, minTxid, txid);
    if (this.#ctx.log.debugEnabled !== false) {
      const text = formatPos(this.#pos);
      this.#ctx.log.debug("commit", {
        db: this.#db,
        txid: text.slice(0, 16),
        checksum: text.slice(17),
        pages,
        commit: checksums.pageCount,
        source,
      });
    }
    this.#ctx.emit({
      db: this.#db,
      pos: this.#pos,
      prevPos,
      pageSize: checksums.pageSize,
      commit: checksums.pageCount,
      pageCount: pages,
      ltxPath: written.path,
      ltxBytes: written.bytes,
      timestamp,
      source,
    });
  }

  /**
   * The file holding TXIDs `minTxid`…`txid`, just adopted, as the chain's newest link. A file from
   * TXID 1 (a snapshot, whose apply removed every other file, or a database's first transaction) is
   * the whole chain, known even when the links before were not: a replica that joined by snapshot
   * would otherwise read its files at its first handoff, on the way to accepting writes.
   */
  #addRecentLink(prevPos: Pos, minTxid: bigint, txid: bigint): void {
    if (this.#recent === null && minTxid !== 1n) return;
    const link: ChainLink = {
      minTxid,
      maxTxid: txid,
      preApplyChecksum: minTxid === 1n ? 0n : prevPos.checksum,
      postApplyChecksum: this.#pos.checksum,
    };
    if (minTxid === 1n || this.#recent === null) {
      this.#recent = [link];
    } else {
      this.#recent.push(link);
      if (this.#recent.length > RECENT_LINKS_KEPT) this.#recent.shift();
    }
  }

  /** The checksum array after `plan`, and how to undo the change if the LTX cannot be written. */
  #stageChecksums(plan: CommitPlan): { sums: PageChecksums; undo: () => void } {
    const current = this.#checksums;
    if (plan.fullImage || current === null || current.pageSize !== plan.pageSize) {
      const sums = new PageChecksums(plan.pageSize, plan.pageCount);
      for (const page of plan.pages) sums.set(page.pgno, page.checksum);
      return { sums, undo: () => undefined };
    }
    const oldCount = current.pageCount;
    const saved: [number, bigint][] = [];
    for (let pgno = plan.pageCount + 1; pgno <= oldCount; pgno++) {
      if (pgno !== current.lockPgno) saved.push([pgno, current.get(pgno)]);
    }
    current.resize(plan.pageCount);
    for (const page of plan.pages) {
      if (page.pgno <= oldCount) saved.push([page.pgno, current.get(page.pgno)]);
      current.set(page.pgno, page.checksum);
    }
    return {
      sums: current,
      undo: () => {
        current.resize(oldCount);
        for (const [pgno, checksum] of saved) current.set(pgno, checksum);
      },
    };
  }
}
