// The read-only half of applying LTX files to a database file: decode and verify every file, check
// that each follows the database's position, and predict the rolling checksum page by page (from the
// database's current pages and the files' new ones) to confirm each file's post-apply checksum —
// all before a single byte of the database is written.
//
// The database is modelled, not copied: the checksum of every page some file replaces, removes or
// adds is kept in a map (8 bytes + map overhead per changed page); unchanged pages are read from the
// database file when their old checksum is needed.

import { open, type FileHandle } from "node:fs/promises";
import { checksumDatabaseFile, lockPgno, pageChecksum, RollingChecksum } from "./checksum.js";
import {
  assertNoPendingJournal,
  readDatabasePage,
  readDatabasePages,
  readDatabaseShape,
  type DatabaseShape,
} from "./database-file.js";
import { openLtxFile, type LtxPage, type LtxSummary } from "./decoder.js";
import { LtxError } from "./errors.js";
import { hasNoChecksum, isSnapshot } from "./header.js";
import type { Pos } from "./pos.js";

export interface ApplyPlanOptions {
  /** The database's position when the caller tracks it; the first file must then follow it. */
  position?: Pos;
  /** Page bytes kept in memory between verification and writing, in total (default 64 MiB). */
  maxBufferedBytes?: number;
}

/** One verified file and what writing it will do. */
export interface PlannedFile {
  path: string;
  summary: LtxSummary;
  /** Page numbers and page checksums in file order, to re-check pages read again when writing. */
  pgnos: Uint32Array;
  checksums: BigUint64Array;
  /** The pages themselves when they fit the memory budget; otherwise the file is read again. */
  pages: LtxPage[] | undefined;
}

export interface ApplyPlan {
  pageSize: number;
  files: PlannedFile[];
  /** Position after the last file: its max TXID and the predicted (and confirmed) checksum. */
  position: Pos;
  pageCount: number;
}

const DEFAULT_MAX_BUFFERED_BYTES = 64 << 20;
/** Marks a page that a file truncated away: it no longer exists, whatever the database file holds. */
const ABSENT = -1n;

/** Page checksums of the database as the files change it (see the file comment). */
class DatabaseModel {
  readonly #handle: FileHandle | undefined;
  readonly #path: string;
  readonly #shape: DatabaseShape;
  readonly #changed = new Map<number, bigint>();
  readonly lock: number;
  pageCount: number;

  constructor(handle: FileHandle | undefined, path: string, shape: DatabaseShape) {
    this.#handle = handle;
    this.#path = path;
    this.#shape = shape;
    this.pageCount = shape.pageCount;
    this.lock = lockPgno(shape.pageSize);
  }

  async checksumOf(pgno: number): Promise<bigint | undefined> {
    const changed = this.#changed.get(pgno);
    if (changed !== undefined) return changed === ABSENT ? undefined : changed;
    if (this.#handle === undefined || pgno > this.#shape.pageCount || pgno === this.lock) return undefined;
    return pageChecksum(pgno, await readDatabasePage(this.#handle, this.#path, pgno, this.#shape.pageSize));
  }

  set(pgno: number, checksum: bigint | undefined): void {
    this.#changed.set(pgno, checksum ?? ABSENT);
  }

  /** Checksums of pages first..last (lock page skipped), streaming unchanged ones from disk. */
  async *checksumsOf(first: number, last: number): AsyncGenerator<[number, bigint | undefined]> {
    const onDiskLast = Math.min(last, this.#shape.pageCount);
    if (this.#handle !== undefined && first <= onDiskLast) {
      for await (const { pgno, data } of readDatabasePages(
        this.#handle,
        this.#path,
        this.#shape,
        first,
        onDiskLast,
      )) {
        const changed = this.#changed.get(pgno);
        if (changed === undefined) yield [pgno, pageChecksum(pgno, data)];
        else yield [pgno, changed === ABSENT ? undefined : changed];
      }
      first = onDiskLast + 1;
    }
    for (let pgno = first; pgno <= last; pgno++) {
      if (pgno !== this.lock) yield [pgno, await this.checksumOf(pgno)];
    }
  }
}

function applyError(
  path: string,
  rule: string,
  detail: string,
  code: "ELTXAPPLY" | "ELTXCHECKSUM" = "ELTXAPPLY",
): LtxError {
  return new LtxError(code, detail, { file: path, rule });
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}

/** Verifies `ltxPaths` against the database at `dbPath` (which may not exist yet) without changing it. */
export async function planApply(
  dbPath: string,
  ltxPaths: readonly string[],
  options: ApplyPlanOptions = {},
): Promise<ApplyPlan> {
  if (ltxPaths.length === 0) throw new RangeError("planApply: no LTX files given");
  await assertNoPendingJournal(dbPath);
  const first = openLtxFile(ltxPaths[0]);
  const pageSize = (await first.readHeader()).pageSize;
  await first.close();

  let handle: FileHandle | undefined;
  try {
    handle = await open(dbPath, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  try {
    const shape =
      handle === undefined
        ? { pageSize, pageCount: 0, size: 0 }
        : await readDatabaseShape(handle, dbPath, pageSize);
    const model = new DatabaseModel(handle, dbPath, shape);
    const start =
      shape.pageCount === 0 ? new RollingChecksum().value : await checksumDatabaseFile(dbPath, pageSize);
    const rolling = new RollingChecksum(start);
    let previous: { path: string; maxTxid: bigint } | undefined;
    if (options.position !== undefined) {
      previous = { path: dbPath, maxTxid: options.position.txid };
      if (options.position.txid > 0n && options.position.checksum !== start) {
        throw applyError(dbPath, "position matches database", `position checksum ${hex(options.position.checksum)}, database checksum ${hex(start)}`);
      } // prettier-ignore
    }
    let budget = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    const files: PlannedFile[] = [];
    for (const path of ltxPaths) {
      const file = await planFile(path, model, rolling, previous, pageSize, budget);
      if (file.pages !== undefined) budget -= file.pages.length * pageSize;
      files.push(file);
      previous = { path, maxTxid: file.summary.header.maxTxid };
    }
    return {
      pageSize,
      files,
      position: { txid: previous!.maxTxid, checksum: rolling.value },
      pageCount: model.pageCount,
    };
  } finally {
    await handle?.close();
  }
}

async function planFile(
  path: string,
  model: DatabaseModel,
  rolling: RollingChecksum,
  previous: { path: string; maxTxid: bigint } | undefined,
  pageSize: number,
  budget: number,
): Promise<PlannedFile> {
  const decoder = openLtxFile(path);
  try {
    const header = await decoder.readHeader();
    if (header.pageSize !== pageSize) {
      throw applyError(
        path,
        "page sizes match",
        `page size ${header.pageSize}; the database's is ${pageSize}`,
      );
    }
    if (isSnapshot(header)) {
      if (model.pageCount > 0 || (previous !== undefined && previous.maxTxid !== 0n)) {
        const where =
          model.pageCount > 0
            ? `the database has ${model.pageCount} pages`
            : `it follows TXID ${previous!.maxTxid}`;
        throw applyError(
          path,
          "snapshot onto empty database",
          `a snapshot only applies to an empty database; ${where}`,
        );
      }
    } else {
      if (previous !== undefined && header.minTxid !== previous.maxTxid + 1n) {
        throw applyError(path, "follows position", `file starts at TXID ${header.minTxid}; the database is at TXID ${previous.maxTxid}`);
      } // prettier-ignore
      if (!hasNoChecksum(header) && header.preApplyChecksum !== rolling.value) {
        throw applyError(
          path,
          "pre-apply checksum matches database",
          `pre-apply checksum ${hex(header.preApplyChecksum)}, the database's checksum is ${hex(rolling.value)}`,
        );
      }
    }

    let pgnos = new Uint32Array(64);
    let checksums = new BigUint64Array(64);
    let count = 0;
    let pages: LtxPage[] | undefined = [];
    for (;;) {
      const page = await decoder.readPage();
      if (page === undefined) break;
      const checksum = pageChecksum(page.pgno, page.data);
      rolling.replace(await model.checksumOf(page.pgno), checksum);
      model.set(page.pgno, checksum);
      if (count === pgnos.length) {
        pgnos = grow(pgnos, new Uint32Array(count * 2));
        checksums = grow(checksums, new BigUint64Array(count * 2));
      }
      pgnos[count] = page.pgno;
      checksums[count] = checksum;
      count++;
      if (pages !== undefined) {
        if (count * pageSize <= budget) pages.push(page);
        else pages = undefined; // over budget: the write phase reads the file again
      }
    }
    const summary = decoder.summary!;

    // Truncation drops the pages past the new size. Growth must bring every new page (SQLite writes
    // each page it adds): a file that grows the database without them would leave pages of zeros
    // nobody wrote — and a tiny file could claim four billion of them.
    const commit = header.commit;
    if (commit < model.pageCount) {
      for await (const [pgno, old] of model.checksumsOf(commit + 1, model.pageCount)) {
        rolling.replace(old, undefined);
        model.set(pgno, undefined);
      }
    } else if (commit > model.pageCount) {
      let carried = 0;
      for (let i = count - 1; i >= 0 && pgnos[i] > model.pageCount; i--) carried++;
      const lockInside = model.pageCount < model.lock && model.lock <= commit ? 1 : 0;
      const needed = commit - model.pageCount - lockInside;
      if (carried !== needed) {
        throw applyError(
          path,
          "growth carries its pages",
          `the file grows the database from ${model.pageCount} to ${commit} pages but carries ${carried} of the ${needed} new pages`,
        );
      }
    }
    model.pageCount = commit;

    if (!hasNoChecksum(header) && rolling.value !== summary.trailer.postApplyChecksum) {
      throw applyError(
        path,
        "post-apply checksum matches result",
        `applying it would give checksum ${hex(rolling.value)}; its post-apply checksum is ${hex(summary.trailer.postApplyChecksum)}`,
        "ELTXCHECKSUM",
      );
    }
    return { path, summary, pgnos: pgnos.subarray(0, count), checksums: checksums.subarray(0, count), pages };
  } finally {
    await decoder.close();
  }
}

function grow<T extends Uint32Array | BigUint64Array>(old: T, next: T): T {
  next.set(old as never);
  return next;
}
