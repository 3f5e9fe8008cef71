// Applying LTX files to a SQLite database file, in order: what `litefs ltx apply` does, and what a
// replica does with the files it receives.
//
// Guarantees:
//   - Nothing is written until every file has been decoded and verified in full (file checksums,
//     every structural rule), each has been shown to follow the database's position (TXIDs
//     contiguous, pre-apply checksum = the database's checksum at that point, every page it adds
//     present in it), and each file's post-apply checksum has been confirmed by predicting the
//     database's checksum page by page (apply-plan.ts). A file that fails any of this changes
//     nothing — and neither do the files before it in the same call.
//   - Pages of files up to `maxBufferedBytes` (64 MiB) in total are kept in memory from that pass
//     and written from there. Larger files are read a second time; each page read again must have the
//     page number and checksum recorded in the first pass, so a file that changed on disk in between
//     (LTX files are immutable once written, so this means outside interference) stops the write at
//     the first differing page — the database is then partially written and the error says so.
//   - The database is written in place and fsynced once at the end; this is not atomic against a
//     crash midway (LiteFS records its position separately for that). Callers needing atomicity
//     apply to a copy and rename it.

import { open } from "node:fs/promises";
import { dirname } from "node:path";
import { pageChecksum } from "./checksum.js";
import { writeFully } from "./database-file.js";
import { openLtxFile } from "./decoder.js";
import { LtxError } from "./errors.js";
import { planApply, type ApplyPlan, type ApplyPlanOptions, type PlannedFile } from "./apply-plan.js";
import type { Pos } from "./pos.js";

export type ApplyLtxOptions = ApplyPlanOptions;

export interface ApplyLtxResult {
  /** The database's position afterwards. */
  position: Pos;
  pageCount: number;
  pageSize: number;
  /** Pages written, over all files. */
  pagesWritten: number;
}

/** Applies `ltxPaths`, in order, to the database at `dbPath` (created if missing). */
export async function applyLtxFiles(
  dbPath: string,
  ltxPaths: readonly string[],
  options: ApplyLtxOptions = {},
): Promise<ApplyLtxResult> {
  const plan = await planApply(dbPath, ltxPaths, options);
  return writePlan(dbPath, plan);
}

async function writePlan(dbPath: string, plan: ApplyPlan): Promise<ApplyLtxResult> {
  let created = false;
  let handle;
  try {
    handle = await open(dbPath, "r+");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    handle = await open(dbPath, "wx");
    created = true;
  }
  let pagesWritten = 0;
  try {
    for (const file of plan.files) {
      pagesWritten += await writeFile(handle, file, plan.pageSize, pagesWritten);
      await handle.truncate(file.summary.header.commit * plan.pageSize);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (created) {
    const dir = await open(dirname(dbPath), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
  return { position: plan.position, pageCount: plan.pageCount, pageSize: plan.pageSize, pagesWritten };
}

type DbHandle = Awaited<ReturnType<typeof open>>;

async function writeFile(
  handle: DbHandle,
  file: PlannedFile,
  pageSize: number,
  writtenBefore: number,
): Promise<number> {
  if (file.pages !== undefined) {
    for (const page of file.pages) await writeFully(handle, page.data, (page.pgno - 1) * pageSize);
    return file.pages.length;
  }
  const decoder = openLtxFile(file.path, { format: file.summary.format });
  let i = 0;
  try {
    for (;;) {
      let page;
      try {
        page = await decoder.readPage();
      } catch (err) {
        // It verified a moment ago: an error now means the file changed underneath us.
        throw changedError(file, writtenBefore + i, err instanceof LtxError ? err.offset : undefined, err);
      }
      if (page === undefined) break;
      if (
        i >= file.pgnos.length ||
        page.pgno !== file.pgnos[i] ||
        pageChecksum(page.pgno, page.data) !== file.checksums[i]
      ) {
        throw changedError(file, writtenBefore + i, page.offset);
      }
      await writeFully(handle, page.data, (page.pgno - 1) * pageSize);
      i++;
    }
  } finally {
    await decoder.close();
  }
  if (i !== file.pgnos.length) throw changedError(file, writtenBefore + i, undefined);
  return i;
}

function changedError(
  file: PlannedFile,
  pagesWritten: number,
  offset: number | undefined,
  cause?: unknown,
): LtxError {
  return new LtxError(
    "ELTXAPPLY",
    `the file changed after it was verified; the database is partially written (${pagesWritten} pages)`,
    { file: file.path, offset, rule: "file unchanged while applying", cause },
  );
}
