// What one committed transaction changes, decided from data: which pages go into its LTX file, with
// their new checksums, and the database's page count and page size after it. The caller reads pages
// through the callbacks and does all other I/O (writing the LTX, updating the checksum array).
//
// - Rollback journal (planJournalCommit): the candidate pages are those written to the database file
//   since the last commit point; a page whose checksum did not change is left out, and if nothing
//   changed and the page count is the same there is no transaction at all (a ROLLBACK writes the
//   original pages back and ends exactly like a commit).
// - WAL (planWalCommit): the pages of the commit's frames (last version of each), up to the commit
//   frame's database size. Always a transaction, even when no checksum changed.
// - Either way, a "full image" plan (no checksums yet, or a new page size) lists every page.

import { lockPgno } from "../ltx/checksum.js";
import { pageChecksum } from "../ltx/checksum.js";
import type { PageChecksums } from "./page-checksums.js";

export interface PlannedPage {
  readonly pgno: number;
  readonly checksum: bigint;
}

export interface CommitPlan {
  readonly pageSize: number;
  /** Database size in pages after the transaction (the LTX header's `commit`). */
  readonly pageCount: number;
  /** Pages to put in the LTX, ascending, never the lock page. */
  readonly pages: readonly PlannedPage[];
  /** True when `pages` is every page 1..pageCount and the checksum array must be rebuilt from them. */
  readonly fullImage: boolean;
}

/** Reads page `pgno` as SQLite would see it after the transaction (pageSize bytes). */
export type PageReader = (pgno: number) => Uint8Array;

export interface JournalCommitInput {
  readonly pageSize: number;
  readonly pageCount: number;
  /** Pages written to the database file since the last commit point; "all" when not known page by page. */
  readonly dirty: ReadonlySet<number> | "all";
  /** Current checksums (null before the first transaction). */
  readonly checksums: PageChecksums | null;
  readonly readPage: PageReader;
}

export function planJournalCommit(input: JournalCommitInput): CommitPlan | null {
  const { pageSize, pageCount, checksums } = input;
  if (checksums === null || checksums.pageSize !== pageSize) {
    if (pageCount === 0) return null;
    return fullImagePlan(pageSize, pageCount, input.readPage);
  }
  const candidates = new Set<number>();
  if (input.dirty === "all") {
    for (let pgno = 1; pgno <= pageCount; pgno++) candidates.add(pgno);
  } else {
    for (const pgno of input.dirty) if (pgno <= pageCount) candidates.add(pgno);
  }
  // Pages the database grew by are part of the transaction even if no write named them.
  for (let pgno = checksums.pageCount + 1; pgno <= pageCount; pgno++) candidates.add(pgno);
  const lock = lockPgno(pageSize);
  candidates.delete(lock);
  const pages: PlannedPage[] = [];
  for (const pgno of [...candidates].sort((a, b) => a - b)) {
    const checksum = pageChecksum(pgno, input.readPage(pgno));
    if (pgno > checksums.pageCount || checksums.get(pgno) !== checksum) pages.push({ pgno, checksum });
  }
  if (pages.length === 0 && pageCount === checksums.pageCount) return null;
  return { pageSize, pageCount, pages, fullImage: false };
}

export interface WalCommitInput {
  readonly pageSize: number;
  /** The commit frame's database size. */
  readonly pageCount: number;
  /** Pages of the transaction's frames → offset of their last frame (see wal-format's WalCommit). */
  readonly framePages: ReadonlyMap<number, number>;
  readonly checksums: PageChecksums | null;
  /** Reads a page from its frame (by the frame header offset). */
  readonly readFrame: (frameOffset: number) => Uint8Array;
  /** Reads a page the transaction did not write, as SQLite sees it (earlier WAL frames or the database). */
  readonly readPage: PageReader;
}

export function planWalCommit(input: WalCommitInput): CommitPlan {
  const { pageSize, pageCount, framePages, checksums } = input;
  const read = (pgno: number): Uint8Array => {
    const offset = framePages.get(pgno);
    return offset === undefined ? input.readPage(pgno) : input.readFrame(offset);
  };
  if (checksums === null || checksums.pageSize !== pageSize) return fullImagePlan(pageSize, pageCount, read);
  const lock = lockPgno(pageSize);
  const candidates = new Set<number>();
  for (const pgno of framePages.keys()) if (pgno <= pageCount) candidates.add(pgno);
  for (let pgno = checksums.pageCount + 1; pgno <= pageCount; pgno++) candidates.add(pgno);
  candidates.delete(lock);
  const pages: PlannedPage[] = [];
  for (const pgno of [...candidates].sort((a, b) => a - b)) {
    pages.push({ pgno, checksum: pageChecksum(pgno, read(pgno)) });
  }
  return { pageSize, pageCount, pages, fullImage: false };
}

function fullImagePlan(pageSize: number, pageCount: number, readPage: PageReader): CommitPlan {
  const lock = lockPgno(pageSize);
  const pages: PlannedPage[] = [];
  for (let pgno = 1; pgno <= pageCount; pgno++) {
    if (pgno === lock) continue;
    pages.push({ pgno, checksum: pageChecksum(pgno, readPage(pgno)) });
  }
  return { pageSize, pageCount, pages, fullImage: true };
}
